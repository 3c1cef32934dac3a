"""What the cost reports read is bounded: a record's history of states, and the utilization samples
of a notebook (a ring of one document per day of the month), on the Firestore emulator."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from bot.adapters.monitoring import Utilization
from bot.domain.records import HISTORY_KEPT, HISTORY_SECONDS, Records
from bot.domain.spec import NotebookSpec
from bot.domain.usage import UsageLog
from bot.sim.monitoring_api import MonitoringSimulator
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


@pytest.fixture
def reading_at(store) -> Iterator:
    now = [datetime(2026, 10, 30, 12, tzinfo=UTC)]
    with MonitoringSimulator(clock=lambda: now[0]) as sim:
        reader = Utilization("test-project", emulator_host=sim.host, clock=lambda: now[0])
        sim.add_instance("nb", ZONE)

        def read(at: datetime, cpu: float):
            sim.fill("cpu", "nb", cpu, at - timedelta(hours=1), at)
            now[0] = at
            return reader.read([ZONE])

        yield read
        reader.close()


def test_a_day_slot_from_an_earlier_month_is_started_afresh(store, reading_at) -> None:
    usage = UsageLog(store)
    usage.record(reading_at(datetime(2026, 10, 30, 12, tzinfo=UTC), 0.5), ["nb"])
    at_noon = datetime(2026, 11, 30, 12, tzinfo=UTC)
    usage.record(reading_at(at_noon, 0.0), ["nb"])

    [doc] = store.query("usage")
    assert doc["day"] == "2026-11-30" and doc["month"] == "2026-11" and len(doc["spans"]) == 1
    assert doc["spans"][0]["c"] == 0.0, "October's busy hour is gone with its month"
    november = usage.samples(datetime(2026, 11, 30, tzinfo=UTC), datetime(2026, 12, 1, tzinfo=UTC))
    [sample] = november["nb"]  # the hour filled, from the 5-minute window holding its first point
    assert (sample.start, sample.end, sample.cpu) == (datetime(2026, 11, 30, 10, 55, tzinfo=UTC), at_noon, 0.0)
    assert usage.samples(datetime(2026, 10, 30, tzinfo=UTC), datetime(2026, 10, 31, tzinfo=UTC)) == {}
