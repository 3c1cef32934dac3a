"""The policy on its own: the config's [access] and [policy] tables, user groups, thresholds, quotas."""

from __future__ import annotations

from datetime import date
from types import SimpleNamespace

import pytest

from bot.domain.catalog import load_catalog
from bot.domain.errors import NotAllowed
from bot.domain.policy import Access, GroupMembers, Policy, Rules
from bot.domain.spec import SpecBounds, parse_request, resolve
from bot.run.config import ConfigError, load_config
from tests.harness import Clock

CATALOG = load_catalog()
TODAY = date(2026, 11, 1)


def spec(text: str):
    return resolve(parse_request(text), CATALOG, SpecBounds(), TODAY)


def config(tmp_path, text: str):
    path = tmp_path / "config.toml"
    path.write_text(text)
    return load_config(path)


def test_the_documented_example_config_loads() -> None:
    from pathlib import Path

    loaded = load_config(Path(__file__).parent.parent / "config.example.toml")
    assert loaded.access.approval_channel == "C0APPROVALS" and "S0MLLEADS" in loaded.access.approvers
    assert loaded.policy.approval_expires_after == 24 * 3600 and loaded.policy.max_gpus_per_user == 4


@pytest.mark.parametrize(
    "text, expected",
    [
        ('[access]\napprovers = ["@pat"]\n', "access.approvers: '@pat': give Slack user IDs"),
        ('[access]\nadmins = ["U0ADMIN", "ada"]\n', "access.admins: 'ada'"),
        ('[access]\napproval_channel = "#approvals"\n', "give the channel's ID (C…)"),
        ('[policy]\napproval_expires_after = "soon"\n', "`soon` is not a duration"),
        ("[policy]\napproval_expires_after = 0\n", "approval_expires_after"),
        ("[policy]\napproval_over_gpu = 1\n", "policy.approval_over_gpu: unknown key"),
    ],
)
def test_mistakes_in_the_config_are_refused_with_where_and_why(tmp_path, text: str, expected: str) -> None:
    with pytest.raises(ConfigError) as error:
        config(tmp_path, text)
    assert expected in str(error.value)


def test_durations_in_the_config_are_read_in_words(tmp_path) -> None:
    policy = config(tmp_path, '[policy]\napproval_expires_after = "90m"\nidle_max = "2d"\n').policy
    assert (policy.approval_expires_after, policy.idle_max) == (90 * 60, 48 * 3600)


def test_approvers_are_people_or_members_of_groups_and_admins_approve_too() -> None:
    access = Access(admins=["U0ADMIN", "S0OPS"], approvers=["U0PAT", "S0LEADS"])
    rules = Rules(access, Policy(), {"S0LEADS": ["U0CAROL"], "S0OPS": ["U0OLGA"]})
    assert [rules.is_approver(u) for u in ("U0PAT", "U0CAROL", "U0ADMIN", "U0OLGA", "U0BOB")] == [
        True,
        True,
        True,
        True,
        False,
    ]
    assert [rules.is_admin(u) for u in ("U0OLGA", "U0CAROL")] == [True, False]
    assert rules.people(["U0PAT", "S0LEADS", "U0CAROL", "S0NONE"]) == ["U0PAT", "U0CAROL"]


def test_group_members_are_cached_and_a_failed_lookup_keeps_the_last_known() -> None:
    clock = Clock(1000.0)
    answers: list[object] = [["U0CAROL"], RuntimeError("ratelimited"), ["U0DAN"]]
    asked: list[str] = []

    def fetch(group: str) -> list[str]:
        asked.append(group)
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer  # type: ignore[return-value]

    groups = GroupMembers(fetch, clock=clock, ttl=300, retry_after=30)
    rules = Rules(Access(approvers=["S0LEADS"]), Policy(), groups)
    assert rules.is_approver("U0CAROL") and rules.is_approver("U0CAROL")
    assert asked == ["S0LEADS"], "one lookup within five minutes"
    clock.advance(301)
    assert rules.is_approver("U0CAROL"), "Slack failed: the last known members still count"
    assert len(asked) == 2
    clock.advance(10)
    assert rules.is_approver("U0CAROL") and len(asked) == 2, "a failure is not retried at once"
    clock.advance(25)
    assert not rules.is_approver("U0CAROL") and rules.is_approver("U0DAN")
    assert len(asked) == 3


def test_a_group_that_cannot_be_looked_up_approves_nobody() -> None:
    def fetch(group: str) -> list[str]:
        raise RuntimeError("missing_scope")

    rules = Rules(Access(approvers=["S0LEADS"]), Policy(), GroupMembers(fetch))
    assert not rules.is_approver("U0CAROL") and not rules.is_approver("S0LEADS")


@pytest.mark.parametrize(
    "policy, text, reason",
    [
        (Policy(), "base", None),
        (Policy(), "gpu=l4", None),
        (Policy(), "gpu=a100", "≈$3.70/h is over the $1.00/h allowed without approval"),
        (Policy(approval_over_usd_per_hour=5), "gpu=a100", None),
        (Policy(approval_over_gpus=1, approval_over_usd_per_hour=100), "gpu=l4x2", "2 GPU(s) is more than the 1"),
        (Policy(approval_over_gpus=0), "gpu=l4", "1 GPU(s) is more than the 0"),
        (Policy(approval_environments=["tf-2-8"]), "tf-2-8", "the `tf-2-8` environment always needs approval"),
        (Policy(approval_environments=["tf-ent-2-8-cu113-notebooks"]), "tf-2-8", "`tf-2-8` environment always"),
    ],
)
def test_what_needs_an_approver(policy: Policy, text: str, reason: str | None) -> None:
    found = Rules(Access(), policy, catalog=CATALOG).approval_reason(spec(text))
    assert (found is None) if reason is None else (reason in (found or ""))


def test_quotas_are_refused_with_the_numbers_and_what_each_counted_notebook_is_doing() -> None:
    rules = Rules(Access(), Policy(max_notebooks_per_user=2, max_gpus_per_user=3))
    rules.check_quota("U0ALICE", spec("gpu=l4"), [counted("gpu=l4x2 machine=g2-standard-24", "ACTIVE")])
    with pytest.raises(NotAllowed) as count:
        rules.check_quota("U0ALICE", spec("base"), [counted("base", "ACTIVE"), counted("base", "PENDING_APPROVAL")])
    assert (
        "You have 2 notebook(s) that count towards the limit of 2 per person (1 running, 1 waiting for approval; "
        "stopped ones don't count)" in count.value.message
    )
    with pytest.raises(NotAllowed) as gpus:
        rules.check_quota(
            "U0ALICE", spec("gpu=l4x2 machine=g2-standard-24"), [counted("gpu=l4x2 machine=g2-standard-24", "CREATING")]
        )
    assert "needs 2 GPU(s); your notebooks that are not stopped use 2 and the limit is 3" in gpus.value.message
    assert gpus.value.field == "gpu", "shown on the form's GPU field"


def counted(text: str, state: str) -> SimpleNamespace:
    return SimpleNamespace(spec=spec(text), state=state)


def test_bad_reminder_settings_are_refused_at_load_with_their_lines(tmp_path) -> None:
    from bot.run.config import ConfigError

    path = tmp_path / "config.toml"
    path.write_text(
        '[reminders]\nstopped_after = "two weeks"\nrepeat_every = 0\nescalate_to = "channel"\n'
        '[policy]\nidle_default = "30h"\n'
    )
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    text = str(caught.value)
    assert f"{path}:2: reminders.stopped_after: `two weeks` is not a duration" in text
    assert f"{path}:3: reminders.repeat_every" in text and f"{path}:4: reminders.escalate_to" in text
    assert "idle_default must lie between idle_min and idle_max" in text
    path.write_text("[reminders]\nworking_hours = [18, 9]\n")
    with pytest.raises(ConfigError, match="working_hours"):
        load_config(path)
