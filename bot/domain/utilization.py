"""What a sweep's utilization reading says about one running notebook: idle, busy, some use, or
nothing measured, in the words a reminder uses.

The figure that decides is the GPU's for a notebook with a GPU and the CPU's for one without: a GPU
notebook whose GPU is not reported (no Ops Agent) is "not measured", never judged by its CPU, as a
GPU job can keep one CPU core busy or none. "Not measured" is never read as 0 %.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from bot.adapters.monitoring import Figure, Reading
from bot.domain.records import Notebook
from bot.ui.listing import hours


class Verdict(StrEnum):
    IDLE = "idle"  # the newest windows are at or under idle_below
    BUSY = "busy"  # not idle now, and the window's mean is at least busy_above
    SOME = "some"  # in between
    UNKNOWN = "unknown"  # nothing measured (no Monitoring, or no series for it)


@dataclass(frozen=True)
class Usage:
    verdict: Verdict
    metric: str = ""  # "GPU" or "CPU"
    level: float = 0.0  # fraction: the idle run's highest window mean, else the window's mean
    span: float = 0.0  # seconds the verdict covers: the idle or busy run, else the measured window

    @property
    def busy(self) -> bool:
        return self.verdict == Verdict.BUSY

    def words(self, usd_per_hour: float) -> str:
        """One sentence for a reminder: what the bot saw, and for an idle notebook what that cost."""
        percent = f"{self.level * 100:.0f} %"
        if self.verdict == Verdict.UNKNOWN:
            return "I have no utilization figures for it."
        if self.verdict == Verdict.IDLE:
            cost = self.span / 3600 * usd_per_hour
            return f"{self.metric} {percent} for the last {hours(self.span)}, ≈${cost:.2f} since."
        if self.verdict == Verdict.BUSY:
            return f"{self.metric} busy (≈{percent}) for the last {hours(self.span)}."
        return f"{self.metric} {percent} on average over the last {hours(self.span)}."


def judge(nb: Notebook, reading: Reading | None, *, busy_above: float, run_since: float) -> Usage:
    """The notebook's usage in `reading` (idle thresholds are the reading's own). Spans are cut to
    the current run (`run_since`): an idle stretch cannot have begun before the notebook started."""
    seen = reading.get(nb.id) if reading is not None else None
    figure: Figure | None = None
    if seen is not None:
        figure = seen.gpu if nb.spec.gpu_count else seen.cpu
    if figure is None or not figure.points:
        return Usage(Verdict.UNKNOWN)
    metric = "GPU" if nb.spec.gpu_count else "CPU"
    end = figure.latest.timestamp()

    def span_from(start: float) -> float:
        return max(0.0, end - max(start, run_since))

    if figure.idle_since is not None:
        since = figure.idle_since.timestamp()
        idle_max = max(p.value for p in figure.points if p.start.timestamp() >= since)
        return Usage(Verdict.IDLE, metric, idle_max, span_from(since))
    measured = span_from(figure.points[0].start.timestamp())
    if figure.mean >= busy_above and figure.busy_since is not None:
        return Usage(Verdict.BUSY, metric, figure.mean, span_from(figure.busy_since.timestamp()))
    return Usage(Verdict.SOME, metric, figure.mean, measured)
