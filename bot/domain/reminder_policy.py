"""The [reminders] table of the config file: when idle and forgotten notebooks get reminders."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from bot.domain.policy import duration_seconds


class Reminders(BaseModel):
    """The [reminders] table of the config file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    running_gpu_after: int = Field(8 * 3600, gt=0)  # a GPU notebook running this long gets a reminder
    running_cpu_after: int = Field(24 * 3600, gt=0)
    stopped_after: int = Field(14 * 86400, gt=0)  # a stopped notebook's disks bill on; remind after this long
    repeat_every: int = Field(24 * 3600, gt=0)  # an unanswered reminder comes back after this long
    escalate_after: int = Field(3, ge=1)  # unanswered reminders before admins are told
    escalate_to: Literal["admins", "approval_channel"] = "admins"  # DM each admin, or post in the channel
    auto_stop: bool = True  # stop a running notebook when escalating
    auto_delete_stopped_after: int | None = Field(None, gt=0)  # opt-in: delete notebooks stopped this long
    auto_delete_notice: int = Field(3 * 86400, ge=0)  # announced this long before
    working_hours: tuple[int, int] = (9, 18)  # owner's local hours [start, end)
    working_days: tuple[int, ...] = (0, 1, 2, 3, 4)  # Monday = 0
    respect_working_hours: bool = True
    snooze_choices: tuple[int, ...] = (2 * 3600, 8 * 3600, 86400, 3 * 86400, 7 * 86400)
    max_messages_per_sweep: int = Field(200, ge=1)  # keeps a sweep inside Slack's rate limits

    _durations = field_validator(
        "running_gpu_after",
        "running_cpu_after",
        "stopped_after",
        "repeat_every",
        "auto_delete_stopped_after",
        "auto_delete_notice",
        mode="before",
    )(duration_seconds)

    @field_validator("snooze_choices", mode="before")
    @classmethod
    def _snoozes(cls, value: Any) -> Any:
        return tuple(duration_seconds(v) for v in value)

    @model_validator(mode="after")
    def _consistent(self) -> Reminders:
        start, end = self.working_hours
        if not 0 <= start < end <= 24:
            raise ValueError(
                f"working_hours must be [start, end) hours with 0 <= start < end <= 24, not {[start, end]}"
            )
        if not self.working_days or any(not 0 <= d <= 6 for d in self.working_days):
            raise ValueError("working_days are 0 (Monday) to 6 (Sunday), at least one")
        if not self.snooze_choices or any(s <= 0 for s in self.snooze_choices):
            raise ValueError("snooze_choices must be positive durations, at least one")
        return self
