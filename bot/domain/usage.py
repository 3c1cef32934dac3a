"""Utilization samples: what Cloud Monitoring saw of each notebook, kept for the cost reports.

The lifecycle sweep hands over its one Monitoring reading (bot.adapters.monitoring.Reading) and
this module, the only writer of the `usage` collection, keeps the aligned points as spans of
(start, end, GPU, CPU):
- one document per notebook per day of the month (UTC), key "NAME:DD": a ring of 31 slots, so a
  notebook never has more than 31 documents and nothing has to be deleted; a slot still holding an
  earlier month is started afresh when its day comes round. A report reads the months it covers
  (`month` field, one query), never more than a month and a week back (this month, last week).
- consecutive readings overlap (each covers the last hours): a document keeps only what begins
  after its last span ends, trimmed to start there, so a point is counted once.
- neighbouring spans that are the same for the cost report (both idle or both busy, the same
  figures missing) become one, their values time-weighted: a notebook idle all day is one span.
- one `update_many` transaction per MAX_BATCH documents per sweep, never a write per notebook.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime

from bot.adapters.monitoring import Point, Reading
from bot.adapters.store import MAX_BATCH, Doc, Store
from bot.domain.costs import Sample, months_between

log = logging.getLogger(__name__)
COLLECTION = "usage"
Span = dict[str, float | None]  # {"s": start, "e": end, "g": GPU 0..1 or None, "c": CPU 0..1 or None}


class UsageLog:
    def __init__(self, store: Store, clock: Callable[[], float] = time.time, idle_below: float = 0.05) -> None:
        self.store = store
        self.clock = clock
        self.idle_below = idle_below

    # --- writing: once per sweep --------------------------------------------------------------------
    def record(self, reading: Reading, names: Iterable[str]) -> int:
        """Keep what `reading` saw of the notebooks `names`; returns the documents written. Never
        raises: a batch that fails loses that sweep's samples of its notebooks (the next reading
        covers the same hours again), logged, and the sweep goes on."""
        try:
            return self._record(reading, names)
        except Exception:
            log.exception("could not keep this sweep's utilization samples")
            return 0

    def _record(self, reading: Reading, names: Iterable[str]) -> int:
        changes: dict[str, Callable[[Doc | None], Doc | None]] = {}
        for name in names:
            seen = reading.get(name)
            if seen is None:
                continue
            by_day: dict[str, list[Span]] = {}
            for span in _spans(seen.gpu.points if seen.gpu else (), seen.cpu.points if seen.cpu else ()):
                by_day.setdefault(_day(span["s"]), []).append(span)  # type: ignore[arg-type]
            for day, spans in by_day.items():
                changes[f"{name}:{day[-2:]}"] = self._append(name, day, spans)
        written = 0
        keys = list(changes)
        for start in range(0, len(keys), MAX_BATCH):
            batch = {k: changes[k] for k in keys[start : start + MAX_BATCH]}
            stood = self.store.update_many(COLLECTION, batch)
            written += sum(1 for doc in stood.values() if doc is not None)
        return written

    def _append(self, name: str, day: str, spans: list[Span]) -> Callable[[Doc | None], Doc | None]:
        def change(doc: Doc | None) -> Doc | None:
            if doc is None or doc.get("day") != day:  # a new notebook, or the slot's earlier month
                doc = {"notebook": name, "day": day, "month": day[:7], "spans": []}
            kept: list[Span] = list(doc["spans"])
            before = len(kept), kept[-1]["e"] if kept else None
            for span in spans:
                last_end = kept[-1]["e"] if kept else None
                if last_end is not None and span["e"] <= last_end:  # type: ignore[operator]
                    continue  # seen by an earlier sweep
                if last_end is not None and span["s"] < last_end:  # type: ignore[operator]
                    span = {**span, "s": last_end}
                self._add(kept, span)
            if (len(kept), kept[-1]["e"] if kept else None) == before:
                return None
            return {**doc, "spans": kept}

        return change

    def _add(self, kept: list[Span], span: Span) -> None:
        last = kept[-1] if kept else None
        if last is None or last["e"] != span["s"] or self._kind(last) != self._kind(span):
            kept.append(span)
            return
        a, b = last["e"] - last["s"], span["e"] - span["s"]  # type: ignore[operator]
        kept[-1] = {
            "s": last["s"],
            "e": span["e"],
            "g": _weighted(last["g"], a, span["g"], b),
            "c": _weighted(last["c"], a, span["c"], b),
        }

    def _kind(self, span: Span) -> tuple[bool | None, bool | None]:
        """What the cost report tells apart: each figure idle, busy or missing."""
        return tuple(None if v is None else v <= self.idle_below for v in (span["g"], span["c"]))  # type: ignore[return-value]

    # --- reading: for a report ----------------------------------------------------------------------
    def samples(self, start: datetime, end: datetime) -> dict[str, list[Sample]]:
        """Each notebook's samples that may fall in [start, end], by name, oldest first."""
        found: dict[str, list[Sample]] = {}
        for doc in self.store.query(COLLECTION, month=months_between(start, end)):
            for s in doc.get("spans") or ():
                if s["e"] > start.timestamp() and s["s"] < end.timestamp():
                    found.setdefault(doc["notebook"], []).append(
                        Sample(_utc(s["s"]), _utc(s["e"]), gpu=s.get("g"), cpu=s.get("c"))
                    )
        return {name: sorted(samples, key=lambda s: s.start) for name, samples in found.items()}


def _spans(gpu: Iterable[Point], cpu: Iterable[Point]) -> list[Span]:
    """The reading's aligned points as spans, GPU and CPU of the same window together, oldest first."""
    windows: dict[tuple[float, float], Span] = {}
    for key, points in (("g", gpu), ("c", cpu)):
        for p in points:
            span = windows.setdefault((p.start.timestamp(), p.end.timestamp()), {"g": None, "c": None})
            span[key] = round(p.value, 4)
    return [{"s": s, "e": e, **figures} for (s, e), figures in sorted(windows.items())]


def _weighted(a: float | None, wa: float, b: float | None, wb: float) -> float | None:
    if a is None or b is None:
        return a if b is None else b
    return round((a * wa + b * wb) / (wa + wb), 4) if wa + wb > 0 else a


def _day(epoch: float | None) -> str:
    return datetime.fromtimestamp(epoch or 0.0, UTC).strftime("%Y-%m-%d")


def _utc(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)
