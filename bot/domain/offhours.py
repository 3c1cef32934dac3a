"""Off-hours in the lifecycle sweep: a heads-up before the evening stop (with "Keep it tonight"),
the stop, and the next working morning's report of it. When each is due is bot/domain/schedules.py's
rule; this module carries it out.

Each message is claimed as reminders are (bot/domain/claims.py, all of a sweep's in one transaction
before any is sent), keyed by the moment it is about (the stop point, the stop), so however many
replicas sweep it goes out once; a claim found taken whose record write was lost is read back
instead of sent again. The stop goes through the operations path like escalation's auto-stop,
deduplicated by notebook and stop point. What was done lands in the record's `offhours` marks
(Records.offhours_marked), in batched transactions.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from bot.domain import audit, claims
from bot.domain.claims import Taken
from bot.domain.errors import UserError
from bot.domain.records import Notebook, NotebookState
from bot.domain.schedules import (
    Activity,
    NotebookSchedule,
    Plan,
    Schedules,
    Subject,
    activity,
    effective,
    parse_schedule,
    pending,
    plan,
)
from bot.ui.blocks import Blocks, actions, button, context, section
from bot.ui.listing import hours

if TYPE_CHECKING:
    from bot.domain.lifecycle import Lifecycle, _Sweep

log = logging.getLogger(__name__)
KEEP_ACTION = "offhours_keep"
MESSAGES = ("heads_up", "morning_report")  # the actions that count against the sweep's message budget


@dataclass(frozen=True)
class _Due:
    notebook: Notebook
    plan: Plan
    activity: Activity

    @property
    def messages(self) -> int:
        return sum(a in MESSAGES for a in self.plan.actions)

    def claims(self) -> list[tuple[str, str]]:
        """The claims its messages need, as (key, kind)."""
        found = []
        if "heads_up" in self.plan.actions and self.plan.stop_point is not None:
            found.append(_claim(self.notebook, "offhours-heads-up", self.plan.stop_point.timestamp()))
        if "morning_report" in self.plan.actions and self.notebook.offhours.stopped_at is not None:
            found.append(_claim(self.notebook, "offhours-report", self.notebook.offhours.stopped_at))
        return found


def _claim(nb: Notebook, kind: str, at: float) -> tuple[str, str]:
    """The claim of the message of `kind` about the moment `at` (a stop point, a stop), not a run."""
    return claims.key(nb.id, at, kind), kind


def _instant(seconds: float | None) -> datetime | None:
    return None if seconds is None else datetime.fromtimestamp(seconds, UTC)


class OffHours:
    COUNTS = ("offhours_heads_ups", "schedule_stops", "morning_reports")  # what it adds to the SweepReport

    def __init__(self, lifecycle: Lifecycle, policy: Schedules) -> None:
        self.lifecycle = lifecycle
        self.policy = policy

    # --- in the sweep ------------------------------------------------------------------------------
    def sweep(self, notebooks: Iterable[Notebook], sweep: _Sweep) -> None:
        """What is due now for each notebook, within what is left of the sweep's message budget (the
        stops themselves are not messages); carried out a few at a time, then written in batches.
        Never raises: the rest of the sweep goes on, and what was lost is recovered next sweep."""
        try:
            self._sweep(notebooks, sweep)
        except Exception:
            log.exception("off-hours: this sweep's part failed")

    def _sweep(self, notebooks: Iterable[Notebook], sweep: _Sweep) -> None:
        report, budget = sweep.report, self.lifecycle.policy.max_messages_per_sweep
        due: list[_Due] = []
        planned = 0
        for notebook in notebooks:
            try:
                item = self._due(notebook, sweep)
            except Exception:
                log.exception("off-hours check failed", extra={"instance": notebook.id})
                continue
            if item is None:
                continue
            if item.messages and report.messages + planned + item.messages > budget:
                report.deferred += 1
                continue
            planned += item.messages
            due.append(item)
        if not due:
            return
        taken = self.lifecycle.claims.take(
            {key: {"notebook": item.notebook.id, "kind": kind} for item in due for key, kind in item.claims()}
        )
        marks: dict[str, dict[str, Any]] = {}
        counts: Counter[str] = Counter()
        with ThreadPoolExecutor(self.lifecycle.WORKERS, thread_name_prefix="offhours") as pool:
            carried = pool.map(lambda i: self._carry_out(i, sweep, taken), due)
            for item, (changes, done) in zip(due, carried, strict=True):
                if changes:
                    marks[item.notebook.id] = changes
                counts.update(done)
        for name, count in counts.items():
            setattr(report, name, getattr(report, name) + count)
        if marks:
            self.lifecycle.records.offhours_marked(marks)

    def _due(self, nb: Notebook, sweep: _Sweep) -> _Due | None:
        marks = nb.offhours
        running = nb.state == NotebookState.ACTIVE
        unreported = marks.stopped_at is not None and not marks.reported
        schedule = self._schedule(nb)
        stops = effective(self.policy, gpu=nb.spec.gpu is not None, schedule=schedule).stop_at is not None
        if not unreported and not (running and stops):
            return None  # nothing can be due: no owner's timezone to look up
        subject = self._subject(nb, self.lifecycle._sweep_tz(nb.owner, sweep), schedule)
        seen = self._activity(nb, sweep)
        planned = plan(self.policy, subject, datetime.fromtimestamp(sweep.now, UTC), seen)
        return _Due(nb, planned, seen) if planned.actions else None

    def _schedule(self, nb: Notebook) -> NotebookSchedule | None:
        """The notebook's own `schedule=`; one the policy no longer allows gives way to the policy's."""
        if not nb.spec.schedule:
            return None
        try:
            return parse_schedule(nb.spec.schedule, self.policy, gpu=nb.spec.gpu is not None)
        except UserError:
            log.warning("schedule=%s is outside today's policy; the policy's applies", nb.spec.schedule)
            return None

    def _subject(self, nb: Notebook, tz: ZoneInfo, schedule: NotebookSchedule | None) -> Subject:
        marks = nb.offhours
        return Subject(
            tz=tz.key,
            gpu=nb.spec.gpu is not None,
            running_since=_instant(nb.state_since) if nb.state == NotebookState.ACTIVE else None,
            schedule=schedule,
            kept_until=_instant(marks.kept_until),
            heads_up_for=_instant(marks.heads_up_for),
            heads_up_at=_instant(marks.heads_up_at),
            stopped_at=_instant(marks.stopped_at),
            reported=marks.reported,
        )

    @staticmethod
    def _activity(nb: Notebook, sweep: _Sweep) -> Activity:
        seen = sweep.reading.get(nb.id) if sweep.reading is not None else None
        if seen is None:
            return "unknown"
        cpu_idle = seen.cpu.idle if seen.cpu is not None else None
        gpu_idle = seen.gpu.idle if seen.gpu is not None else None
        return activity(gpu=nb.spec.gpu is not None, cpu_idle=cpu_idle, gpu_idle=gpu_idle)

    def _carry_out(self, item: _Due, sweep: _Sweep, taken: Taken) -> tuple[dict[str, Any], Counter[str]]:
        """The due actions in order, with the claims `taken` for them (the unused ones are given back);
        what was done so far is returned even when one fails."""
        changes: dict[str, Any] = {}
        done: Counter[str] = Counter()
        said: list[str] = []
        claimed = _Claimed(taken, said)
        steps = {"morning_report": self._report, "heads_up": self._heads_up, "stop": self._stop}
        try:
            for action in item.plan.actions:
                steps[action](item, sweep, changes, done, claimed)
        except Exception:
            log.exception("off-hours step failed", extra={"instance": item.notebook.id})
        finally:
            self.lifecycle.claims.give_back_unused(taken, [key for key, _ in item.claims()], said)
        return changes, done

    def _heads_up(
        self, item: _Due, sweep: _Sweep, changes: dict[str, Any], done: Counter[str], claimed: _Claimed
    ) -> None:
        nb, stop_point = item.notebook, item.plan.stop_point
        assert stop_point is not None and item.plan.stop_at is not None
        point = stop_point.timestamp()
        with claimed.once(nb, "offhours-heads-up", point) as mine:
            if mine:
                tz = self.lifecycle._sweep_tz(nb.owner, sweep)
                text, blocks = self.heads_up(nb, item.plan.stop_at, point, item.activity, tz)
                self.lifecycle._dm(nb.owner, text, blocks)
                done["offhours_heads_ups"] += 1
        sent = sweep.now if mine else claimed.at(nb, "offhours-heads-up", point)
        if sent is not None:
            changes.update(heads_up_for=point, heads_up_at=sent)

    def _stop(self, item: _Due, sweep: _Sweep, changes: dict[str, Any], done: Counter[str], _: _Claimed) -> None:
        nb, stop_point = item.notebook, item.plan.stop_point
        assert stop_point is not None
        fresh = self.lifecycle.records.get(nb.id)  # a "Keep it tonight" since the sweep read the record
        if fresh is None or (fresh.offhours.kept_until or 0) > stop_point.timestamp():
            return
        key = self.stop_key(nb.id, stop_point.timestamp())
        try:
            op, created = self.lifecycle.notebooks.request(
                "bot", nb.id, "stop", channel=None, dedupe_key=key, as_admin=True
            )
        except UserError as refused:  # being stopped or started by someone meanwhile: the next sweep sees
            log.info("off-hours stop of %s not asked: %s", nb.id, refused.message)
            return
        sweep.stopping.add(nb.id)
        if created:
            done["schedule_stops"] += 1
            audit.record(self.lifecycle.store, sweep.now, "bot", "notebook.offhours-stop", nb.id, owner=nb.owner)
        if created or nb.offhours.stopped_at is None or nb.offhours.stopped_at < stop_point.timestamp():
            changes.update(stopped_at=sweep.now if created else op.get("created_at", sweep.now), reported=False)

    def _report(
        self, item: _Due, sweep: _Sweep, changes: dict[str, Any], done: Counter[str], claimed: _Claimed
    ) -> None:
        nb, stopped = item.notebook, item.notebook.offhours.stopped_at
        assert stopped is not None
        with claimed.once(nb, "offhours-report", stopped) as mine:
            if mine:
                tz = self.lifecycle._sweep_tz(nb.owner, sweep)
                self.lifecycle._dm(nb.owner, self.morning_report(nb, stopped, sweep.now, tz))
                done["morning_reports"] += 1
        if mine or claimed.at(nb, "offhours-report", stopped) is not None:
            changes["reported"] = True

    @staticmethod
    def stop_key(instance_id: str, stop_point: float) -> str:
        return f"offhours-stop:{instance_id}:{stop_point:.0f}"

    # --- messages ----------------------------------------------------------------------------------
    def heads_up(
        self, nb: Notebook, stop_at: datetime, point: float, seen: Activity, tz: ZoneInfo
    ) -> tuple[str, Blocks]:
        when = _local(stop_at.timestamp(), tz)
        busy = {"busy": " It looks busy right now.", "idle": " It looks idle.", "unknown": ""}[seen]
        whose = f"its own `schedule={nb.spec.schedule}`" if nb.spec.schedule else "the team's schedule"
        text = (
            f"🌙 `{nb.id}` ({nb.spec.gpu_label(self.lifecycle.catalog)}, ≈${nb.spec.usd_per_hour:.2f}/h) stops "
            f"at {when} (your time): off-hours, by {whose}.{busy} Still working? "
            "Keep it tonight and it runs until the morning."
        )
        keep = button("Keep it tonight", KEEP_ACTION, f"{nb.id}|{point:.0f}", style="primary")
        hint = context(f"Its disks and files stay; `/notebook start {nb.id}` brings it back.")
        return text, [section(text), actions(keep, block_id=f"offhours:{nb.id}"), hint]

    def morning_report(self, nb: Notebook, stopped: float, now: float, tz: ZoneInfo) -> str:
        started_again = nb.state != NotebookState.STOPPED and nb.state_since > stopped
        idle = (nb.state_since if started_again else now) - stopped
        after = "It is running again." if started_again else f"`/notebook start {nb.id}` brings it back."
        return (
            f"☀️ Off-hours stopped `{nb.id}` at {_local(stopped, tz)} (your time): {hours(idle)} not running "
            f"saved ≈${idle / 3600 * nb.spec.usd_per_hour:.2f} (≈${nb.spec.usd_per_hour:.2f}/h). {after}"
        )

    # --- "Keep it tonight" -------------------------------------------------------------------------
    def keep_tonight(self, user: str, name: str, stop_point: float) -> tuple[str, bool]:
        """The owner (or an admin) keeps the notebook running through the window starting at
        `stop_point`. Returns what to say and whether this click kept it (a second click keeps
        nothing more and says what the first did); UserError when it can't be done."""
        lifecycle = self.lifecycle
        nb = lifecycle.notebooks.find(user, name)
        lifecycle.notebooks.authorize(user, nb, "keep")
        tz = lifecycle._tz(nb.owner)
        marks = nb.offhours
        if marks.kept_until is not None and marks.kept_until > stop_point:
            return self._kept_words(nb.id, marks.kept_until, marks.kept_by, tz), False
        stopping = lifecycle.notebooks.operations.get(
            lifecycle.notebooks.operations.op_id(self.stop_key(nb.id, stop_point))
        )
        if stopping is not None or nb.state != NotebookState.ACTIVE:
            raise UserError(f"`{nb.id}` is already stopped for the night; `/notebook start {nb.id}` brings it back.")
        now = lifecycle.clock()
        subject = self._subject(nb, tz, self._schedule(nb))
        window = pending(self.policy, subject, datetime.fromtimestamp(now, UTC))
        if window is None or window.start.timestamp() != stop_point:
            raise UserError(f"That evening is over; nothing was changed for `{nb.id}`.")
        until = window.end.timestamp()
        if not lifecycle.records.keep_tonight(nb.id, until, user):
            again = lifecycle.records.get(nb.id)
            by = again.offhours.kept_by if again else None
            return self._kept_words(nb.id, until, by, tz), False
        audit.record(lifecycle.store, now, user, "notebook.offhours-kept", nb.id, until=until)
        return self._kept_words(nb.id, until, user, tz), True

    @staticmethod
    def _kept_words(instance_id: str, until: float, by: str | None, tz: ZoneInfo) -> str:
        who = f" by <@{by}>" if by else ""
        return (
            f"👍 `{instance_id}` was kept tonight{who}: it runs until {_local(until, tz)} (owner's time), and "
            "off-hours stop it the next evening as usual."
        )


@dataclass(frozen=True)
class _Claimed:
    """One notebook's off-hours claims within a sweep: Taken.once for the message about the moment
    `at` (a stop point, a stop), and when a message another sweep claimed was claimed (its record
    write lost, or still under way)."""

    taken: Taken
    said: list[str]  # the claims used: their messages were sent

    def once(self, nb: Notebook, kind: str, at: float) -> AbstractContextManager[bool]:
        return self.taken.once(_claim(nb, kind, at)[0], self.said)

    def at(self, nb: Notebook, kind: str, at: float) -> float | None:
        return self.taken.at(_claim(nb, kind, at)[0])


def _local(seconds: float, tz: ZoneInfo) -> str:
    return datetime.fromtimestamp(seconds, tz).strftime("%a %H:%M")
