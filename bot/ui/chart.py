"""The digest's chart: cost per person per day, each bar split into busy and idle cost, as PNG bytes.

matplotlib is imported only when a chart is drawn (it costs about half a second), and through its
object-oriented API with the Agg canvas: no pyplot, no global figure state, safe in any thread.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from io import BytesIO

from bot.domain.costs import ESTIMATE_NOTE, CostReport


@dataclass(frozen=True)
class ChartData:
    days: tuple[date, ...]
    people: tuple[str, ...]  # owners, most expensive first
    busy: dict[str, tuple[float, ...]]  # per person, one value per day: cost minus idle cost
    idle: dict[str, tuple[float, ...]]  # per person, one value per day: what idle running time cost

    def day_total(self, i: int) -> float:
        return sum(self.busy[p][i] + self.idle[p][i] for p in self.people)

    def day_idle(self, i: int) -> float:
        return sum(self.idle[p][i] for p in self.people)


def chart_data(report: CostReport) -> ChartData:
    days = tuple(sorted({d.day for d in report.days}))
    people = tuple(p for p in report.people if any(d.owner == p for d in report.days))
    cost = {(d.day, d.owner): (d.usd, d.idle_usd) for d in report.days}
    usd = {p: [cost.get((day, p), (0.0, 0.0)) for day in days] for p in people}
    busy = {p: tuple(total - idle for total, idle in usd[p]) for p in people}
    idle = {p: tuple(idle for _, idle in usd[p]) for p in people}
    return ChartData(days, people, busy, idle)


def cost_chart(
    report: CostReport, *, width: int = 1200, height: int = 600, names: Mapping[str, str] | None = None, dpi: int = 100
) -> bytes:
    """A width × height PNG of `report`'s days; `names` maps owner ids to the names shown."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    data = chart_data(report)
    figure = Figure(figsize=(width / dpi, height / dpi), dpi=dpi, layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    palette = [f"C{i % 10}" for i in range(len(data.people))]
    positions = list(range(len(data.days)))
    bottom = [0.0] * len(data.days)
    for person, colour in zip(data.people, palette, strict=True):
        label = (names or {}).get(person, person)
        axes.bar(positions, data.busy[person], bottom=bottom, color=colour, label=label)
        bottom = [b + v for b, v in zip(bottom, data.busy[person], strict=True)]
        axes.bar(positions, data.idle[person], bottom=bottom, color=colour, alpha=0.35, hatch="//", edgecolor=colour)
        bottom = [b + v for b, v in zip(bottom, data.idle[person], strict=True)]
    if data.people:
        handles, _ = axes.get_legend_handles_labels()
        handles.append(Patch(facecolor="white", edgecolor="grey", hatch="//", label="idle time (hatched)"))
        axes.legend(handles=handles, loc="upper left", fontsize="small")
    axes.set_xticks(positions, [f"{d:%a %d %b}" for d in data.days])
    axes.set_ylabel("USD")
    axes.set_title(f"Notebook cost per person per day, {report.period.label} ({ESTIMATE_NOTE})")
    axes.yaxis.grid(True, alpha=0.3)
    axes.set_axisbelow(True)
    out = BytesIO()
    figure.savefig(out, format="png", dpi=dpi)
    return out.getvalue()
