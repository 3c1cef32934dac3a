"""Living with notebooks: ownership checks, stop/start/delete as leased jobs, hand-over, adoption,
and keeping the bot's records true to what the cloud says.

Notebook records live in the `notebooks` collection keyed by instance id; stop, start and delete
are `operations` records advanced by the same leased reconciler pattern as launches.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bot.adapters.notify import Slack
from bot.adapters.store import Store
from bot.adapters.workbench import InstanceInfo, Workbench, WorkbenchError, label_value
from bot.domain import audit, leases
from bot.domain.catalog import Catalog
from bot.domain.errors import NotAllowed, UserError, one_of
from bot.domain.launches import running_specs
from bot.domain.policy import Rules
from bot.domain.spec import NotebookSpec
from bot.run.logs import log_context
from bot.ui.blocks import actions, button, section

log = logging.getLogger(__name__)
OPERATION_NAMESPACE = uuid.UUID("0b7a4f5e-2c1d-4e8f-9a3b-5d6c7e8f9a01")
GONE = "GONE"  # deleted outside the bot
LIVE = ("ACTIVE", "STOPPED", "STARTING", "STOPPING", "PROVISIONING", "SUSPENDED", "UPGRADING", "INITIALIZING")
ACTIONS = {
    "stop": ("Stopping", "⏹ Stopped", "STOPPED"),
    "start": ("Starting", "▶️ Started", "ACTIVE"),
    "delete": ("Deleting", "🗑 Deleted", None),
}


@dataclass(frozen=True)
class Notebook:
    id: str
    zone: str
    owner: str
    state: str
    spec: NotebookSpec
    created_at: float
    state_since: float
    running_seconds: float
    url: str | None
    channel: str | None
    doc: dict[str, Any]

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> Notebook:
        return cls(
            id=doc["id"],
            zone=doc.get("zone", ""),
            owner=doc.get("owner", ""),
            state=doc.get("state", "REQUESTED"),
            spec=NotebookSpec.from_dict(doc["spec"]),
            created_at=doc.get("created_at", 0.0),
            state_since=doc.get("state_since") or doc.get("created_at", 0.0),
            running_seconds=doc.get("running_seconds", 0.0),
            url=doc.get("url"),
            channel=doc.get("channel"),
            doc=doc,
        )

    def uptime(self, now: float) -> float:
        """Seconds this notebook has been running in all, including the current run."""
        return self.running_seconds + (now - self.state_since if self.state == "ACTIVE" else 0.0)

    def cost_so_far(self, now: float) -> float:
        return self.uptime(now) / 3600 * self.spec.usd_per_hour


def with_state(doc: dict[str, Any], state: str, now: float) -> dict[str, Any]:
    """The doc moved to `state`, with running time accounted (it is what the cost estimate uses)."""
    if doc.get("state") == state:
        return doc
    new = {**doc, "state": state, "state_since": now}
    if doc.get("state") == "ACTIVE":
        since = doc.get("state_since") or doc.get("created_at", now)
        new["running_seconds"] = doc.get("running_seconds", 0.0) + max(0.0, now - since)
    return new


class Notebooks:
    LEASE_SECONDS = 30  # a step is one or two API calls; a crashed worker delays its job this long
    SYNC_EVERY = 60.0
    MAX_ATTEMPTS = 6

    def __init__(
        self,
        *,
        store: Store,
        workbench: Workbench,
        slack: Slack,
        catalog: Catalog,
        rules: Rules,
        default_zone: str,
        clock: Callable[[], float] = time.time,
        worker_id: str | None = None,
        poll_seconds: float = 2.0,
    ) -> None:
        self.store = store
        self.workbench = workbench
        self.slack = slack
        self.catalog = catalog
        self.rules = rules
        self.default_zone = default_zone
        self.clock = clock
        self.worker_id = worker_id or uuid.uuid4().hex[:12]
        self.poll_seconds = poll_seconds
        self.on_change: Callable[[set[str]], None] | None = None  # refreshes App Homes of these users

    # --- reading ------------------------------------------------------------------------------------
    def get(self, instance_id: str) -> Notebook | None:
        doc = self.store.get("notebooks", instance_id)
        return Notebook.from_doc(doc) if doc else None

    def owned_by(self, user: str) -> list[Notebook]:
        docs = self.store.query("notebooks", owner=user)
        return sorted((Notebook.from_doc(d) for d in docs), key=lambda n: n.created_at)

    def everyone(self) -> list[Notebook]:
        return sorted((Notebook.from_doc(d) for d in self.store.query("notebooks")), key=lambda n: (n.owner, n.id))

    def find(self, user: str, name: str) -> Notebook:
        """The notebook `name` names: exact, else the caller's only notebook starting with it."""
        wanted = name.strip().lower()
        exact = self.get(wanted) if wanted else None
        if exact is not None:
            return exact
        mine = self.owned_by(user)
        matches = [n for n in mine if n.id.startswith(wanted)] if wanted else []
        if len(matches) == 1:
            return matches[0]
        names = [n.id for n in mine]
        if len(matches) > 1:
            raise UserError(f"`{name}` matches several of your notebooks: {one_of(m.id for m in matches)}.")
        listing = f"Yours: {one_of(names)}." if names else "You have no notebooks (`/notebook new` makes one)."
        raise UserError(f"I don't know a notebook called `{name}`. {listing}")

    def authorize(self, user: str, notebook: Notebook, action: str) -> None:
        """Owners and admins act on a notebook; anyone else is refused, and the attempt is audited."""
        if user == notebook.owner or self.rules.is_admin(user):
            return
        audit.record(self.store, self.clock(), user, f"notebook.{action}.refused", notebook.id, owner=notebook.owner)
        raise NotAllowed(f"`{notebook.id}` belongs to <@{notebook.owner}>; only they or an admin can {action} it.")

    # --- stop, start, delete -------------------------------------------------------------------------
    def request(
        self,
        user: str,
        name: str,
        action: str,
        *,
        channel: str | None,
        dedupe_key: str,
        message: tuple[str, str] | None = None,
        as_admin: bool = False,
    ) -> dict[str, Any]:
        """Check and record a stop/start/delete; the reconciler (or `advance`) carries it out.

        `message` (channel, ts) is updated with the outcome; otherwise one is posted in `channel`.
        `as_admin` is for the bot's own policy actions (auto-stop, auto-delete).
        """
        notebook = self.find(user, name)
        if not as_admin:
            self.authorize(user, notebook, action)
        if notebook.state == "REQUESTED":
            raise UserError(f"`{notebook.id}` is still being launched; try again when it is ready.")
        if notebook.state == GONE and action != "delete":
            raise UserError(
                f"`{notebook.id}` was deleted outside the bot; `/notebook delete {notebook.id}` forgets it."
            )
        if action == "stop" and notebook.state == "STOPPED":
            raise UserError(f"`{notebook.id}` is already stopped.")
        if action == "start" and notebook.state == "ACTIVE":
            raise UserError(f"`{notebook.id}` is already running.", link=notebook.url)
        if action == "start" and not as_admin:
            self.rules.check_quota(notebook.owner, notebook.spec, running_specs(self.store, notebook.owner))
        now = self.clock()
        op_id = str(uuid.uuid5(OPERATION_NAMESPACE, dedupe_key))
        earlier = self.store.get("operations", op_id)
        if earlier is not None:  # a retried delivery of the same click or command
            return earlier
        for other in self.store.query("operations", notebook=notebook.id, open=True):
            doing = ACTIONS[other["action"]][0].lower()
            raise UserError(
                f"`{notebook.id}` is already {doing} (asked by <@{other['requester']}>); try again when that is done."
            )
        record = {
            "id": op_id,
            "action": action,
            "notebook": notebook.id,
            "zone": notebook.zone,
            "owner": notebook.owner,
            "requester": user,
            "channel": channel,
            "message_channel": message[0] if message else None,
            "message_ts": message[1] if message else None,
            "state": "REQUESTED",
            "operation": None,
            "error": None,
            "open": True,
            "attempts": 0,
            "next_at": 0.0,
            "created_at": now,
        }
        if not self.store.create("operations", op_id, record):
            return self.store.get("operations", op_id) or record
        audit.record(self.store, now, user, f"notebook.{action}", notebook.id, owner=notebook.owner)
        self._show(record)
        return record

    def reconcile(self) -> int:
        """One pass: advance every stop, start and delete that is due."""
        return leases.work_due(self.store, "operations", self.clock(), self.advance)

    def advance(self, op_id: str) -> bool:
        doc = leases.claim(self.store, "operations", op_id, self.worker_id, self.clock(), self.LEASE_SECONDS)
        if doc is None:
            return False
        with log_context(user=doc.get("requester"), instance=doc.get("notebook")):
            return self._advance(op_id, doc)

    def _advance(self, op_id: str, doc: dict[str, Any]) -> bool:
        try:
            changes = self._step(doc)
        except WorkbenchError as exc:
            attempts = doc.get("attempts", 0) + 1
            if exc.retriable and attempts < self.MAX_ATTEMPTS:
                changes = {"attempts": attempts, "next_at": self._next_look(attempts)}
            else:
                changes = {"state": "FAILED", "error": exc.message}
        try:
            doc = leases.release(self.store, "operations", op_id, self.worker_id, self.clock(), changes)
        except leases.LeaseLost:
            return True
        if doc["state"] in ("DONE", "FAILED"):
            self._show(doc)
            if leases.close(self.store, "operations", op_id) and self.on_change:
                self.on_change({doc["owner"], doc["requester"]} - {"bot"})  # "bot": auto-stop and auto-delete
        return True

    def _step(self, op: dict[str, Any]) -> dict[str, Any]:
        zone, instance = op["zone"], op["notebook"]
        if op["state"] == "REQUESTED":
            notebook = self.get(instance)
            if op["action"] == "delete" and (notebook is None or notebook.state == GONE):
                return self._finish(op)  # nothing left in the cloud: forget the record
            call = {"stop": self.workbench.stop, "start": self.workbench.start}.get(op["action"])
            try:
                name = call(zone, instance) if call else self.workbench.delete(zone, instance, request_id=op["id"])
            except WorkbenchError as exc:
                if exc.kind == "not_found":
                    self._mark_gone(instance)
                    if op["action"] == "delete":
                        return self._finish(op)
                raise
            return {"state": "RUNNING", "operation": name, "attempts": 0, "next_at": self._next_look(0)}
        status = self.workbench.operation(op["operation"])
        if not status.done:
            attempts = op.get("attempts", 0) + 1
            return {"attempts": attempts, "next_at": self._next_look(attempts)}
        if status.error is not None:
            return {"state": "FAILED", "error": status.error.message}
        return self._finish(op)

    def _finish(self, op: dict[str, Any]) -> dict[str, Any]:
        now, instance = self.clock(), op["notebook"]
        final_state = ACTIONS[op["action"]][2]
        url = self._url(op) if op["action"] == "start" else None  # posted with the outcome
        seen = {"url": url} if url else {}
        if final_state is None:
            self.store.delete("notebooks", instance)
        else:
            self.store.update(
                "notebooks", instance, lambda d: {**with_state(d, final_state, now), **seen} if d else None
            )
        audit.record(self.store, now, op["requester"], f"notebook.{op['action']}.done", instance)
        return {"state": "DONE"}

    def _url(self, op: dict[str, Any]) -> str | None:
        """The JupyterLab link as Workbench gives it after a start (the record's, if it can't be read)."""
        try:
            info = self.workbench.get(op["zone"], op["notebook"])
        except WorkbenchError:
            info = None
        if info is not None and info.url:
            return info.url
        notebook = self.get(op["notebook"])
        return notebook.url if notebook else None

    def _show(self, op: dict[str, Any]) -> None:
        """Post or update the operation's message: in progress, then its outcome (a started notebook's link)."""
        doing, done, _ = ACTIONS[op["action"]]
        name, who = f"`{op['notebook']}`", f"<@{op['requester']}>"
        if op["state"] == "DONE":
            text = f"{done} {name} (asked by {who})."
        elif op["state"] == "FAILED":
            text = f"❌ Couldn't {op['action']} {name}: {op.get('error')}"
        else:
            text = f"⏳ {doing} {name} for {who}…"
        blocks = [section(text)]
        started = self.get(op["notebook"]) if op["state"] == "DONE" and op["action"] == "start" else None
        if started is not None and started.url:
            blocks.append(
                actions(button("Open JupyterLab", "open_notebook", started.id, url=started.url, style="primary"))
            )
        try:
            if op.get("message_ts"):
                self.slack.update(op["message_channel"], op["message_ts"], text, blocks)
            elif op.get("channel"):
                posted = self.slack.post_or_dm(op["channel"], op["requester"], text, blocks)
                self.store.update(
                    "operations",
                    op["id"],
                    lambda d: {**d, "message_channel": posted.channel, "message_ts": posted.ts} if d else None,
                )
        except Exception:
            log.exception("could not show the operation in Slack", extra={"instance": op["notebook"]})

    def _next_look(self, attempt: int) -> float:
        """When to look at an operation again, after `attempt` looks."""
        return self.clock() + leases.backoff(self.poll_seconds, attempt)

    # --- hand-over and adoption --------------------------------------------------------------------
    def transfer(self, user: str, name: str, new_owner: str) -> Notebook:
        notebook = self.find(user, name)
        self.authorize(user, notebook, "transfer")
        if new_owner == notebook.owner:
            raise UserError(f"<@{new_owner}> already owns `{notebook.id}`.")
        now = self.clock()
        doc = self.store.update("notebooks", notebook.id, lambda d: {**d, "owner": new_owner} if d else None)
        self._relabel(notebook.zone, notebook.id, {"owner": label_value(new_owner)})
        audit.record(self.store, now, user, "notebook.transfer", notebook.id, old=notebook.owner, new=new_owner)
        if self.on_change:
            self.on_change({notebook.owner, new_owner})
        return Notebook.from_doc(doc or {})

    def _relabel(self, zone: str, instance_id: str, changes: dict[str, str]) -> None:
        """Update the instance's labels; the record is the source of truth, a label only a convenience,
        so a failure here is logged and does not undo the change already made."""
        try:
            info = self.workbench.get(zone, instance_id)
            self.workbench.set_labels(zone, instance_id, {**(info.labels if info else {}), **changes})
        except WorkbenchError as exc:
            log.warning("could not relabel %s: %s", instance_id, exc)

    def adopt(self, admin: str, name: str, owner: str, zone: str | None = None) -> Notebook:
        """An admin makes an instance the bot did not create a managed notebook of `owner`."""
        if not self.rules.is_admin(admin):
            raise NotAllowed("Only admins can adopt instances.")
        zone = zone or self.default_zone
        if self.get(name) is not None:
            raise UserError(f"`{name}` is already managed by the bot.")
        info = self.workbench.get(zone, name)
        if info is None:
            raise UserError(f"There is no instance `{name}` in {zone}.")
        now = self.clock()
        doc = self._record_for(info, owner, now)
        if not self.store.create("notebooks", info.instance_id, doc):
            raise UserError(f"`{name}` is already managed by the bot.")
        self._relabel(zone, name, {"managed-by": "notebook-bot", "owner": label_value(owner)})
        audit.record(self.store, now, admin, "notebook.adopt", name, owner=owner)
        if self.on_change:
            self.on_change({owner})
        return Notebook.from_doc(doc)

    def _gpus_of(self, info: InstanceInfo, machine: str | None) -> tuple[str | None, int]:
        """The catalog GPU an instance made elsewhere runs with: attached (N1) or built into its machine."""
        if info.accelerator:
            key = next((k for k, g in self.catalog.gpus.items() if g.accelerator == info.accelerator), None)
            return (key, info.accelerator_count) if key else (None, 0)
        built_in = self.catalog.machines[machine].gpu if machine else None
        return (built_in.type, built_in.count) if built_in else (None, 0)

    def _record_for(self, info: InstanceInfo, owner: str, now: float) -> dict[str, Any]:
        machine = info.machine_type if info.machine_type in self.catalog.machines else None
        gpu, count = self._gpus_of(info, machine)
        price = self.catalog.usd_per_hour(machine, gpu, count) if machine else 0.0
        spec = NotebookSpec(
            environment="unknown",
            machine=info.machine_type or "unknown",
            gpu=gpu,
            gpu_count=count,
            disk_gb=0,
            boot_disk_gb=0,
            disk_type=self.catalog.defaults.disk_type,
            zone=info.zone,
            idle_seconds=0,
            usd_per_hour=price,
            name=info.instance_id,
        )
        return {
            "id": info.instance_id,
            "zone": info.zone,
            "owner": owner,
            "channel": None,
            "spec": spec.to_dict(),
            "launch_id": None,
            "state": info.state,
            "state_since": now,
            "created_at": now,
            "url": info.url,
            "managed": True,
            "adopted": True,
        }

    # --- truth from the cloud ----------------------------------------------------------------------
    def sync(self, *, force: bool = False, fresher_than: float | None = None) -> list[InstanceInfo]:
        """Bring records in line with the cloud (one list call per zone); returns unmanaged instances.

        Runs at most every SYNC_EVERY seconds (or `fresher_than`) across all workers unless forced.
        """
        now = self.clock()
        every = self.SYNC_EVERY if fresher_than is None else fresher_than
        if not force and not leases.throttle(self.store, "sync", now, every):
            return [InstanceInfo(**d) for d in (self.store.get("meta", "unmanaged") or {}).get("instances", [])]
        records = self.store.query("notebooks")
        self._forget_abandoned_launches(records, now)
        busy = {d["notebook"] for d in self.store.query("operations", open=True)}  # the bot's own stop/start
        zones = {d.get("zone") for d in records if d.get("zone")} | {self.default_zone}
        unmanaged: list[InstanceInfo] = []
        changed: set[str] = set()
        for zone in sorted(zones):
            found = {i.instance_id: i for i in self.workbench.list(zone)}
            for doc in (d for d in records if d.get("zone") == zone and d.get("state") not in ("REQUESTED", GONE)):
                info = found.pop(doc["id"], None)
                if doc["id"] in busy:
                    continue
                # written only if the record still says what it said before the list call: a state the
                # bot wrote meanwhile is newer than what the list saw
                seen = doc.get("state")
                if info is None:
                    self.store.update(
                        "notebooks",
                        doc["id"],
                        lambda d, s=seen: with_state(d, GONE, now) if d and d.get("state") == s else None,
                    )
                    audit.record(self.store, now, "bot", "notebook.gone", doc["id"])
                    changed.add(doc["owner"])
                elif info.state != seen or (info.url and info.url != doc.get("url")):
                    self.store.update(
                        "notebooks",
                        doc["id"],
                        lambda d, i=info, s=seen: _observed(d, i, now) if d and d.get("state") == s else None,
                    )
                    changed.add(doc["owner"])
            managed_ids = {d["id"] for d in records}
            unmanaged += [i for i in found.values() if i.instance_id not in managed_ids]
        self.store.put("meta", "unmanaged", {"at": now, "instances": [i.__dict__ for i in unmanaged]})
        if changed and self.on_change:
            self.on_change(changed)
        return unmanaged

    ABANDONED_AFTER = 15 * 60

    def _forget_abandoned_launches(self, records: list[dict[str, Any]], now: float) -> None:
        """A name reserved by a launch that ended without creating anything (a crash between two
        writes, say) would hold the name and the quota for ever: free it."""
        for doc in records:
            if doc.get("state") != "REQUESTED" or now - doc.get("created_at", now) < self.ABANDONED_AFTER:
                continue
            launch = self.store.get("launches", doc.get("launch_id") or "")
            if launch is None or launch.get("state") in ("FAILED", "DENIED", "EXPIRED"):
                self.store.delete("notebooks", doc["id"])
                log.warning("freed the name %s, reserved by a launch that never finished", doc["id"])

    def _mark_gone(self, instance_id: str) -> None:
        now = self.clock()
        self.store.update("notebooks", instance_id, lambda d: with_state(d, GONE, now) if d else None)
        audit.record(self.store, now, "bot", "notebook.gone", instance_id)


def _observed(doc: dict[str, Any] | None, info: InstanceInfo, now: float) -> dict[str, Any] | None:
    if doc is None:
        return None
    new = with_state(doc, info.state, now)
    if info.state == "STOPPED" and doc.get("state") in ("ACTIVE", "STOPPING"):
        new["stopped_outside"] = True  # idle shutdown or the console; lifecycle tells the owner once
    if info.url:
        new["url"] = info.url
    return new
