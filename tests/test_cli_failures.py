"""Every failure of a `notebook-bot` command is one plain line that says what to fix, printed once,
with a non-zero exit: real processes, against the Slack simulator or a port nobody listens on."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from bot.sim.slack_api import SlackSimulator
from tests.support.emulators import free_port


def run(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "NOTEBOOK", "GOOGLE_CLOUD_PROJECT"))}
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        env={**base, "NOTEBOOK_BOT_STORE": "memory", "HOST": "127.0.0.1", "PORT": str(free_port()), **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def one_plain_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 2, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, f"expected one line, got:\n{result.stderr}"
    assert lines[0].startswith("notebook-bot: ") and "{" not in lines[0], "plain words, not a JSON log line"
    return lines[0]


@pytest.mark.parametrize("verb", ["serve", "socket"])
def test_a_token_slack_rejects_ends_the_start_with_the_fix(verb: str) -> None:
    with SlackSimulator() as slack:
        result = run(
            verb,
            SLACK_API_URL=slack.base_url,
            SLACK_BOT_TOKEN="xoxb-revoked",
            SLACK_SIGNING_SECRET="secret",
            SLACK_APP_TOKEN="xapp-1",
        )
    line = one_plain_line(result)
    assert "Slack refused SLACK_BOT_TOKEN (invalid_auth)" in line
    assert "Bot User OAuth Token (xoxb-…)" in line and "OAuth & Permissions" in line
    assert "Worker failed to boot" not in result.stderr + result.stdout


def test_a_slack_that_cannot_be_reached_ends_the_start_with_the_fix() -> None:
    nowhere = f"http://127.0.0.1:{free_port()}/api/"
    result = run("serve", SLACK_API_URL=nowhere, SLACK_BOT_TOKEN="xoxb-1", SLACK_SIGNING_SECRET="secret")
    line = one_plain_line(result)
    assert f"could not reach Slack at {nowhere}" in line and "HTTPS_PROXY" in line


def test_missing_slack_settings_say_where_to_find_them() -> None:
    line = one_plain_line(run("serve"))
    assert "SLACK_BOT_TOKEN, SLACK_SIGNING_SECRET" in line
    assert "Bot User OAuth Token" in line and "Signing Secret" in line


def test_a_broken_config_is_reported_once(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text("[policy]\nmax_notebooks_per_user = -1\n")
    result = run("catalog", "check", "--config", str(config))
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "notebook-bot: the configuration has 1 problem:",
        f"{config}:2: policy.max_notebooks_per_user: Input should be greater than or equal to 0",
    ]


def test_serve_stops_on_a_broken_config_it_checks_beside_its_worker(tmp_path: Path) -> None:
    """`serve` forks its worker before checking the config (so the first answer does not wait for the
    check); a broken config still stops the server and ends the start with its problems, said once."""
    config = tmp_path / "config.toml"
    config.write_text("[policy]\nmax_notebooks_per_user = -1\n")
    with SlackSimulator() as slack:
        result = run(
            "serve",
            SLACK_API_URL=slack.base_url,
            SLACK_BOT_TOKEN=slack.bot_token,
            SLACK_SIGNING_SECRET="secret",
            NOTEBOOK_BOT_CONFIG=str(config),
        )
    assert result.returncode == 2, result.stderr
    problem = f"{config}:2: policy.max_notebooks_per_user: Input should be greater than or equal to 0"
    assert result.stderr.splitlines()[-2:] == ["notebook-bot: the configuration has 1 problem:", problem]
    assert (result.stdout + result.stderr).count(problem) == 1
    assert "Worker failed to boot" not in result.stderr + result.stdout
