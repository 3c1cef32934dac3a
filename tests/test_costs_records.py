"""What the cost reports read is bounded: a record's history of states, on the Firestore emulator.
(The utilization samples' bounds are in tests/test_usage_shards.py.)"""

from __future__ import annotations

from datetime import UTC, datetime

from bot.domain.records import HISTORY_KEPT, HISTORY_SECONDS, Records
from bot.domain.spec import NotebookSpec
from tests.harness import Clock

ZONE = "us-central1-a"
HOUR = 3600
SPEC = NotebookSpec("base", "e2-standard-4", None, 0, 100, 150, "pd-balanced", ZONE, 10800, 0.2)


def test_a_records_history_keeps_its_last_changes_and_the_state_in_force_at_the_cutoff(store) -> None:
    clock = Clock(datetime(2026, 11, 1, tzinfo=UTC).timestamp())
    records = Records(store, clock)
    assert records.adopt({"id": "nb", "zone": ZONE, "owner": "U0ALICE", "state": "ACTIVE", "spec": SPEC.to_dict()})
    for i in range(HISTORY_KEPT + 50):
        clock.advance(HOUR)
        records.observed("nb", "STOPPED" if i % 2 == 0 else "ACTIVE", None)

    history = records.get("nb").history
    assert len(history) == HISTORY_KEPT and history[-1] == (
        "STOPPED" if (HISTORY_KEPT + 49) % 2 == 0 else "ACTIVE",
        clock(),
    )

    last = history[-1]
    clock.advance(HISTORY_SECONDS + HOUR)
    records.observed("nb", "ACTIVE" if last[0] == "STOPPED" else "STOPPED", None)
    assert records.get("nb").history == (last, (records.get("nb").state, clock())), "what held at the cutoff stays"


def test_a_record_written_before_histories_has_its_state_since_state_since(store) -> None:
    store.put("notebooks", "old", {"id": "old", "owner": "U0ALICE", "state": "ACTIVE", "state_since": 1000.0,
                                   "spec": SPEC.to_dict()})  # fmt: skip
    assert Records(store).get("old").history == (("ACTIVE", 1000.0),)
