"""The sandbox's workspace: its people, its channels, its configuration and what the cloud holds
before the bot does anything."""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from bot.sim.workbench_api import WorkbenchSimulator

PROJECT = "sandbox-project"
ZONE = "us-central1-a"


@dataclass(frozen=True)
class Person:
    id: str
    name: str
    real_name: str
    role: str  # what the sandbox config lets them do
    tz: str

    def profile(self) -> dict[str, Any]:
        return {"name": self.name, "real_name": self.real_name, "email": f"{self.name}@example.com", "tz": self.tz}


PEOPLE = (
    Person("U0ALICE", "alice", "Alice Martin", "data scientist: launches notebooks", "Europe/Paris"),
    Person("U0BOB", "bob", "Bob Chen", "approver: decides on launch requests in #approvals", "America/New_York"),
    Person("U0CAROL", "carol", "Carol Diaz", "admin: acts on every notebook, adopts instances", "UTC"),
)
CHANNELS = {"general": "C0GENERAL", "approvals": "C0APPROVALS"}
# An instance someone made in the console: `/notebook list all` shows it, `/notebook adopt` takes it in.
STRAY = ("old-experiment", {"gceSetup": {"machineType": "n1-standard-4"}, "state": "STOPPED"})


def config_path() -> Path:
    return Path(str(resources.files("bot.sim").joinpath("sandbox.toml")))


def person(who: str) -> Person | None:
    """A person by name (`bob`, `@bob`) or Slack ID (`U0BOB`)."""
    wanted = who.strip().lstrip("@").lower()
    return next((p for p in PEOPLE if wanted in (p.name, p.id.lower())), None)


def channel(where: str) -> str | None:
    """A channel ID by name (`approvals`, `#approvals`) or ID."""
    wanted = where.strip().lstrip("#").lower()
    return CHANNELS.get(wanted) or next((c for c in CHANNELS.values() if c.lower() == wanted), None)


def channel_name(channel_id: str) -> str:
    return next((name for name, cid in CHANNELS.items() if cid == channel_id), channel_id)


def furnish(workbench: WorkbenchSimulator) -> None:
    """What the project holds on a first run."""
    name, body = STRAY
    workbench.add_instance(ZONE, name, body, project=PROJECT)
