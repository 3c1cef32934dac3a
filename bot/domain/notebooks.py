"""Living with notebooks: who may act on one, stop/start/delete requests, hand-over, adoption,
and keeping the records true to what the cloud says (one list call per zone).

Records are read and changed through bot/domain/records.py, their only writer; stop, start and
delete are jobs of bot/domain/operations.py.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from bot.adapters.notify import Slack
from bot.adapters.store import Store
from bot.adapters.workbench import InstanceInfo, Workbench, WorkbenchError, label_value
from bot.domain import audit, leases
from bot.domain.catalog import Catalog
from bot.domain.errors import NotAllowed, UserError
from bot.domain.operations import Action, Operations
from bot.domain.policy import Rules
from bot.domain.records import LAUNCH_PHASES, Notebook, NotebookState, Records
from bot.domain.spec import NotebookSpec, instance_name, zone_name

log = logging.getLogger(__name__)
GONE = NotebookState.GONE


class Notebooks:
    SYNC_EVERY = 60.0
    ABANDONED_AFTER = 15 * 60

    def __init__(
        self,
        *,
        store: Store,
        workbench: Workbench,
        operations: Operations,
        slack: Slack,
        catalog: Catalog,
        rules: Rules,
        default_zone: str,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.workbench = workbench
        self.operations = operations
        self.slack = slack
        self.catalog = catalog
        self.rules = rules
        self.default_zone = default_zone
        self.clock = clock
        self.records = Records(store, clock)
        self._syncs = leases.Throttle(store, "sync")
        self.on_change: Callable[[set[str]], None] | None = None  # refreshes App Homes of these users

    # --- reading ------------------------------------------------------------------------------------
    def get(self, instance_id: str) -> Notebook | None:
        return self.records.get(instance_id)

    def owned_by(self, user: str) -> list[Notebook]:
        return self.records.owned_by(user)

    def everyone(self) -> list[Notebook]:
        return self.records.everyone()

    def unmanaged(self) -> list[InstanceInfo]:
        """The instances without a record that the last cloud sync saw (a store read, no cloud call)."""
        return [InstanceInfo(**d) for d in (self.store.get("meta", "unmanaged") or {}).get("instances", [])]

    def find(self, user: str, name: str) -> Notebook:
        return self.records.find(user, name)

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
    ) -> tuple[dict[str, Any], bool]:
        """Check who asks and record a stop/start/delete; a worker (or `operations.advance`) does it.
        Returns (operation, created): False for a repeated dedupe_key, with the first operation.

        `as_admin` is for the bot's own policy actions (auto-stop, auto-delete, a cancelled launch)."""
        earlier = self.operations.get(self.operations.op_id(dedupe_key))
        if earlier is not None:  # a retried delivery, or a second click on the same offer
            return earlier, False
        notebook = self.find(user, name)
        if not as_admin:
            self.authorize(user, notebook, action)
        return self.operations.request(
            user, notebook, Action(action), channel=channel, dedupe_key=dedupe_key, message=message
        )

    # --- hand-over and adoption --------------------------------------------------------------------
    def transfer(self, user: str, name: str, new_owner: str) -> Notebook:
        notebook = self.find(user, name)
        self.authorize(user, notebook, "transfer")
        if new_owner == notebook.owner:
            raise UserError(f"<@{new_owner}> already owns `{notebook.id}`.")
        now = self.clock()
        moved = self.records.transfer(notebook.id, new_owner)
        self._relabel(notebook.zone, notebook.id, {"owner": label_value(new_owner)})
        audit.record(self.store, now, user, "notebook.transfer", notebook.id, old=notebook.owner, new=new_owner)
        if self.on_change:
            self.on_change({notebook.owner, new_owner})
        return moved or notebook

    def hand_over(self, user: str, name: str, new_owner: str) -> Notebook:
        """Transfer, and tell the new owner what they got (and what Workbench can't move)."""
        notebook = self.transfer(user, name, new_owner)
        self.slack.dm(
            new_owner,
            f"<@{user}> handed the notebook `{notebook.id}` to you: it is yours to stop, start and delete "
            "(`/notebook list`). Opening JupyterLab stays with the Google account it was created for, "
            "as Workbench can't change an instance's owner; ask an admin if you need access.",
        )
        return notebook

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
        zone = zone_name(zone) if zone else self.default_zone
        name = instance_name(name)  # both before they become a store key or part of an API path
        if self.get(name) is not None:
            raise UserError(f"`{name}` is already managed by the bot.")
        info = self.workbench.get(zone, name)
        if info is None:
            raise UserError(f"There is no instance `{name}` in {zone}.")
        now = self.clock()
        doc = self._record_for(info, owner, now)
        if not self.records.adopt(doc):
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

        Runs at most every SYNC_EVERY seconds (or `fresher_than`) across all workers unless forced;
        otherwise answers with what the last sync found.
        """
        found = self._sync(self.clock())[0] if force else self.sync_if_due(fresher_than)
        return self.unmanaged() if found is None else found

    def sync_if_due(self, fresher_than: float | None = None) -> list[InstanceInfo] | None:
        """The periodic sync, if its time has come (the unmanaged instances it found), else None
        without a read: what each reconcile pass calls."""
        now = self.clock()
        if not self._syncs.take(now, self.SYNC_EVERY if fresher_than is None else fresher_than):
            return None
        return self._sync(now)[0]

    def synced(self) -> list[Notebook]:
        """Sync now (as `sync(force=True)`) and return every record as it then stands, from the sync's
        one query: what the sync wrote replaces what it read (the lifecycle sweep reads no more).
        It counts as the periodic sync: the pass that sweeps lists each zone once, not twice."""
        now = self.clock()
        self._syncs.take(now, 0.0)  # the next periodic sync is due SYNC_EVERY after this one
        return self._sync(now)[1]

    def _sync(self, now: float) -> tuple[list[InstanceInfo], list[Notebook]]:
        records = self.records.everyone()
        current = {n.id: n for n in records}  # the records as they stand after this sync, in order

        def read_again(instance_id: str) -> None:  # changed by someone else meanwhile (rare)
            again = self.records.get(instance_id)
            if again is None:
                current.pop(instance_id, None)
            else:
                current[instance_id] = again

        for freed in self._forget_abandoned_launches(records, now):
            read_again(freed)
        zones = sorted({n.zone for n in records if n.zone} | {self.default_zone})
        # every list call after the records were read (a list older than a record must not overwrite it),
        # all at once: they and the operations query only wait on the network
        with ThreadPoolExecutor(min(len(zones) + 1, 8), thread_name_prefix="sync") as pool:
            lists = {zone: pool.submit(self.workbench.list, zone) for zone in zones}
            open_operations = pool.submit(self.store.query, "operations", open=True)
        busy = {d["notebook"] for d in open_operations.result()}  # the bot's own stop/start
        unmanaged: list[InstanceInfo] = []
        changed: set[str] = set()
        managed_ids = {n.id for n in records}
        for zone, listed in lists.items():
            found = {i.instance_id: i for i in listed.result()}
            for notebook in (n for n in records if n.zone == zone and not n.launching and n.state != GONE):
                info = found.pop(notebook.id, None)
                if notebook.id in busy:
                    continue
                if info is not None and notebook.agrees_with(info.state, info.url):
                    continue  # a transaction only where the cloud differs from the record as read above
                # written only if the record still says that: a state the bot wrote meanwhile is newer
                if info is None:
                    written = self.records.mark_gone(notebook.id, seen=notebook.state)
                else:
                    written = self.records.observed(notebook.id, info.state, info.url, seen=notebook.state)
                if written is None:
                    read_again(notebook.id)
                else:
                    current[notebook.id] = written
                    changed.add(notebook.owner)
            unmanaged += [i for i in found.values() if i.instance_id not in managed_ids]
        self.store.put("meta", "unmanaged", {"at": now, "instances": [i.__dict__ for i in unmanaged]})
        if changed and self.on_change:
            self.on_change(changed)
        return unmanaged, list(current.values())

    def _forget_abandoned_launches(self, records: list[Notebook], now: float) -> list[str]:
        """A name reserved by a launch that ended without creating anything (a crash between two
        writes, say) would hold the name and the quota for ever: free it. Returns the names freed."""
        freed: list[str] = []
        for notebook in records:
            if notebook.state not in LAUNCH_PHASES or now - notebook.created_at < self.ABANDONED_AFTER:
                continue
            launch = self.store.get("launches", notebook.launch_id or "")
            if launch is None or not launch.get("open"):
                self.records.free(notebook.id, launch_id=notebook.launch_id)
                log.warning("freed the name %s, reserved by a launch that never finished", notebook.id)
                freed.append(notebook.id)
        return freed
