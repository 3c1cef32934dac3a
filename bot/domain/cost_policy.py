"""The [costs] table of the config file: how `/notebook costs` counts and when the weekly digest goes out."""

from __future__ import annotations

from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from bot.domain.policy import channel_id


class Costs(BaseModel):
    """`/notebook costs` (yours this week and this month; admins: `/notebook costs team`) and the weekly
    digest to the admins: running hours, GPU hours, an estimate at the catalog's list prices, the disks
    of stopped notebooks and the idle share, from each notebook's history of states and the utilization
    Cloud Monitoring reported at each sweep. The digest goes out once a week across all replicas, from
    the reconcile pass (inside `serve`/`socket`, or POST /tasks/reconcile), with a chart of the cost per
    person per day."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    timezone: str = Field(
        "UTC",
        description="Weeks start on Monday at midnight here, months on the 1st; the digest's days, chart and "
        "hour are read here. An IANA name such as Europe/Paris.",
    )
    digest: bool = Field(True, description="false: no weekly digest.")
    digest_to: Literal["admins", "channel"] = Field(
        "admins", description='"admins": a DM to each admin; "channel": a post in digest_channel.'
    )
    digest_channel: str | None = Field(
        None,
        description='The channel ID (C…) for digest_to = "channel"; invite the bot there (the chart is shared '
        "into it).",
        examples=["C0COSTS"],
    )
    digest_weekday: int = Field(
        0, ge=0, le=6, description="The digest goes out on this day (Monday is 0) about the week before it."
    )
    digest_hour: int = Field(9, ge=0, le=23, description="…at the first reconcile pass from this hour on.")

    @field_validator("timezone")
    @classmethod
    def _zone(cls, name: str) -> str:
        try:
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"{name!r} is not a time zone name such as UTC or Europe/Paris") from None
        return name

    @field_validator("digest_channel")
    @classmethod
    def _channel(cls, channel: str | None) -> str | None:
        return channel_id(channel)

    @model_validator(mode="after")
    def _channel_given(self) -> Costs:
        if self.digest and self.digest_to == "channel" and not self.digest_channel:
            raise ValueError('digest_to = "channel" needs digest_channel (a channel ID, C…)')
        return self
