"""Block Kit for `/notebook costs` and the weekly digest, built from a CostReport (pure functions).

The digest prints one line per day from `day_totals`, the same figures bot.ui.chart draws, so
the picture and the words cannot disagree.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Any

from slack_sdk.models.blocks import DividerBlock

from bot.domain.costs import ESTIMATE_NOTE, CostReport, Figures
from bot.ui.blocks import MESSAGE_BLOCKS, Blocks, context, header, packed


def money(usd: float) -> str:
    return f"${usd:,.2f}"


def idle_words(f: Figures) -> str:
    if f.idle_share is None:
        return "idle not measured" if f.running_hours > 0 else "not running"
    unmeasured = f" ({f.unmeasured_hours:.1f} h not measured)" if f.unmeasured_hours >= 0.05 else ""
    return f"idle {f.idle_share:.0%} = {f.idle_hours:.1f} h, {money(f.idle_usd)}{unmeasured}"


def figures_line(f: Figures) -> str:
    parts = [money(f.usd), f"{f.running_hours:.1f} h running"]
    if f.gpu_hours:
        parts.append(f"{f.gpu_hours:.1f} GPU h")
    parts.append(idle_words(f))
    if f.stopped_disk_usd_per_month:
        parts.append(f"stopped disks {money(f.stopped_disk_usd_per_month)}/month")
    return " · ".join(parts)


def day_totals(report: CostReport) -> list[tuple[date, float, float]]:
    """(day, cost, idle cost) summed over people, for every day of the report that cost anything."""
    totals: dict[date, list[float]] = {}
    for d in report.days:
        entry = totals.setdefault(d.day, [0.0, 0.0])
        entry[0] += d.usd
        entry[1] += d.idle_usd
    return [(day, usd, idle) for day, (usd, idle) in sorted(totals.items())]


def _period_words(report: CostReport) -> str:
    start, end = report.period.start, report.period.end
    return f"{report.period.label} ({start:%a %d %b} – {end:%a %d %b %H:%M} {report.tz})"


def costs_lines(report: CostReport, *, people: bool = True, notebooks: bool = True, days: bool = False) -> list[str]:
    count = report.total.notebooks
    if not count:
        return [f"No notebooks {report.period.label}: nothing ran, nothing was billed."]
    lines = [f"*Total* ({count} notebook{'' if count == 1 else 's'}): {figures_line(report.total)}"]
    if people and report.people:
        lines.append("*By person*")
        lines += [f"• <@{owner}>: {figures_line(f)}" for owner, f in report.people.items()]
    if notebooks and report.notebooks:
        lines.append("*By notebook*")
        lines += [f"• `{n.notebook}` (<@{n.owner}>): {figures_line(n.figures)}" for n in report.notebooks]
    if days:
        lines.append("*By day* (cost, of which idle)")
        lines += [f"• {day:%a %d %b}: {money(usd)} (idle {money(idle)})" for day, usd, idle in day_totals(report)]
    return lines


def costs_message(
    report: CostReport, *, title: str = "Notebook costs", people: bool = True, days: bool = False
) -> tuple[str, list[dict[str, Any]]]:
    """(text, blocks) for a costs report; `text` is the notification and screen-reader fallback."""
    return costs_reply([report], title=title, people=people, days=days)


def costs_reply(
    reports: Sequence[CostReport], *, title: str, people: bool = True, days: bool = False
) -> tuple[str, list[dict[str, Any]]]:
    """Several periods (this week, this month) in one message, each under its own header, sharing
    Slack's 50 blocks: a period whose lines do not fit ends with "…and N more"."""
    budget = (MESSAGE_BLOCKS - 2) // max(1, len(reports)) - 1  # a header each, the divider and the note
    blocks: Blocks = []
    texts = []
    for report in reports:
        heading = f"{title}: {_period_words(report)}"
        blocks.append(header(heading))
        blocks += packed(costs_lines(report, people=people, days=days), max_blocks=budget)
        texts.append(f"{heading} — {figures_line(report.total) if report.total.notebooks else 'no notebooks'}")
    blocks.append(DividerBlock().to_dict())
    blocks.append(context(NOTE))
    return f"{'; '.join(texts)} ({ESTIMATE_NOTE})", blocks


NOTE = (
    f"An {ESTIMATE_NOTE} from the catalog, not a bill. Idle: running at about 0 % "
    "(GPU for GPU notebooks, CPU for the others), from Cloud Monitoring."
)


def digest_message(report: CostReport) -> tuple[str, list[dict[str, Any]]]:
    """The weekly digest: the team's figures by person, by notebook and by day (the chart's days)."""
    return costs_message(report, title="Weekly notebook digest", days=True)
