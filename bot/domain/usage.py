"""Utilization samples: what Cloud Monitoring saw of each notebook, kept for the cost reports.

The lifecycle sweep hands over its one Monitoring reading (bot.adapters.monitoring.Reading) and
this module, the only writer of the `usage` collection, keeps the aligned points as spans of
(start, end, GPU, CPU), sharded so that a sweep writes a handful of documents, not one per notebook:
- a document holds one UTC day of the spans of the notebooks whose name hashes to its shard
  (`shard_of`: CRC-32 modulo SHARDS): {"day": "YYYY-MM-DD", "shard": k, "notebooks": {name: spans}}.
  A span never crosses midnight (one crossing it is split), so a day's document is all that day has.
- retention is a ring of RING day slots, key "SLOT:SHARD" (SLOT = days since 1970 modulo RING): a
  slot still holding an older day is started afresh when its day comes round, so the collection never
  holds more than RING × SHARDS documents and nothing has to be deleted. RING (42 days) exceeds the
  furthest a report reaches back (the start of this month or of last week, in any timezone: 32 days).
- a notebook's spans of the day are one string, "start,end,gpu,cpu" per span (seconds since the day's
  00:00 UTC; fractions with 4 decimals, empty when not measured), space-separated: one Firestore value
  per notebook per day rather than a map per span, ≤ 26 bytes a span rather than 40.
- consecutive readings overlap (each covers the last hours): a notebook's day keeps only what begins
  after its last span ends, trimmed to start there, so a point is counted once.
- neighbouring spans that are the same for the cost report (both idle or both busy, the same
  figures missing) become one, their values time-weighted: a notebook idle all day is one span.
- one `update_many` transaction per sweep (a reading crossing midnight touches two days' shards).

The size bound: 5-minute windows and a sweep every 5 minutes give a notebook at most 576 spans a day
(each sweep's first window is trimmed to where the last ended: two spans a sweep), and only if its
use flips between idle and busy every 5 minutes all day. MAX_SPANS caps it at that: past it, a span
that continues the last one joins it whatever its kind, and one after a gap is dropped (that time is
"not measured"). So a notebook-day is at most 64 + 576 × 26 ≈ 15 KB (its name, then whole-second
offsets), 1.4 % of Firestore's 1 MiB; a document holds 68 such notebooks, which with 32 shards takes
a fleet of some 1,500 notebooks (the busiest shard holds more than the average) every one of which
flips all day long. A notebook idle or busy for hours at a time takes a few dozen bytes a day.

Documents of the earlier layout (one per notebook per day of the month, key "NAME:DD", with the
fields notebook, day, month and spans as a list of maps) are still read for the days they hold; they
are never written again, and a day they share with a sharded document is counted once. They are
not deleted: at most 31 per notebook that had them, they fall out of every report six weeks after
the upgrade, and may be deleted from then on: every key not of the form "NN:NN" (a notebook's name
begins with a letter).
"""

from __future__ import annotations

import logging
import time
import zlib
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, date, datetime, timedelta

from bot.adapters.monitoring import Point, Reading
from bot.adapters.store import MAX_BATCH, Doc, Store
from bot.domain.costs import Sample

log = logging.getLogger(__name__)
COLLECTION = "usage"
SHARDS = 32  # documents per day; changing it moves notebooks to others (the reader counts that day's overlap once)
RING = 42  # day slots kept: six weeks, more than any report reaches back
MAX_SPANS = 576  # per notebook per day: two a sweep, one sweep every 5 minutes
DAY = 86400
IN_LIMIT = 30  # values in one Firestore `in` filter
EPOCH = date(1970, 1, 1)
Span = dict[str, float | None]  # {"s": start, "e": end, "g": GPU 0..1 or None, "c": CPU 0..1 or None}


def shard_of(name: str) -> int:
    """The shard holding `name`'s spans: stable across processes and releases (not `hash`)."""
    return zlib.crc32(name.encode()) % SHARDS


def key_of(day: date, shard: int) -> str:
    return f"{(day - EPOCH).days % RING:02d}:{shard:02d}"


class UsageLog:
    def __init__(self, store: Store, clock: Callable[[], float] = time.time, idle_below: float = 0.05) -> None:
        self.store = store
        self.clock = clock
        self.idle_below = idle_below

    # --- writing: once per sweep --------------------------------------------------------------------
    def record(self, reading: Reading, names: Iterable[str]) -> int:
        """Keep what `reading` saw of the notebooks `names`; returns how many notebooks' samples grew.
        Never raises: a transaction that fails loses that sweep's samples (the next reading covers
        the same hours again), logged, and the sweep goes on."""
        try:
            return self._record(reading, names)
        except Exception:
            log.exception("could not keep this sweep's utilization samples")
            return 0

    def _record(self, reading: Reading, names: Iterable[str]) -> int:
        by_doc: dict[tuple[int, int], dict[str, list[Span]]] = {}  # (days since 1970, shard): spans by name
        for name in names:
            seen = reading.get(name)
            if seen is None:
                continue
            shard = shard_of(name)
            for span in _spans(seen.gpu.points if seen.gpu else (), seen.cpu.points if seen.cpu else ()):
                by_doc.setdefault((int(span["s"] // DAY), shard), {}).setdefault(name, []).append(span)  # type: ignore[operator]
        newest = max((day for day, _ in by_doc), default=0)
        grown: dict[str, set[str]] = {}  # by key: the notebooks the last (committed) run of its change grew
        changes = {}
        for (day, shard), spans in by_doc.items():
            if newest - day < RING:  # a ring slot holds one day at a time
                on = EPOCH + timedelta(days=day)
                changes[key_of(on, shard)] = self._append(on, shard, spans, grown.setdefault(key_of(on, shard), set()))
        keys = list(changes)
        for start in range(0, len(keys), MAX_BATCH):
            self.store.update_many(COLLECTION, {k: changes[k] for k in keys[start : start + MAX_BATCH]})
        return len(set().union(*grown.values()))  # a reading across midnight grows a notebook's two days

    def _append(
        self, day: date, shard: int, new: dict[str, list[Span]], grown: set[str]
    ) -> Callable[[Doc | None], Doc | None]:
        midnight = _midnight(day)

        def change(doc: Doc | None) -> Doc | None:
            grown.clear()  # the change may run again on contention: only its last run counts
            if doc is None or doc.get("day") != day.isoformat():  # a new slot, or the slot's older day
                doc = {"day": day.isoformat(), "shard": shard, "notebooks": {}}
            entries: dict[str, str] = doc["notebooks"]
            for name, spans in new.items():
                kept = decode(entries.get(name, ""), midnight)
                if self._extend(kept, spans):
                    entries[name] = encode(kept, midnight)
                    grown.add(name)
            return doc if grown else None

        return change

    def _extend(self, kept: list[Span], spans: list[Span]) -> bool:
        """Add what of `spans` (oldest first) begins after `kept` (decoded afresh: ours to change)
        ends, trimmed to begin there, merging like neighbours; whether `kept` grew. Past MAX_SPANS a
        span that continues the last joins it whatever its kind, and one after a gap is dropped."""
        last = kept[-1] if kept else None
        before, last_kind = (len(kept), last["e"] if last else None), self._kind(last) if last else None
        for span in spans:
            start, end = span["s"], span["e"]
            if last is not None:
                if end <= last["e"]:  # type: ignore[operator]
                    continue  # seen by an earlier sweep
                start = max(start, last["e"])  # type: ignore[type-var]
            kind = self._kind(span)
            full = len(kept) >= MAX_SPANS
            if last is not None and last["e"] == start and (kind == last_kind or full):
                a, b = last["e"] - last["s"], end - start  # type: ignore[operator]
                last["g"], last["c"] = _weighted(last["g"], a, span["g"], b), _weighted(last["c"], a, span["c"], b)
                last["e"] = end
                last_kind = self._kind(last) if full else kind
            elif not full:
                last = {"s": start, "e": end, "g": span["g"], "c": span["c"]}  # a copy: the change may run again
                kept.append(last)
                last_kind = kind
        return (len(kept), last["e"] if last else None) != before

    def _kind(self, span: Span) -> tuple[bool | None, bool | None]:
        """What the cost report tells apart: each figure idle, busy or missing."""
        g, c = span["g"], span["c"]
        return (None if g is None else g <= self.idle_below, None if c is None else c <= self.idle_below)

    # --- reading: for a report ----------------------------------------------------------------------
    def samples(self, start: datetime, end: datetime) -> dict[str, list[Sample]]:
        """Each notebook's samples that may fall in [start, end], by name, oldest first: the documents
        of the UTC days the period covers up to now (one query per IN_LIMIT days), counted once."""
        first = start.astimezone(UTC).date()
        last = min(end, datetime.fromtimestamp(self.clock(), UTC)).astimezone(UTC).date()
        days = [(first + timedelta(days=n)).isoformat() for n in range((last - first).days + 1)]
        found: dict[str, list[Sample]] = {}
        lo, hi = start.timestamp(), end.timestamp()
        for at in range(0, len(days), IN_LIMIT):
            for doc in self.store.query(COLLECTION, day=days[at : at + IN_LIMIT]):
                for name, spans in _spans_in(doc):
                    found.setdefault(name, []).extend(
                        Sample(_utc(s["s"]), _utc(s["e"]), gpu=s["g"], cpu=s["c"])  # type: ignore[arg-type]
                        for s in spans
                        if s["e"] > lo and s["s"] < hi  # type: ignore[operator]
                    )
        return {name: _once(samples) for name, samples in found.items() if samples}


def _spans_in(doc: Doc) -> Iterable[tuple[str, list[Span]]]:
    """(notebook, spans) of a sharded document, or of one in the earlier per-notebook layout."""
    if "notebooks" in doc:
        midnight = _midnight(date.fromisoformat(doc["day"]))
        return ((name, decode(text, midnight)) for name, text in doc["notebooks"].items())
    spans = [{"s": s["s"], "e": s["e"], "g": s.get("g"), "c": s.get("c")} for s in doc.get("spans") or ()]
    return [(doc["notebook"], spans)]


def _once(samples: Sequence[Sample]) -> list[Sample]:
    """Oldest first, each moment once: where two documents hold the same hours (the day the layout
    changed), the later sample keeps only what begins after the earlier one ends."""
    kept: list[Sample] = []
    for s in sorted(samples, key=lambda s: (s.start, s.end)):
        if kept and s.end <= kept[-1].end:
            continue
        if kept and s.start < kept[-1].end:
            s = Sample(kept[-1].end, s.end, gpu=s.gpu, cpu=s.cpu)
        kept.append(s)
    return kept


# --- the stored form --------------------------------------------------------------------------------
def encode(spans: Sequence[Span], midnight: float) -> str:
    """A notebook-day's spans as "start,end,gpu,cpu ..." (seconds since `midnight`)."""
    return " ".join(
        f"{_num(s['s'] - midnight)},{_num(s['e'] - midnight)},{_frac(s['g'])},{_frac(s['c'])}"  # type: ignore[operator]
        for s in spans
    )


def decode(text: str, midnight: float) -> list[Span]:
    spans: list[Span] = []
    for part in text.split():
        s, e, g, c = part.split(",")
        spans.append({"s": midnight + float(s), "e": midnight + float(e), "g": float(g) if g else None,
                      "c": float(c) if c else None})  # fmt: skip
    return spans


def _num(seconds: float) -> str:
    return str(int(seconds)) if seconds == int(seconds) else f"{seconds:.3f}".rstrip("0")


def _frac(value: float | None) -> str:
    return "" if value is None else f"{value:.4f}".rstrip("0").rstrip(".")


def _spans(gpu: Iterable[Point], cpu: Iterable[Point]) -> list[Span]:
    """The reading's aligned points as spans, GPU and CPU of the same window together, oldest first,
    a window crossing midnight UTC split there (each day's document holds its own hours)."""
    windows: dict[tuple[float, float], Span] = {}
    for key, points in (("g", gpu), ("c", cpu)):
        for p in points:
            span = windows.setdefault((p.start.timestamp(), p.end.timestamp()), {"g": None, "c": None})
            span[key] = round(p.value, 4)
    spans: list[Span] = []
    for (s, e), figures in sorted(windows.items()):
        while e > (cut := (s // DAY + 1) * DAY):  # the midnight after s
            spans.append({"s": s, "e": cut, **figures})
            s = cut
        spans.append({"s": s, "e": e, **figures})
    return spans


def _weighted(a: float | None, wa: float, b: float | None, wb: float) -> float | None:
    if a is None or b is None:
        return a if b is None else b
    return round((a * wa + b * wb) / (wa + wb), 4) if wa + wb > 0 else a


def _midnight(day: date) -> float:
    return float((day - EPOCH).days * DAY)


def _utc(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)
