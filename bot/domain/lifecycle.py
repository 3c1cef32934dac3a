"""Idle and forgotten notebooks: reminders, snoozes, escalation, auto-stop and opt-in auto-delete.

A sweep looks at every managed notebook after one list call per zone (Notebooks.synced). Each
reminder is claimed (bot/domain/claims.py) under a key that names the notebook, the run (when its
current state began) and the reminder's period, so however many replicas sweep at once, a
reminder goes out once; the messages a sweep is about to send are claimed together, in one
transaction, before any is sent. Reminders wait for the owner's working hours in their Slack timezone.

What a notebook needs is decided from its record as the sweep's one query read it: a notebook with
nothing due costs no store call, a claim the record says was used already is not tried again, and
what a sweep said about a notebook is written to its record once (Records.swept), batched with
the other notebooks' in one transaction.

Utilization: each sweep reads Cloud Monitoring once for all running notebooks (bot.adapters.monitoring,
one query per metric over their zones) and keeps it as `_Sweep.reading`. A running notebook that is
busy by those figures (bot.domain.utilization) gets no reminder and is not stopped by escalation; one that
is idle is told for how long and what that cost; without figures the clock rule stands alone. A
notebook busy for a good part of its idle timeout gets a heads-up once per run, as Workbench's idle
shutdown counts kernel activity only and would stop a silent job while it works.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import Any, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from bot.adapters.monitoring import Reading, Utilization
from bot.adapters.notify import Slack
from bot.adapters.store import MAX_BATCH, Store
from bot.domain import audit, claims, leases
from bot.domain.catalog import Catalog
from bot.domain.claims import Claims, MaybeSent, Taken
from bot.domain.notebooks import Notebooks
from bot.domain.offhours import OffHours
from bot.domain.outbox import definite
from bot.domain.policy import Rules
from bot.domain.records import Notebook, NotebookState, Records, Reminded, Swept
from bot.domain.reminder_policy import Reminders
from bot.domain.schedules import Schedules
from bot.domain.spec import format_duration
from bot.domain.usage import UsageLog
from bot.domain.utilization import Usage, Verdict, judge
from bot.ui.blocks import Blocks, actions, button, section, select_menu
from bot.ui.listing import confirm_dialog, hours

log = logging.getLogger(__name__)
T = TypeVar("T")
_Once = Callable[[str, int], AbstractContextManager[bool]]  # Taken.once for one notebook's (kind, period)
WORKBENCH_IDLE_DEFAULT = 3 * 3600  # Workbench's own idle-timeout-seconds default
ALIGNMENT_SLACK = 600  # a busy run "fills the window" from its first 5-minute mean: allow for the edges
EXTEND_ACTION = "lifecycle_extend_idle"


@dataclass
class SweepReport:
    notebooks: int = 0
    reminders: int = 0
    notes: int = 0
    escalations: int = 0
    auto_stops: int = 0
    auto_deletes: int = 0
    deferred: int = 0  # due, but outside the owner's working hours or over the sweep's message budget
    busy: int = 0  # a reminder or escalation was due, but the notebook is busy by its utilization
    heads_ups: int = 0  # told that idle shutdown would stop a busy notebook
    monitoring_calls: int = 0  # Cloud Monitoring pages read (0 without Monitoring)
    offhours_heads_ups: int = 0  # off-hours (bot/domain/offhours.py): a stop is coming
    schedule_stops: int = 0
    morning_reports: int = 0

    @property
    def messages(self) -> int:
        """What counts against the sweep's message budget."""
        said = self.reminders + self.notes + self.escalations + self.heads_ups
        return said + self.offhours_heads_ups + self.morning_reports

    def add(self, other: SweepReport) -> None:
        """Count in what a part of the sweep did (not the notebooks it looked at)."""
        counts = ("reminders", "notes", "escalations", "auto_stops", "auto_deletes", "deferred", "heads_ups")
        for name in (*counts, *OffHours.COUNTS):
            setattr(self, name, getattr(self, name) + getattr(other, name))


class _Ledger:
    """What a sweep said about its notebooks, written together once a batch of them is carried out:
    one transaction on the records and one write of audit entries per MAX_BATCH notebooks, so the
    sends never wait for bookkeeping (a sweep that dies before writing it leaves its claims, which
    keep the messages from going out again). Writing is idempotent, so a batch that fails is tried
    again one visit at a time."""

    def __init__(self, records: Records, store: Store) -> None:
        self.records = records
        self.store = store
        self._pending: list[tuple[Swept, tuple[str, dict[str, Any]] | None]] = []
        self._mutex = threading.Lock()  # guards _pending: visits add from the sweep's workers

    def add(self, visit: Swept, event: tuple[str, dict[str, Any]] | None) -> None:
        with self._mutex:
            self._pending.append((visit, event))

    def write_pending(self) -> None:
        with self._mutex:
            pending, self._pending = self._pending, []
        for start in range(0, len(pending), MAX_BATCH):
            self._write(pending[start : start + MAX_BATCH])

    def _write(self, batch: list[tuple[Swept, tuple[str, dict[str, Any]] | None]]) -> None:
        _in_one_or_each(self.records.swept, [visit for visit, _ in batch])
        _in_one_or_each(partial(audit.record_all, self.store), [event for _, event in batch if event is not None])


def _in_one_or_each(write: Callable[[list[T]], None], items: list[T]) -> None:
    """`write(items)`; if that fails, each item on its own (so one bad item loses only itself)."""
    if not items:
        return
    try:
        write(items)
        return
    except Exception:
        log.exception("a sweep's batch write failed; writing it one at a time")
    for item in items:
        try:
            write([item])
        except Exception:
            log.exception("a sweep's write failed")


@dataclass
class _Sweep:
    """One sweep: its moment, its tally, its ledger, and what does not change within it (owners'
    timezones, and running notebooks' utilization: `reading.get(notebook_id)`; None when Monitoring
    is not configured or failed this sweep)."""

    now: float
    ledger: _Ledger
    reading: Reading | None = None
    report: SweepReport = field(default_factory=SweepReport)
    zones: dict[str, ZoneInfo] = field(default_factory=dict)
    zones_lock: threading.Lock = field(default_factory=threading.Lock)
    stopping: set[str] = field(default_factory=set)  # stopped by off-hours in this sweep: no reminder


@dataclass
class _Plan:
    """What a sweep has to do about one notebook, decided from its record (and its owner's timezone)
    alone; a step whose claim the record says was used already is left out."""

    kind: str  # running or stopped
    since: float  # seconds in its current state
    tell_stopped_outside: bool = False
    delete_notice: bool = False  # announce the policy's automatic deletion
    delete: bool = False  # delete it (if the deletion was announced)
    escalate: bool = False
    reminder: int | None = None  # the reminder period due
    deferred: bool = False  # a reminder is due, outside the owner's working hours
    usage: Usage | None = None  # a running notebook's utilization, as the sweep's reading shows it
    busy: bool = False  # a reminder or escalation is due, but the notebook is busy
    heads_up: int | None = None  # idle shutdown would stop it while busy: offer this idle timeout

    @property
    def messages(self) -> int:
        """The most messages carrying it out counts against the sweep's budget."""
        reminder = self.escalate or self.reminder is not None
        return self.tell_stopped_outside + self.delete_notice + reminder + (self.heads_up is not None)

    @property
    def work(self) -> bool:
        return bool(self.messages or self.delete)

    def steps(self) -> list[tuple[str, int]]:
        """The claims carrying it out may use, as (kind, period), in the order _act takes them."""
        steps = [("idle-stop", 0)] if self.tell_stopped_outside else []
        if self.heads_up is not None and self.usage is not None:
            steps.append(("heads-up", 0))
        if self.delete_notice:
            steps.append(("delete-notice", 0))
        if self.delete:
            steps.append(("auto-delete", 0))
        if self.escalate:
            steps.append(("escalation", 0))
        elif self.reminder is not None and not self.deferred:
            steps.append((self.kind, self.reminder))
        return steps


class Lifecycle:
    USER_CACHE_SECONDS = 24 * 3600
    WORKERS = 8  # notebooks carried out at once within a sweep

    def __init__(
        self,
        *,
        store: Store,
        notebooks: Notebooks,
        slack: Slack,
        catalog: Catalog,
        rules: Rules,
        reminders: Reminders,
        schedules: Schedules | None = None,
        clock: Callable[[], float] = time.time,
        utilization: Utilization | None = None,
        usage: UsageLog | None = None,
    ) -> None:
        self.store = store
        self.notebooks = notebooks
        self.slack = slack
        self.catalog = catalog
        self.rules = rules
        self.policy = reminders
        self.clock = clock
        self.utilization = utilization  # None: Monitoring is not configured; reminders go by the clock
        self.records = Records(store, clock)
        self.claims = Claims(store, clock)
        self._sweeps = leases.Throttle(store, "sweep")
        self.usage = usage  # keeps each sweep's reading for the cost reports
        self.offhours = OffHours(self, schedules) if schedules is not None else None

    # --- the sweep ---------------------------------------------------------------------------------
    def sweep_if_due(self, every: float = 300.0) -> SweepReport | None:
        """A sweep at most every `every` seconds across all workers (the worker ticks every few)."""
        return self.sweep() if self._sweeps.take(self.clock(), every) else None

    def sweep(self) -> SweepReport:
        """Look at every notebook in order. The ones with something due are taken in batches: a
        batch's messages are claimed in one transaction, then its notebooks are carried out WORKERS
        at a time (each one's steps in order), as the Slack and store calls are mostly waiting. The
        message budget holds exactly as if one at a time: a notebook joins a batch only while the
        messages sent so far and the most the batch may send certainly leave room; otherwise the
        batch is carried out first (a refused claim sends nothing, which leaves room for more).
        The reading's samples are kept for the cost reports meanwhile, as nothing here reads them."""
        notebooks = self.notebooks.synced()
        sweep = _Sweep(self.clock(), _Ledger(self.records, self.store))
        sweep.reading = self._read_utilization(notebooks, sweep.now)
        sweep.report.monitoring_calls = sweep.reading.calls if sweep.reading else 0
        with ThreadPoolExecutor(1, thread_name_prefix="sweep-usage") as keeper:
            if sweep.reading is not None and self.usage is not None:  # batched; never raises
                keeper.submit(self.usage.record, sweep.reading, [n.id for n in notebooks])
            if self.offhours is not None:  # first: a heads-up or a stop can't wait for the next sweep, reminders can
                self.offhours.sweep(notebooks, sweep)
            self._message(notebooks, sweep)
        return sweep.report

    def _message(self, notebooks: list[Notebook], sweep: _Sweep) -> None:
        """The lifecycle's messages and actions, within what is left of the sweep's message budget."""
        report, budget = sweep.report, self.policy.max_messages_per_sweep
        batch: list[tuple[Notebook, _Plan]] = []
        with ThreadPoolExecutor(self.WORKERS, thread_name_prefix="sweep") as pool:
            for notebook in notebooks:
                report.notebooks += 1
                if batch and report.messages + sum(plan.messages for _, plan in batch) >= budget:
                    self._carry_out(batch, sweep, pool)
                    batch = []
                if report.messages >= budget:
                    report.deferred += 1
                    continue
                if notebook.id in sweep.stopping:  # "still using it?" about a notebook being stopped
                    continue
                try:
                    plan = self._plan(notebook, sweep)
                except Exception:
                    log.exception("lifecycle check failed", extra={"instance": notebook.id})
                    continue
                report.busy += plan.busy
                if plan.work:
                    batch.append((notebook, plan))
                elif plan.deferred:
                    report.deferred += 1
            self._carry_out(batch, sweep, pool)

    def _read_utilization(self, notebooks: list[Notebook], now: float) -> Reading | None:
        """One Monitoring read for every running notebook (one query per metric over their zones);
        None without Monitoring or when it fails: the sweep then goes by the clock, and says so once."""
        if self.utilization is None:
            return None
        running = [n for n in notebooks if n.state == NotebookState.ACTIVE and n.zone]
        try:
            return self.utilization.read(
                {n.zone for n in running}, names={n.id for n in running}, now=datetime.fromtimestamp(now, UTC)
            )
        except Exception as exc:  # permission denied, unavailable, no credentials: never the sweep's end
            log.warning("no utilization figures this sweep (reminders go by the clock): %s", exc)
            return None

    def _carry_out(self, batch: list[tuple[Notebook, _Plan]], sweep: _Sweep, pool: ThreadPoolExecutor) -> None:
        """Claim the batch's messages together, then carry its notebooks out (a failed claiming
        sends nothing: the next sweep tries again)."""
        if not batch:
            return
        wanted = {
            self._key(nb, kind, period): {"notebook": nb.id, "kind": kind}
            for nb, plan in batch
            for kind, period in plan.steps()
            if self._key(nb, kind, period) not in nb.said
        }
        try:
            taken = self.claims.take(wanted)
        except Exception:
            log.exception("could not claim this sweep's messages; the next sweep tries again")
            return
        for visited in pool.map(lambda item: self._visit(*item, sweep, taken), batch):
            sweep.report.add(visited)
        sweep.ledger.write_pending()

    def _visit(self, nb: Notebook, plan: _Plan, sweep: _Sweep, taken: Taken) -> SweepReport:
        report = SweepReport()
        try:
            self._act(nb, plan, sweep, report, taken)
        except Exception:
            log.exception("lifecycle check failed", extra={"instance": nb.id})
        return report

    def _plan(self, nb: Notebook, sweep: _Sweep) -> _Plan:
        now = sweep.now
        kind, since = self._kind(nb), now - nb.state_since
        plan = _Plan(kind, since, tell_stopped_outside=nb.stopped_outside and nb.state == NotebookState.STOPPED)
        if nb.state == NotebookState.ACTIVE:
            plan.usage = judge(nb, sweep.reading, busy_above=self.policy.busy_above, run_since=nb.state_since)
            plan.heads_up = self._heads_up_due(nb, plan.usage, sweep)
        if nb.state not in (NotebookState.ACTIVE, NotebookState.STOPPED) or nb.snoozed_until > now:
            return plan
        limit = self.policy.auto_delete_stopped_after
        if kind == "stopped" and limit:
            notice_due = since >= limit - self.policy.auto_delete_notice
            plan.delete_notice = notice_due and self._key(nb, "delete-notice", 0) not in nb.said
            plan.delete = since >= limit and self._key(nb, "auto-delete", 0) not in nb.said
        if since < self._threshold(nb):
            return plan
        if plan.usage is not None and plan.usage.busy:
            plan.busy = True  # working: not nagged, not stopped; asked again once it is not
            return plan
        unanswered = nb.unanswered if nb.unanswered_run == nb.state_since else 0
        if unanswered >= self.policy.escalate_after:
            plan.escalate = self._key(nb, "escalation", 0) not in nb.said
            return plan
        if not self._working_hours(nb.owner, now, sweep):
            plan.deferred = True
            return plan
        period = int((since - self._threshold(nb)) // self.policy.repeat_every)
        if self._key(nb, kind, period) not in nb.said:
            plan.reminder = period
        return plan

    def _act(self, nb: Notebook, plan: _Plan, sweep: _Sweep, report: SweepReport, taken: Taken) -> None:
        """Carry out `plan` with the claims `taken` for it, give back those it did not use, then hand
        the sweep's ledger what was said about the notebook."""
        said: list[str] = []
        told = False
        reminded: Reminded | None = None

        def once(kind: str, period: int) -> AbstractContextManager[bool]:
            return taken.once(self._key(nb, kind, period), said)

        try:
            if plan.tell_stopped_outside:
                self._tell_stopped_outside(nb, report, once)
                told = True
            if plan.heads_up is not None and plan.usage is not None:
                self._heads_up(nb, plan.usage, plan.heads_up, report, once)
            if plan.delete_notice or plan.delete:
                self._auto_delete(nb, plan, sweep, report, once, said)
            if plan.escalate:
                self._escalate(nb, plan.kind, plan.since, report, once)
            elif plan.deferred:
                report.deferred += 1
            elif plan.reminder is not None:
                reminded = self._remind(nb, plan, sweep.now, once)
        finally:
            self.claims.give_back_unused(taken, [self._key(nb, kind, period) for kind, period in plan.steps()], said)
            if told or said:
                event = None
                if reminded is not None:
                    action = f"reminder.{plan.kind}"
                    event = audit.entry(sweep.now, "bot", action, nb.id, owner=nb.owner, period=plan.reminder)
                sweep.ledger.add(Swept(nb.id, tuple(said), told, reminded), event)
        if reminded is not None:
            report.reminders += 1

    def _tell_stopped_outside(self, nb: Notebook, report: SweepReport, once: _Once) -> None:
        with once("idle-stop", 0) as mine:
            if mine:
                self._dm(
                    nb.owner,
                    f"💤 `{nb.id}` was stopped (Workbench's idle shutdown, or outside the bot). "
                    f"Its disks still bill ≈${self._disk_month(nb):.2f}/month; `/notebook start {nb.id}` "
                    "brings it back.",
                )
                report.notes += 1

    def _remind(self, nb: Notebook, plan: _Plan, now: float, once: _Once) -> Reminded | None:
        """Send the plan's reminder unless another sweep has; None if not sent here."""
        kind, period = plan.kind, plan.reminder or 0
        with once(kind, period) as mine:
            if not mine:
                return None
            text, blocks = self.reminder(nb, kind, plan.since, now, plan.usage)
            return Reminded(self._key(nb, kind, period), nb.state_since, self._dm(nb.owner, text, blocks))

    # --- a silent busy job that idle shutdown would stop ---------------------------------------------
    def idle_timeout(self, nb: Notebook) -> int:
        """The notebook's idle shutdown timeout (Workbench's default where the record doesn't know it)."""
        return nb.spec.idle_seconds or WORKBENCH_IDLE_DEFAULT

    def extended_timeout(self) -> int:
        """What a heads-up offers: the configured timeout within the policy's idle bounds."""
        bounds = self.rules.policy
        return max(bounds.idle_min, min(bounds.idle_max, self.policy.heads_up_extend_to))

    def _heads_up_due(self, nb: Notebook, usage: Usage, sweep: _Sweep) -> int | None:
        """The idle timeout to offer, if the notebook has been busy for a good part of its timeout
        (the heads_up_after share, or the reading's whole window if that is shorter), the offer
        would lengthen it, and this run has not had one."""
        if not usage.busy or sweep.reading is None:
            return None
        timeout, offered = self.idle_timeout(nb), self.extended_timeout()
        window = (sweep.reading.end - sweep.reading.start).total_seconds()
        needed = min(self.policy.heads_up_after * timeout, window - ALIGNMENT_SLACK)
        if usage.span < needed or offered <= timeout or self._key(nb, "heads-up", 0) in nb.said:
            return None
        return offered

    def _heads_up(self, nb: Notebook, usage: Usage, offered: int, report: SweepReport, once: _Once) -> None:
        with once("heads-up", 0) as mine:
            if mine:
                text, blocks = self.heads_up(nb, usage, offered)
                self._dm(nb.owner, text, blocks)
                report.heads_ups += 1

    @staticmethod
    def _kind(nb: Notebook) -> str:
        return "running" if nb.state == NotebookState.ACTIVE else "stopped"

    def _threshold(self, nb: Notebook) -> float:
        if nb.state == NotebookState.STOPPED:
            return self.policy.stopped_after
        return self.policy.running_gpu_after if nb.spec.gpu_count else self.policy.running_cpu_after

    @staticmethod
    def _key(nb: Notebook, kind: str, period: int) -> str:
        return claims.key(nb.id, nb.state_since, kind, period)

    # --- messages ----------------------------------------------------------------------------------
    def reminder(
        self, nb: Notebook, kind: str, since: float, now: float, usage: Usage | None = None
    ) -> tuple[str, Blocks]:
        snooze = self._snooze_menu(nb.id)
        if kind == "running":
            run_cost = since / 3600 * nb.spec.usd_per_hour
            seen = (usage or Usage(Verdict.UNKNOWN)).words(nb.spec.usd_per_hour)
            text = (
                f"⏰ `{nb.id}` ({nb.spec.gpu_label(self.catalog)}) has been running for {hours(since)}, "
                f"≈${run_cost:.2f} so far this run (≈${nb.spec.usd_per_hour:.2f}/h). {seen} Still using it?"
            )
            buttons = [button("Stop now", "lifecycle_stop", nb.id, style="danger"), snooze]
        else:
            text = (
                f"🧊 `{nb.id}` has been stopped for {hours(since)}. Its disks still cost "
                f"≈${self._disk_month(nb):.2f}/month. Delete it if you're done (its disks and data go too)."
            )
            delete = button("Delete", "lifecycle_delete", nb.id, style="danger", confirm=confirm_dialog(nb.id))
            buttons = [delete, snooze]
        return text, [section(text), actions(*buttons, block_id=f"lifecycle:{nb.id}")]

    def heads_up(self, nb: Notebook, usage: Usage, offered: int) -> tuple[str, Blocks]:
        timeout = format_duration(self.idle_timeout(nb))
        text = (
            f"🏃 `{nb.id}` is working: {usage.words(nb.spec.usd_per_hour)} Heads-up: Workbench's idle "
            f"shutdown counts only notebook activity (running a cell, new output, a terminal), not "
            f"{usage.metric or 'CPU'} use, so if your job prints nothing for {timeout} the notebook is stopped "
            "while it works. Extend its idle timeout?"
        )
        extend = button(
            f"Extend idle timeout to {format_duration(offered)}",
            EXTEND_ACTION,
            f"{nb.id}|{offered}",
            style="primary",
        )
        return text, [section(text), actions(extend, block_id=f"heads-up:{nb.id}")]

    def _snooze_menu(self, nb_id: str) -> dict[str, Any]:
        options = [(f"{nb_id}|{s}", f"Keep for {format_duration(s)}") for s in self.policy.snooze_choices]
        return select_menu("lifecycle_snooze", "Keep it…", options)

    def _disk_month(self, nb: Notebook) -> float:
        gigabytes = nb.spec.disk_gb + nb.spec.boot_disk_gb
        return self.catalog.disk_usd_per_month(nb.spec.disk_type, gigabytes) if gigabytes else 0.0

    def _dm(self, user: str, text: str, blocks: Blocks | None = None) -> dict[str, str]:
        channel = self.slack.dm_channel(user)  # outside the try: a lost reply here sent nothing
        try:
            posted = self.slack.post(channel, text, blocks)
        except Exception as exc:
            if definite(exc):
                raise
            raise MaybeSent(f"Slack's reply to a DM to {user} was lost") from exc
        return {"channel": posted.channel, "ts": posted.ts}

    # --- answers -----------------------------------------------------------------------------------
    def snooze(self, user: str, nb_id: str, seconds: int, message: tuple[str, str] | None) -> None:
        notebook = self.notebooks.find(user, nb_id)
        self.notebooks.authorize(user, notebook, "snooze reminders for")
        if seconds not in self.policy.snooze_choices:
            raise ValueError(f"not an offered snooze: {seconds}")
        until = self.clock() + seconds
        self.records.snooze(notebook.id, until)
        audit.record(self.store, self.clock(), user, "reminder.snoozed", notebook.id, until=until)
        if message:
            when = datetime.fromtimestamp(until, self._tz(notebook.owner)).strftime("%a %d %b %H:%M")
            text = f"👍 Keeping `{notebook.id}` until {when} (your time); I'll ask again then."
            self.slack.update(message[0], message[1], text, [section(text)])

    def answered(self, nb_id: str) -> None:
        """The owner acted on a reminder (stop or delete): unanswered reminders start again from zero."""
        self.records.answered(nb_id)

    # --- escalation and automatic actions ------------------------------------------------------------
    def _escalate(self, nb: Notebook, kind: str, since: float, report: SweepReport, once: _Once) -> None:
        with once("escalation", 0) as mine:
            if mine:
                self._escalate_now(nb, kind, since, report)

    def _escalate_now(self, nb: Notebook, kind: str, since: float, report: SweepReport) -> None:
        action = ""
        if kind == "running" and self.policy.auto_stop:
            action = " I'm stopping it now."
            self.notebooks.request(
                "bot",
                nb.id,
                "stop",
                channel=None,
                dedupe_key=f"auto-stop:{nb.id}:{nb.state_since:.0f}",
                as_admin=True,
            )
            report.auto_stops += 1
        text = (
            f"📣 <@{nb.owner}> hasn't answered {self.policy.escalate_after} reminders about `{nb.id}` "
            f"({kind} for {hours(since)}, ≈${nb.spec.usd_per_hour:.2f}/h).{action}"
        )
        self._tell_admins(text)
        self._dm(nb.owner, f"📣 You didn't answer the reminders about `{nb.id}`, so admins were told.{action}")
        audit.record(self.store, self.clock(), "bot", "reminder.escalated", nb.id, auto_stop=bool(action))
        report.escalations += 1

    def _auto_delete(
        self, nb: Notebook, plan: _Plan, sweep: _Sweep, report: SweepReport, once: _Once, said: list[str]
    ) -> None:
        limit = self.policy.auto_delete_stopped_after or 0
        if plan.delete_notice:
            with once("delete-notice", 0) as mine:
                if mine:
                    self._announce_deletion(nb, plan.since, limit, sweep, report)
        if not plan.delete:
            return
        notice = self._key(nb, "delete-notice", 0)
        if notice in nb.said or notice in said or self.claims.claimed(notice):  # announced
            with once("auto-delete", 0) as mine:
                if mine:
                    self._delete_now(nb, plan.since, report)

    def _announce_deletion(self, nb: Notebook, since: float, limit: float, sweep: _Sweep, report: SweepReport) -> None:
        tz = self._sweep_tz(nb.owner, sweep)
        on = datetime.fromtimestamp(nb.state_since + limit, tz).strftime("%a %d %b %H:%M")
        text = (
            f"🗑 `{nb.id}` has been stopped for {hours(since)}. By policy it will be *deleted on {on}* "
            "(your time), with its disks, unless you keep it."
        )
        blocks = [section(text), actions(self._snooze_menu(nb.id), block_id=f"lifecycle:{nb.id}")]
        self._dm(nb.owner, text, blocks)
        report.notes += 1

    def _delete_now(self, nb: Notebook, since: float, report: SweepReport) -> None:
        self.notebooks.request(
            "bot",
            nb.id,
            "delete",
            channel=None,
            dedupe_key=f"auto-delete:{nb.id}:{nb.state_since:.0f}",
            as_admin=True,
        )
        self._dm(nb.owner, f"🗑 Deleting `{nb.id}`: it was stopped for {hours(since)} (policy).")
        audit.record(self.store, self.clock(), "bot", "notebook.auto-delete", nb.id, owner=nb.owner)
        report.auto_deletes += 1

    def _tell_admins(self, text: str) -> None:
        channel = self.rules.access.approval_channel
        if self.policy.escalate_to == "approval_channel" and channel:
            self.slack.post(channel, text)
            return
        for admin in (a for a in self.rules.access.admins if a.startswith(("U", "W"))):
            self._dm(admin, text)

    # --- working hours -----------------------------------------------------------------------------
    def _working_hours(self, user: str, now: float, sweep: _Sweep) -> bool:
        if not self.policy.respect_working_hours:
            return True
        local = datetime.fromtimestamp(now, self._sweep_tz(user, sweep))
        start, end = self.policy.working_hours
        return local.weekday() in self.policy.working_days and start <= local.hour < end

    def _sweep_tz(self, user: str, sweep: _Sweep) -> ZoneInfo:
        """The user's timezone, looked up once per sweep."""
        with sweep.zones_lock:
            if user not in sweep.zones:
                sweep.zones[user] = self._tz(user)
            return sweep.zones[user]

    def _tz(self, user: str) -> ZoneInfo:
        """The user's timezone from Slack (users.info), cached in the store for a day."""
        now = self.clock()
        cached = self.store.get("users", user)
        if cached is None or now - cached.get("at", 0) > self.USER_CACHE_SECONDS:
            try:
                info = self.slack.user(user)
                cached = {"tz": info.tz or "UTC", "at": now}
            except Exception:
                log.warning("no timezone for %s; using UTC", user)
                cached = {"tz": "UTC", "at": now}
            self.store.put("users", user, cached)
        try:
            return ZoneInfo(cached["tz"])
        except (ZoneInfoNotFoundError, ValueError):
            return ZoneInfo("UTC")
