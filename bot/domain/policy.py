"""Who may do what: admins, approvers, quotas, approval thresholds and spec bounds.

Read from the [access] and [policy] tables of the config file (see config.example.toml).
Admins and approvers are Slack user IDs (U…, W…) or user group IDs (S…); a group's members
are looked up in Slack when needed (`GroupMembers`) and kept for a few minutes.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, Protocol

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

from bot.domain.errors import NotAllowed, UserError
from bot.domain.spec import NotebookSpec, SpecBounds, parse_duration

if TYPE_CHECKING:
    from bot.domain.catalog import Catalog

log = logging.getLogger(__name__)

PERSON_OR_GROUP = re.compile(r"^[UWS][A-Z0-9]{2,}$")
CHANNEL = re.compile(r"^[CGD][A-Z0-9]{2,}$")


def channel_id(channel: str | None) -> str | None:
    """A config's channel, which must be an ID: people type names, which the Web API does not take."""
    if channel is not None and not CHANNEL.match(channel):
        raise ValueError(
            f"{channel!r}: give the channel's ID (C…), not its name; it is at the bottom of the channel's details"
        )
    return channel


def duration_seconds(value: Any) -> Any:
    """A config duration in seconds: a number is seconds, a string is `30s`, `90m`, `2h`, `1d` or `1h30m`."""
    if not isinstance(value, str):
        return value
    if value.strip().isdigit():
        return int(value)  # as the same number written without quotes
    try:
        return parse_duration(value)
    except UserError as error:
        raise ValueError(f"`{value}` is not a duration like `30s`, `90m`, `24h` or `2d`") from error


DURATION = BeforeValidator(duration_seconds)
Duration = Annotated[int, DURATION]  # seconds, written as a number or as words (config.example.toml)


class Access(BaseModel):
    """Who may do what. Give Slack user IDs (U…, W…) or user group IDs (S…), never names or @handles:
    a profile's ⋮ menu has "Copy member ID"; a user group's ID is in its URL. Members of a group are
    looked up with usergroups.users.list (the app then needs the usergroups:read scope) and kept for
    5 minutes."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    admins: list[str] = Field(
        [], description="Act on every notebook, adopt instances, and approve launches.", examples=[["U0ADMIN"]]
    )
    approvers: list[str] = Field(
        [],
        description="May approve, deny or lower launch requests.",
        examples=[["U0APPROVER", "S0MLLEADS"]],
    )
    approval_channel: str | None = Field(
        None,
        description="Where approval requests are posted: a channel ID (C…) the bot is invited to. "
        "Unset: each approver (or, when there are none, each admin) is asked in a DM.",
        examples=["C0APPROVALS"],
    )
    allow_self_approval: bool = Field(False, description="May an approver decide on their own request?")

    @field_validator("admins", "approvers")
    @classmethod
    def _ids(cls, entries: list[str]) -> list[str]:
        bad = [e for e in entries if not PERSON_OR_GROUP.match(e)]
        if bad:
            raise ValueError(
                f"{', '.join(repr(b) for b in bad)}: give Slack user IDs (U…) or user group IDs (S…), not names; "
                "a profile's ⋮ menu has “Copy member ID”"
            )
        return entries

    @field_validator("approval_channel")
    @classmethod
    def _channel(cls, channel: str | None) -> str | None:
        return channel_id(channel)


class Policy(BaseModel):
    """When a launch needs an approver's OK (when any of the approval_ settings holds; otherwise it
    goes straight through), the quotas per person, where notebooks go, and the idle shutdown bounds
    people choose within (`idle=` or the form)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    approval_over_usd_per_hour: float = Field(
        1.0, ge=0, description="A launch estimated above this price, in USD per hour, needs approval."
    )
    approval_over_gpus: int | None = Field(
        None, ge=0, description="More GPUs than this in one notebook need approval. Unset: no limit.", examples=[1]
    )
    approval_environments: list[str] = Field(
        [], description="Environments that always need approval; aliases work.", examples=[["tf-2-8"]]
    )
    approval_expires_after: Duration = Field(
        24 * 3600, gt=0, description="A request nobody decides on within this time expires; the requester is told."
    )
    max_notebooks_per_user: int = Field(
        3,
        ge=0,
        description="Notebooks per person. Every notebook someone owns counts, whatever its state (waiting for "
        "approval, queued, being created, running), except stopped ones and ones deleted outside the bot: "
        "stopping, deleting or cancelling one makes room. A launch, or a start of a stopped notebook, over it is "
        "refused with the numbers (bot/domain/records.py holds the rule).",
    )
    max_gpus_per_user: int | None = Field(
        None, ge=0, description="GPUs per person, counted over the same notebooks. Unset: no limit.", examples=[4]
    )
    zone: str | None = Field(
        None,
        description="The zone new notebooks go to; NOTEBOOK_ZONE wins when set. Unset: us-central1-a.",
        examples=["us-central1-a"],
    )
    allowed_zones: list[str] = Field(
        [],
        description="The zones `zone=` may name, and the only zones a GPU stockout's one-click `Launch in ZONE` "
        "offer may name. Empty: any zone (an offer may then name any zone Google says has capacity, even in another "
        "region; list your region's zones to keep notebooks near their data).",
        examples=[["us-central1-a", "us-central1-b"]],
    )
    idle_default: Duration = Field(
        3 * 3600, description="Workbench's idle shutdown, for launches that don't choose one."
    )
    idle_min: Duration = Field(10 * 60, description="The shortest idle shutdown people may choose.")
    idle_max: Duration = Field(24 * 3600, description="The longest idle shutdown people may choose.")

    @model_validator(mode="after")
    def _idle_bounds(self) -> Policy:
        if not self.idle_min <= self.idle_default <= self.idle_max:
            raise ValueError("idle_default must lie between idle_min and idle_max")
        return self

    def bounds(self, zone: str) -> SpecBounds:
        return SpecBounds(
            zone=zone,
            allowed_zones=tuple(self.allowed_zones),
            idle_default=self.idle_default,
            idle_min=self.idle_min,
            idle_max=self.idle_max,
        )


@dataclass
class _Cached:
    members: frozenset[str]
    until: float


class GroupMembers:
    """The members of Slack user groups, looked up with `fetch` (usergroups.users.list) and kept
    for `ttl` seconds. When a lookup fails the last known members are kept (nobody, at first),
    and it is tried again after `retry_after` seconds: a Slack hiccup never makes someone an
    approver, and never blocks a request for long."""

    def __init__(
        self,
        fetch: Callable[[str], Iterable[str]],
        *,
        clock: Callable[[], float] = time.time,
        ttl: float = 300.0,
        retry_after: float = 30.0,
    ) -> None:
        self._fetch = fetch
        self._clock = clock
        self.ttl = ttl
        self.retry_after = retry_after
        self._cache: dict[str, _Cached] = {}
        self._lock = threading.Lock()

    def __call__(self, group: str) -> frozenset[str]:
        now = self._clock()
        with self._lock:
            cached = self._cache.get(group)
        if cached is not None and now < cached.until:
            return cached.members
        try:
            members, until = frozenset(self._fetch(group)), now + self.ttl
        except Exception as exc:
            log.warning("could not list the members of user group %s: %s", group, exc)
            members, until = (cached.members if cached else frozenset()), now + self.retry_after
        with self._lock:
            self._cache[group] = _Cached(members, until)
        return members


Members = Mapping[str, Iterable[str]] | Callable[[str], Iterable[str]]


class Rules:
    """The policy applied to people. `members` gives the members of user groups (S…): a mapping,
    or a function such as GroupMembers. `catalog` lets [policy] approval_environments use aliases."""

    def __init__(
        self, access: Access, policy: Policy, members: Members | None = None, *, catalog: Catalog | None = None
    ) -> None:
        self.access = access
        self.policy = policy
        self._members = members or {}
        self._approval_environments = set(policy.approval_environments)
        if catalog is not None:
            for name in policy.approval_environments:
                try:
                    self._approval_environments.add(catalog.environment(name))
                except UserError:
                    log.warning("[policy] approval_environments names `%s`, which is not in the catalog", name)

    def members_of(self, group: str) -> frozenset[str]:
        if not group.startswith("S"):
            return frozenset()
        if callable(self._members):
            return frozenset(self._members(group))
        return frozenset(self._members.get(group, ()))

    def _in(self, user: str, entries: list[str]) -> bool:
        if user in entries and not user.startswith("S"):  # a group's ID is not a person
            return True
        return any(user in self.members_of(e) for e in entries if e.startswith("S"))

    def people(self, entries: list[str]) -> list[str]:
        """The user IDs that `entries` name, groups expanded, in order and without repeats."""
        found: dict[str, None] = {}
        for entry in entries:
            for user in sorted(self.members_of(entry)) if entry.startswith("S") else [entry]:
                found.setdefault(user, None)
        return list(found)

    def check_admin(self, user: str, refusal: str) -> None:
        if not self.is_admin(user):
            raise NotAllowed(refusal)

    def is_admin(self, user: str) -> bool:
        return self._in(user, self.access.admins)

    def is_approver(self, user: str) -> bool:
        return self._in(user, self.access.approvers) or self.is_admin(user)

    def approval_reason(self, spec: NotebookSpec) -> str | None:
        """Why this launch needs an approver, or None when it may go straight through."""
        p = self.policy
        if spec.environment in self._approval_environments:
            return f"the `{spec.environment}` environment always needs approval"
        if p.approval_over_gpus is not None and spec.gpu_count > p.approval_over_gpus:
            return f"{spec.gpu_count} GPU(s) is more than the {p.approval_over_gpus} allowed without approval"
        if spec.usd_per_hour > p.approval_over_usd_per_hour:
            return (
                f"≈${spec.usd_per_hour:.2f}/h is over the ${p.approval_over_usd_per_hour:.2f}/h "
                "allowed without approval"
            )
        return None

    def check_quota(self, user: str, spec: NotebookSpec, counted: Sequence[Counted]) -> None:
        """Refuse, with the numbers, a launch or start that would take the user over a quota.

        `counted` is the user's notebooks that count (bot/domain/records.py states the rule: all
        but stopped ones), so stopping one makes room."""
        p = self.policy
        if len(counted) + 1 > p.max_notebooks_per_user:
            raise NotAllowed(
                f"You have {len(counted)} notebook(s) that count towards the limit of {p.max_notebooks_per_user} "
                f"per person ({quota_breakdown(counted)}; stopped ones don't count). Stop, delete or cancel one "
                "first (`/notebook list`).",
                field="quota",
            )
        if p.max_gpus_per_user is not None and spec.gpu_count:
            used = sum(n.spec.gpu_count for n in counted)
            if used + spec.gpu_count > p.max_gpus_per_user:
                raise NotAllowed(
                    f"This needs {spec.gpu_count} GPU(s); your notebooks that are not stopped use {used} and the "
                    f"limit is {p.max_gpus_per_user} per person. Stop a GPU notebook first, or ask for fewer GPUs.",
                    field="gpu",
                )


class Counted(Protocol):
    """A notebook as quotas see it (bot/domain/records.py Notebook)."""

    @property
    def spec(self) -> NotebookSpec: ...

    @property
    def state(self) -> str: ...


STATE_NAMES = {
    "PENDING_APPROVAL": "waiting for approval",
    "QUEUED": "queued",
    "CREATING": "being created",
    "ACTIVE": "running",
}


def quota_breakdown(counted: Sequence[Counted]) -> str:
    """'2 running, 1 waiting for approval': what the counted notebooks are doing, in plain words."""
    tally: dict[str, int] = {}
    for notebook in counted:
        word = STATE_NAMES.get(str(notebook.state), str(notebook.state).lower().replace("_", " "))
        tally[word] = tally.get(word, 0) + 1
    return ", ".join(f"{n} {word}" for word, n in tally.items()) or "none"
