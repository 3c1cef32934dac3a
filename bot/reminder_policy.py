"""The [reminders] table of the config file: when idle and forgotten notebooks get reminders."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from bot.spec import parse_duration


def _seconds(value: Any) -> Any:
    return parse_duration(value) if isinstance(value, str) else value


class Reminders(BaseModel):
    """The [reminders] table of the config file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    running_gpu_after: int = 8 * 3600  # a GPU notebook running this long gets a reminder
    running_cpu_after: int = 24 * 3600
    stopped_after: int = 14 * 86400  # a stopped notebook's disks bill on; remind after this long
    repeat_every: int = 24 * 3600  # an unanswered reminder comes back after this long
    escalate_after: int = Field(3, ge=1)  # unanswered reminders before admins are told
    escalate_to: str = "admins"  # "admins" (DM each) or "approval_channel"
    auto_stop: bool = True  # stop a running notebook when escalating
    auto_delete_stopped_after: int | None = None  # opt-in: delete notebooks stopped this long
    auto_delete_notice: int = 3 * 86400  # announced this long before
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
    )(_seconds)

    @field_validator("snooze_choices", mode="before")
    @classmethod
    def _snoozes(cls, value: Any) -> Any:
        return tuple(_seconds(v) for v in value)
