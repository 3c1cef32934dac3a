"""The digest's words and chart come from the same figures: the numbers are read back and compared."""

from __future__ import annotations

import re
import struct
import subprocess
import sys
from dataclasses import replace

import pytest

from bot.domain.costs import CostReport, report
from bot.ui.chart import chart_data, cost_chart
from bot.ui.costs_view import costs_message, day_totals, digest_message
from tests.test_costs import PARKED, SCRIPT, TRAINER, WEEK

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
DAY_LINE = re.compile(r"^• (\w{3} \d{2} \w{3}): \$([\d,]+\.\d\d) \(idle \$([\d,]+\.\d\d)\)$", re.M)


@pytest.fixture(scope="module")
def week() -> CostReport:
    return report([TRAINER, SCRIPT, PARKED], WEEK)


def dollars(text: str) -> float:
    return float(text.replace(",", ""))


def all_text(blocks: list[dict]) -> str:
    parts = []
    for block in blocks:
        if "text" in block:
            parts.append(block["text"]["text"])
        parts += [e["text"] for e in block.get("elements", [])]
    return "\n".join(parts)


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == PNG_MAGIC and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def test_the_digest_prints_each_persons_and_notebooks_figures(week) -> None:
    text, blocks = digest_message(week)
    body = all_text(blocks)

    assert "estimate at list prices" in text and "estimate at list prices" in body
    alice, bob = week.people["U0ALICE"], week.people["U0BOB"]
    assert (
        f"• <@U0ALICE>: ${alice.usd:,.2f} · {alice.running_hours:.1f} h running · {alice.gpu_hours:.1f} GPU h" in body
    )
    assert f"idle 60% = 6.0 h, ${alice.idle_usd:.2f} (2.0 h not measured)" in body
    assert "stopped disks $35.00/month" in body
    assert f"• <@U0BOB>: ${bob.usd:,.2f} · 48.0 h running · idle 44% = 8.0 h, $1.52 (30.0 h not measured)" in body
    for nb in week.notebooks:
        assert f"• `{nb.notebook}` (<@{nb.owner}>): ${nb.figures.usd:,.2f}" in body
    assert f"*Total* (3 notebooks): ${week.total.usd:,.2f}" in body
    assert "$20.00/month" in body and "not running" in body  # the parked notebook ran no hour


def test_the_digest_days_are_the_report_days(week) -> None:
    _, blocks = digest_message(week)
    printed = [(day, dollars(usd), dollars(idle)) for day, usd, idle in DAY_LINE.findall(all_text(blocks))]

    expected = [(f"{d:%a %d %b}", round(usd, 2), round(idle, 2)) for d, usd, idle in day_totals(week)]
    assert printed == expected and len(printed) == 2
    assert sum(usd for _, usd, _ in printed) == pytest.approx(week.total.usd, abs=0.01)
    assert sum(idle for _, _, idle in printed) == pytest.approx(week.total.idle_usd, abs=0.01)


def test_the_chart_draws_the_days_the_digest_prints(week) -> None:
    _, blocks = digest_message(week)
    printed = DAY_LINE.findall(all_text(blocks))
    data = chart_data(week)

    assert [f"{d:%a %d %b}" for d in data.days] == [day for day, _, _ in printed]
    for i, (_, usd, idle) in enumerate(printed):
        assert round(data.day_total(i), 2) == dollars(usd)
        assert round(data.day_idle(i), 2) == dollars(idle)
    assert data.people == ("U0ALICE", "U0BOB")
    assert all(v >= 0 for p in data.people for v in data.busy[p] + data.idle[p])


@pytest.mark.parametrize("size", [(1200, 600), (800, 450)])
def test_the_chart_is_a_png_of_the_size_asked(week, size: tuple[int, int]) -> None:
    png = cost_chart(week, width=size[0], height=size[1], names={"U0ALICE": "Alice", "U0BOB": "Bob"})
    assert png_size(png) == size


def test_an_empty_week_still_draws_and_says_nothing_ran() -> None:
    empty = report([], WEEK)
    assert png_size(cost_chart(empty, width=640, height=320)) == (640, 320)
    text, blocks = costs_message(empty)
    assert "no notebooks" in text and f"No notebooks {WEEK.label}: nothing ran" in all_text(blocks)
    assert "$0.00" not in text + all_text(blocks), "a period without notebooks says so, not a row of zeros"


def test_a_long_report_is_split_into_sections_slack_accepts() -> None:
    many = [replace(TRAINER, notebook=f"nb-{n:03d}") for n in range(60)]
    _, blocks = costs_message(report(many, WEEK))
    sections = [b for b in blocks if b["type"] == "section"]
    assert len(sections) > 1 and all(len(b["text"]["text"]) <= 3000 for b in sections)
    assert sum(b["text"]["text"].count("• `nb-") for b in sections) == 60


def test_importing_the_chart_module_does_not_load_matplotlib() -> None:
    code = "import sys, bot.ui.chart, bot.ui.costs_view; print('matplotlib' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


def test_this_week_and_this_month_share_one_message_within_slacks_limits() -> None:
    from slack_sdk.models.blocks import Block

    from bot.ui.costs_view import costs_reply

    many = [replace(TRAINER, notebook=f"nb-{n:04d}", owner=f"U{n:04d}") for n in range(500)]
    text, blocks = costs_reply([report(many, WEEK), report(many, WEEK)], title="Team notebook costs")

    assert len(blocks) <= 50 and [b["type"] for b in blocks].count("header") == 2
    assert all(Block.parse(b).to_dict() == b for b in blocks)  # the models accept every block
    assert all(len(b["text"]["text"]) <= 3000 for b in blocks if b["type"] == "section")
    assert sum("…and " in b["text"]["text"] for b in blocks if b["type"] == "section") == 2, "the rest is counted"
    assert text.count("Team notebook costs: this week") == 2 and len(text) < 40_000
