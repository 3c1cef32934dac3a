"""The [reminders] table of the config file: when idle and forgotten notebooks get reminders."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from bot.domain.policy import Duration


class Reminders(BaseModel):
    """When idle and forgotten notebooks get reminders, and what happens when nobody answers. A sweep
    looks at every notebook at most every 5 minutes: inside `serve` and `socket`, on
    POST /tasks/reconcile (which runs a reconcile pass each time, and a sweep when one is due), or
    at once with `notebook-bot sweep`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    running_gpu_after: Duration = Field(
        8 * 3600,
        gt=0,
        description="A GPU notebook running this long gets a reminder with what it cost so far, Stop now and Keep it….",
    )
    running_cpu_after: Duration = Field(24 * 3600, gt=0, description="The same for a notebook without a GPU.")
    stopped_after: Duration = Field(
        14 * 86400,
        gt=0,
        description="A stopped notebook's disks bill on: after this long its owner is reminded, with what the "
        "disks cost per month, Delete and Keep it….",
    )
    repeat_every: Duration = Field(24 * 3600, gt=0, description="An unanswered reminder comes back after this long.")
    escalate_after: int = Field(
        3, ge=1, description="Unanswered reminders before the admins are told (and, with auto_stop, it is stopped)."
    )
    escalate_to: Literal["admins", "approval_channel"] = Field(
        "admins",
        description='"admins": a DM to each admin; "approval_channel": a post in [access] approval_channel.',
    )
    auto_stop: bool = Field(True, description="Stop a running notebook when escalating.")
    auto_delete_stopped_after: Duration | None = Field(
        None,
        gt=0,
        description="Opt-in: delete notebooks stopped this long, without a click. Unset: never.",
        examples=["30d"],
        json_schema_extra={"opt_in": True},  # the reference leaves the example commented out
    )
    auto_delete_notice: Duration = Field(
        3 * 86400, ge=0, description="An automatic deletion is announced to the owner this long before."
    )
    working_hours: tuple[int, int] = Field(
        (9, 18), description="Reminders wait for the owner's local hours [start, end), in their Slack timezone."
    )
    working_days: tuple[int, ...] = Field(
        (0, 1, 2, 3, 4), description="…and for these days of the week there; Monday is 0."
    )
    respect_working_hours: bool = Field(True, description="false: send reminders whenever they are due.")
    snooze_choices: tuple[Duration, ...] = Field(
        (2 * 3600, 8 * 3600, 86400, 3 * 86400, 7 * 86400), description="What the Keep it… menu offers."
    )
    utilization_window: Duration = Field(
        4 * 3600,
        ge=600,
        description="How far back each sweep reads running notebooks' CPU and GPU utilization from Cloud "
        "Monitoring (one query per metric for all zones, in 5-minute means). Without Monitoring (no "
        "GOOGLE_CLOUD_PROJECT or MONITORING_EMULATOR_HOST, or no permission) reminders go by the clock alone.",
    )
    idle_below: float = Field(
        0.05,
        ge=0,
        lt=1,
        description="At or under this utilization (0.05 = 5 %) a notebook counts as idle: its GPU for GPU "
        "notebooks, its CPU for the others. A reminder says how long it has been so, and what that cost; "
        "`/notebook costs` and the weekly digest count the same hours as idle.",
    )
    busy_above: float = Field(
        0.3,
        gt=0,
        le=1,
        description="A notebook not idle now and averaging at least this over the window counts as busy: it "
        "gets no reminder and is not stopped by escalation.",
    )
    heads_up_after: float = Field(
        0.5,
        gt=0,
        le=1,
        description="Workbench's idle shutdown counts notebook activity only (cells, output, terminals), not "
        "CPU or GPU use. A notebook busy for this share of its idle timeout (or the whole window, if "
        "shorter) gets a heads-up, once per run, with a button that extends its idle timeout.",
    )
    heads_up_extend_to: Duration = Field(
        24 * 3600,
        gt=0,
        description="What the heads-up's button sets the idle timeout to, cut to [policy] idle_min and idle_max.",
    )
    max_messages_per_sweep: int = Field(
        200,
        ge=1,
        description="At most this many messages per sweep, inside Slack's rate limits; the rest go out next sweep.",
    )

    @model_validator(mode="after")
    def _consistent(self) -> Reminders:
        start, end = self.working_hours
        if not 0 <= start < end <= 24:
            raise ValueError(
                f"working_hours must be [start, end) hours with 0 <= start < end <= 24, not {[start, end]}"
            )
        if not self.working_days or any(not 0 <= d <= 6 for d in self.working_days):
            raise ValueError("working_days are 0 (Monday) to 6 (Sunday), at least one")
        if self.busy_above <= self.idle_below:
            raise ValueError("busy_above must be greater than idle_below")
        if not self.snooze_choices or any(s <= 0 for s in self.snooze_choices):
            raise ValueError("snooze_choices must be positive durations, at least one")
        return self
