"""The utilization samples kept for the cost reports (bot/domain/usage.py), on the Firestore emulator,
read by the real Monitoring client from the Monitoring fake: a sweep writes a handful of day-shard
documents in one transaction, each moment counts once, like neighbours merge, a report reads only
its days, old days go with their ring slot, and a failed write is made good by the next reading."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bot.adapters.monitoring import Reading, Utilization
from bot.adapters.store import Change, Doc
from bot.domain.costs import Sample
from bot.domain.usage import COLLECTION, MAX_SPANS, RING, SHARDS, UsageLog
from bot.sim.monitoring_api import MonitoringSimulator
from tests.harness import Clock
from tests.support.store_calls import CountedStore

ZONE = "us-central1-a"
HOUR = timedelta(hours=1)
MINUTE = timedelta(minutes=1)  # a fill from the minute after a window's end starts in the next window
NOON = datetime(2026, 11, 30, 12, tzinfo=UTC)
Value = float | Callable[[datetime], float]  # a CPU fraction, or one by the moment


class WatchedStore(CountedStore):
    """The counted store that also keeps the usage documents each query returned, and can lose the
    next usage transaction (`fail_next`), as a Firestore outage would."""

    def __init__(self, inner: Any) -> None:
        super().__init__(inner)
        self.read: list[Doc] = []
        self.fail_next = False

    def query(self, collection: str, **where: Any) -> list[Doc]:
        docs = super().query(collection, **where)
        if collection == COLLECTION:
            self.read.extend(docs)
        return docs

    def update_many(self, collection: str, changes: dict[str, Change]) -> dict[str, Doc | None]:
        if collection == COLLECTION and self.fail_next:
            self.fail_next = False
            raise ConnectionError("Firestore went away")
        return super().update_many(collection, changes)


@dataclass
class Fleet:
    sim: MonitoringSimulator
    reader: Utilization
    clock: Clock
    store: WatchedStore
    usage: UsageLog

    def add(self, *names: str) -> None:
        for name in names:
            self.sim.add_instance(name, ZONE)

    def fill(self, names: list[str], value: Value, start: datetime, end: datetime) -> None:
        for name in names:
            self.sim.fill("cpu", name, value, start, end)

    def sweep(self, at: datetime, names: list[str]) -> int:
        """What a sweep at `at` does with its reading: returns how many notebooks' samples grew."""
        self.clock.now = at.timestamp()
        reading: Reading = self.reader.read([ZONE], now=at)
        return self.usage.record(reading, names)

    def samples(self, start: datetime, end: datetime) -> dict[str, list[Sample]]:
        self.store.read.clear()
        return self.usage.samples(start, end)


@contextmanager
def fleet_with(store: Any, alignment: timedelta = timedelta(minutes=5)) -> Iterator[Fleet]:
    clock = Clock(NOON.timestamp())
    now = lambda: datetime.fromtimestamp(clock(), UTC)  # noqa: E731
    with MonitoringSimulator(clock=now) as sim:
        reader = Utilization("test-project", emulator_host=sim.host, clock=now, alignment=alignment)
        watched = WatchedStore(store)
        yield Fleet(sim, reader, clock, watched, UsageLog(watched, clock))
        reader.close()


@pytest.fixture
def fleet(store) -> Iterator[Fleet]:
    with fleet_with(store) as fleet:
        yield fleet


def hours(samples: list[Sample]) -> float:
    return sum((s.end - s.start).total_seconds() for s in samples) / 3600


def day(at: datetime) -> tuple[datetime, datetime]:
    start = at.replace(hour=0, minute=0, second=0, microsecond=0)
    return start, start + timedelta(days=1)


def test_a_sweep_over_many_notebooks_is_one_transaction_over_a_handful_of_documents(fleet: Fleet) -> None:
    names = [f"nb-{i:03d}" for i in range(200)]
    fleet.add(*names)
    fleet.fill(names, 0.0, NOON - 4 * HOUR, NOON)

    assert fleet.sweep(NOON, names) == 200

    assert fleet.store.count("update_many", COLLECTION) == 1
    docs = fleet.store.query(COLLECTION)
    assert 1 < len(docs) <= SHARDS, "a day's documents are its shards, not one per notebook"
    found = fleet.samples(*day(NOON))
    assert set(found) == set(names)
    assert all(len(s) == 1 and hours(s) == 4 and s[0].cpu == 0.0 for s in found.values()), "idle all along: one span"


def test_overlapping_readings_count_each_moment_once_and_like_neighbours_merge(fleet: Fleet) -> None:
    fleet.add("nb")
    fleet.fill(["nb"], 0.0, NOON - 4 * HOUR, NOON)  # idle from 08:00
    fleet.fill(["nb"], 0.4, NOON + MINUTE, NOON + HOUR)  # then busy at 40 %
    fleet.fill(["nb"], 0.6, NOON + HOUR + MINUTE, NOON + 2 * HOUR)  # and at 60 %

    fleet.sweep(NOON, ["nb"])
    fleet.sweep(NOON + HOUR, ["nb"])  # 3 of the same hours again, and one new
    fleet.sweep(NOON + 2 * HOUR, ["nb"])
    assert fleet.sweep(NOON + 2 * HOUR, ["nb"]) == 0, "the same reading again adds nothing"

    [idle, busy] = fleet.samples(*day(NOON))["nb"]
    assert (idle.start, idle.end, idle.cpu) == (NOON - 4 * HOUR, NOON, 0.0)
    assert (busy.start, busy.end) == (NOON, NOON + 2 * HOUR), "busy at 40 % then 60 %: one span"
    assert busy.cpu == pytest.approx(0.5, abs=0.001), "time-weighted (each merge rounds to 4 decimals)"


def test_a_report_reads_only_the_documents_of_the_days_it_covers(fleet: Fleet) -> None:
    names = [f"nb-{i}" for i in range(40)]
    fleet.add(*names)
    days = [NOON - timedelta(days=n) for n in (28, 20, 10, 3, 0)]
    for at in days:
        fleet.fill(names, 0.3, at - HOUR + MINUTE, at)
        fleet.sweep(at, names)
    stored = {d["day"] for d in fleet.store.query(COLLECTION)}
    assert len(stored) == 5

    ten_days_ago = day(days[2])
    found = fleet.samples(*ten_days_ago)

    assert {d["day"] for d in fleet.store.read} == {f"{days[2]:%Y-%m-%d}"}, "no other day's documents"
    assert set(found) == set(names) and all(hours(s) == 1 for s in found.values())
    assert all(ten_days_ago[0] <= s[0].start and s[-1].end <= ten_days_ago[1] for s in found.values())

    last_week = fleet.samples(NOON - timedelta(days=6, hours=12), NOON)
    assert {d["day"] for d in fleet.store.read} == {f"{days[3]:%Y-%m-%d}", f"{days[4]:%Y-%m-%d}"}
    assert all(hours(s) == 2 for s in last_week.values())


def test_a_reading_across_midnight_keeps_each_days_hours_in_that_days_documents(fleet: Fleet) -> None:
    fleet.add("nb")
    two_am = NOON.replace(hour=2, minute=2, second=30)  # the windows end at :02:30, :07:30, ...: one spans midnight
    fleet.fill(["nb"], 0.0, two_am - 4 * HOUR, two_am)
    assert fleet.sweep(two_am, ["nb"]) == 1, "one notebook, its two days"

    before, today = fleet.samples(*day(two_am - 4 * HOUR))["nb"], fleet.samples(*day(two_am))["nb"]
    assert (before[0].start, before[-1].end) == (two_am - 4 * HOUR, day(two_am)[0])
    assert (today[0].start, today[-1].end) == (day(two_am)[0], two_am)
    assert len(fleet.store.query(COLLECTION)) == 2


def test_old_days_go_with_their_ring_slot_so_the_collection_stays_bounded(fleet: Fleet) -> None:
    fleet.add("nb")
    first = NOON - timedelta(days=RING + 7)
    for n in range(RING + 8):
        at = first + timedelta(days=n)
        fleet.fill(["nb"], 0.5 if n == 0 else 0.0, at - HOUR + MINUTE, at)
        fleet.sweep(at, ["nb"])

    assert len(fleet.store.query(COLLECTION)) == RING, "one shard: one document per day slot, never more"
    assert fleet.samples(*day(first)) == {}, "gone with its slot"
    assert [s.cpu for s in fleet.samples(*day(NOON - timedelta(days=RING - 1)))["nb"]] == [0.0]
    six_weeks = fleet.samples(day(NOON - timedelta(days=RING - 1))[0], NOON)["nb"]
    assert hours(six_weeks) == RING and all(s.cpu == 0.0 for s in six_weeks)


def test_a_failed_write_is_made_good_by_the_next_reading(fleet: Fleet) -> None:
    fleet.add("nb")
    fleet.fill(["nb"], 0.0, NOON - 4 * HOUR, NOON + HOUR)
    fleet.store.fail_next = True

    assert fleet.sweep(NOON, ["nb"]) == 0, "logged, not raised"
    assert fleet.samples(*day(NOON)) == {}

    fleet.sweep(NOON + timedelta(minutes=5), ["nb"])
    [sample] = fleet.samples(*day(NOON))["nb"]
    assert (sample.start, sample.end) == (NOON - 4 * HOUR + timedelta(minutes=5), NOON + timedelta(minutes=5))


def test_documents_of_the_earlier_layout_are_still_read_and_count_once(fleet: Fleet) -> None:
    fleet.add("nb")
    eight, nine = (NOON - 4 * HOUR).timestamp(), (NOON - 3 * HOUR).timestamp()
    fleet.store.put(
        COLLECTION, "nb:30", {"notebook": "nb", "day": "2026-11-30", "month": "2026-11",
                              "spans": [{"s": eight, "e": nine, "g": None, "c": 0.0}]},
    )  # fmt: skip  # written by the release before: one document per notebook per day of the month
    fleet.fill(["nb"], 0.0, NOON - 4 * HOUR, NOON + HOUR)

    fleet.sweep(NOON + HOUR, ["nb"])  # 09:00-13:00, sharded; nothing of it was in the old document

    assert hours(fleet.samples(*day(NOON))["nb"]) == 5
    fleet.store.put(
        COLLECTION, "nb:30", {"notebook": "nb", "day": "2026-11-30", "month": "2026-11",
                              "spans": [{"s": eight, "e": NOON.timestamp(), "g": None, "c": 0.0}]},
    )  # fmt: skip  # the old release read 08:00-12:00 before the upgrade, the new one 09:00-13:00
    samples = fleet.samples(*day(NOON))["nb"]
    assert hours(samples) == 5 and samples[0].start == NOON - 4 * HOUR, "the overlap counts once"


def test_a_notebook_flipping_every_minute_all_day_stays_within_its_bound(store) -> None:
    """The worst case for the size bound: no two neighbouring windows alike, all day long. Past
    MAX_SPANS, what continues the last span joins it: no hour is lost, the document stays small."""
    with fleet_with(store, alignment=timedelta(minutes=1)) as fleet:
        fleet.add("nb")
        midnight = day(NOON)[0]
        fleet.fill(["nb"], lambda at: 0.0 if at.minute % 2 else 0.5, midnight, midnight + timedelta(days=1))
        for n in range(1, 7):
            fleet.sweep(midnight + n * 4 * HOUR, ["nb"])

        [doc] = fleet.store.query(COLLECTION)
        [text] = doc["notebooks"].values()
        samples = fleet.samples(midnight, midnight + timedelta(days=1))["nb"]
        assert len(samples) == MAX_SPANS and hours(samples) == 24
        assert [s.cpu for s in samples[:4]] == [0.0, 0.5, 0.0, 0.5], "alternating until the cap"
        assert len(text.encode()) <= MAX_SPANS * 26
