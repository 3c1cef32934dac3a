"""config.example.toml is generated from the settings models, so it says what the code reads."""

from __future__ import annotations

import tomllib
from datetime import time
from pathlib import Path

import pytest

from bot.domain.cost_policy import Costs
from bot.domain.policy import Access, Policy
from bot.domain.reminder_policy import Reminders
from bot.domain.schedules import Schedules
from bot.run.cli import main
from bot.run.config import load_config

EXAMPLE = Path(__file__).parent.parent / "config.example.toml"


def test_the_committed_reference_is_the_generated_one(capsys) -> None:
    assert main(["config", "reference"]) == 0
    generated = capsys.readouterr().out
    assert EXAMPLE.read_text() == generated, "run `notebook-bot config reference > config.example.toml`"


TABLES = [("access", Access), ("policy", Policy), ("reminders", Reminders), ("costs", Costs), ("schedules", Schedules)]


@pytest.mark.parametrize("table, model", TABLES)
def test_every_key_is_documented_with_its_meaning(table: str, model: type) -> None:
    text = EXAMPLE.read_text()
    section = text.split(f"[{table}]\n", 1)[1].split("\n[", 1)[0]
    for key, field in model.model_fields.items():
        assert field.description, f"{table}.{key} has no description"
        assert f"\n{key} = " in section or f"\n# {key} = " in section, f"{table}.{key} is missing"


def test_the_commented_keys_are_the_defaults(tmp_path: Path) -> None:
    """Uncommenting every `# key = value` line of the tables changes nothing but the opt-in example."""
    lines = []
    for line in EXAMPLE.read_text().split("\n# [catalog]")[0].splitlines():
        body = line.removeprefix("# ")
        if line.startswith("# ") and " = " in body and body.split(" = ")[0].isidentifier():
            lines.append(body)
        elif line.startswith("["):
            lines.append(line)
    defaults = tmp_path / "defaults.toml"
    defaults.write_text("\n".join(lines) + "\n")
    loaded = tomllib.loads(defaults.read_text())
    assert set(loaded) == {"access", "policy", "reminders", "costs", "schedules"}
    config = load_config(defaults)
    assert config.policy == Policy() and config.reminders == Reminders(auto_delete_stopped_after=30 * 86400)
    assert config.access == Access() and config.costs == Costs()
    assert config.schedules == Schedules(cpu_stop_at=time(19, 0))


def test_an_off_hours_policy_reads_times_and_off(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text('[schedules]\ngpu_stop_at = "off"\ncpu_stop_at = 19:30:00\nheads_up = "45m"\n')
    schedules = load_config(path).schedules
    assert (schedules.gpu_stop_at, schedules.cpu_stop_at, schedules.heads_up) == (None, time(19, 30), 45 * 60)


def test_durations_are_read_as_seconds_or_words(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text('[reminders]\nrepeat_every = "30s"\nrunning_gpu_after = 3600\nstopped_after = "7200"\n')
    reminders = load_config(path).reminders
    assert (reminders.repeat_every, reminders.running_gpu_after, reminders.stopped_after) == (30, 3600, 7200)
