"""Who may do what: admins, approvers, quotas, approval thresholds and spec bounds.

Read from the [access] and [policy] tables of the config file (see config.example.toml).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from bot.errors import NotAllowed
from bot.spec import NotebookSpec, SpecBounds, parse_duration


def _seconds(value: Any) -> Any:
    return parse_duration(value) if isinstance(value, str) else value


class Access(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    admins: list[str] = []  # Slack user IDs (U…) or user group IDs (S…)
    approvers: list[str] = []
    approval_channel: str | None = None
    allow_self_approval: bool = False


class Policy(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    approval_over_usd_per_hour: float = Field(1.0, ge=0)
    approval_over_gpus: int | None = Field(None, ge=0)  # more GPUs than this in one launch needs approval
    approval_environments: list[str] = []  # environments that always need approval
    approval_expires_after: int = 24 * 3600
    max_notebooks_per_user: int = Field(3, ge=0)
    max_gpus_per_user: int | None = Field(None, ge=0)
    zone: str | None = None  # default zone; NOTEBOOK_ZONE wins when set
    allowed_zones: list[str] = []
    idle_default: int = 3 * 3600
    idle_min: int = 10 * 60
    idle_max: int = 24 * 3600

    _durations = field_validator("approval_expires_after", "idle_default", "idle_min", "idle_max", mode="before")(
        _seconds
    )

    def bounds(self, zone: str) -> SpecBounds:
        return SpecBounds(
            zone=zone,
            allowed_zones=tuple(self.allowed_zones),
            idle_default=self.idle_default,
            idle_min=self.idle_min,
            idle_max=self.idle_max,
        )


class Rules:
    """The policy applied to people; group membership is resolved by the caller (Slack user groups)."""

    def __init__(self, access: Access, policy: Policy, members: dict[str, set[str]] | None = None) -> None:
        self.access = access
        self.policy = policy
        self._members = members or {}

    def _in(self, user: str, entries: list[str]) -> bool:
        return any(user == e or user in self._members.get(e, set()) for e in entries)

    def is_admin(self, user: str) -> bool:
        return self._in(user, self.access.admins)

    def is_approver(self, user: str) -> bool:
        return self.is_admin(user) or self._in(user, self.access.approvers)

    def approval_reason(self, spec: NotebookSpec) -> str | None:
        """Why this launch needs an approver, or None when it may go straight through."""
        p = self.policy
        if spec.environment in p.approval_environments:
            return f"the `{spec.environment}` environment always needs approval"
        if p.approval_over_gpus is not None and spec.gpu_count > p.approval_over_gpus:
            return f"{spec.gpu_count} GPUs is more than the {p.approval_over_gpus} allowed without approval"
        if spec.usd_per_hour > p.approval_over_usd_per_hour:
            return (
                f"≈${spec.usd_per_hour:.2f}/h is over the ${p.approval_over_usd_per_hour:.2f}/h "
                "allowed without approval"
            )
        return None

    def check_quota(self, user: str, spec: NotebookSpec, current: list[NotebookSpec]) -> None:
        """Refuse, with the numbers, a launch that would take the user over a quota."""
        p = self.policy
        if len(current) + 1 > p.max_notebooks_per_user:
            raise NotAllowed(
                f"You have {len(current)} notebook(s) and the limit is {p.max_notebooks_per_user} per person. "
                "Delete one first (`/notebook list`, then `/notebook delete NAME`).",
                field="quota",
            )
        if p.max_gpus_per_user is not None and spec.gpu_count:
            used = sum(s.gpu_count for s in current)
            if used + spec.gpu_count > p.max_gpus_per_user:
                raise NotAllowed(
                    f"This launch needs {spec.gpu_count} GPU(s); you already use {used} and the limit is "
                    f"{p.max_gpus_per_user} per person. Stop or delete a GPU notebook first.",
                    field="quota",
                )
