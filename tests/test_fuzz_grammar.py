"""Property-based fuzzing of the `/notebook new` grammar: whatever a person types, parsing and
resolving either give a spec or a UserError whose message is short enough to show, never a crash.

Hypothesis generates the texts; examples are bounded (max_examples) so the suite stays fast.
"""

from __future__ import annotations

from datetime import date

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.domain.errors import UserError
from bot.domain.spec import (
    KEYS,
    MAX_WORDS,
    SpecBounds,
    instance_name,
    parse_duration,
    parse_request,
    resolve,
    schedule_text,
)
from bot.run.config import load_config

CATALOG = load_config(None).catalog
BOUNDS = SpecBounds()
TODAY = date(2026, 12, 1)
MESSAGE_LIMIT = 2000  # a refusal fits a Block Kit section (3,000) with room to spare

FUZZ = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])

digits = st.integers(min_value=1, max_value=6000).map(lambda n: "9" * n)
nasty = st.sampled_from(
    ["", "0", "-1", "²", "٣", "1e9", "NaN", "a/b", "../x", "__x__", "%2F", "<@U0BOB>", "`", "x" * 5000, "\u212a", "İ"]
)
long_text = st.text(min_size=60, max_size=1200)
value = st.one_of(
    st.text(max_size=40), long_text, digits, nasty, st.sampled_from(["l4", "t4x2", "a100x8", "2h", "90m", "200"])
)
schedule = st.builds(
    lambda stop, plus: stop + plus,
    st.one_of(
        st.sampled_from(["default", "off", "OFF", "of", "19:00", "9:05", "08:59", "24:00", "23:60", "2100"]),
        st.builds("{:d}:{:02d}".format, st.integers(0, 30), st.integers(0, 70)),
        st.text(st.characters(blacklist_categories=("Z", "C")), max_size=8),  # one word, as a form field gives it
    ),
    st.sampled_from(["", "+weekends", "+Weekends", "+weekend", "+", "++weekends"]),
)
key = st.one_of(
    st.sampled_from(["bucket", "bucket", "name", "zone", "schedule"]),
    st.sampled_from([*KEYS, "data-disk", "gpus", "GPU", "Boot_Disk"]),
    st.text(min_size=1, max_size=12),
)
option = st.one_of(st.builds(lambda k, v: f"{k}={v}", key, value), schedule.map("schedule={}".format))
word = st.one_of(st.sampled_from([*CATALOG.environments, "TF-2-8", "none"]), st.text(max_size=20))
command = st.lists(st.one_of(option, word), max_size=8).map(" ".join)


def outcome(text: str) -> str:
    """'ok' for a spec, else the refusal's message; anything other than UserError fails the test."""
    try:
        resolve(parse_request(text), CATALOG, BOUNDS, TODAY)
    except UserError as error:
        assert error.message and len(error.message) <= MESSAGE_LIMIT, (len(error.message), error.message[:200])
        return error.message
    return "ok"


@FUZZ
@given(command)
def test_any_command_is_a_spec_or_a_user_error_with_a_bounded_message(text: str) -> None:
    outcome(text)


@FUZZ
@given(st.text(max_size=300))
def test_arbitrary_text_is_a_spec_or_a_user_error(text: str) -> None:
    outcome(text)


@FUZZ
@given(st.sampled_from(["disk", "boot-disk", "idle", "gpu"]), st.integers(min_value=7, max_value=6000))
def test_long_numbers_are_refused_clearly_before_conversion(key: str, count: int) -> None:
    raw = ("l4x" if key == "gpu" else "") + "9" * count + ("h" if key == "idle" and count % 2 else "")
    message = outcome(f"{key}={raw}")
    assert "digits" in message or "characters long" in message
    assert ("…" in message) == (len(raw) > 60)  # the echoed value is cut, visibly, only when long


@pytest.mark.parametrize(
    "key, raw", [("disk", "9" * 5000), ("boot-disk", "9" * 4301 + "gb"), ("idle", "9" * 4400 + "m")]
)
def test_regression_values_past_python_s_int_digit_limit(key: str, raw: str) -> None:
    with pytest.raises(UserError) as refused:
        parse_request(f"{key}={raw}")
    assert refused.value.field == key and len(refused.value.message) < 400


def test_regression_gpu_count_past_the_int_digit_limit() -> None:
    with pytest.raises(UserError, match="characters long") as refused:
        parse_request("gpu=l4x" + "1" * 5000)
    assert refused.value.field == "gpu"


def test_regression_unicode_digits_are_not_numbers() -> None:
    """'²'.isdigit() is True but int('²') raises: durations only take ASCII digits."""
    for raw in ("²", "1²h", "٣h"):
        with pytest.raises(UserError):
            parse_duration(raw)


def test_a_whole_command_is_bounded() -> None:
    with pytest.raises(UserError, match=f"at most {MAX_WORDS}"):
        parse_request("gpu=l4 " * (MAX_WORDS + 1))
    with pytest.raises(UserError, match="digits") as refused:
        parse_request("disk=" + "9" * 50)
    assert refused.value.field == "disk"


@pytest.mark.parametrize("name", ["a/b", "../etc", "__name__", "x" * 64, "UPPER_case", "ends-", "-starts", "", "a b"])
def test_instance_names_follow_one_rule(name: str) -> None:
    with pytest.raises(UserError, match="can't be a notebook name"):
        instance_name(name)


def test_partial_names_may_end_in_a_hyphen_but_not_leave_the_rule() -> None:
    assert instance_name("Churn-", partial=True) == "churn-"
    for bad in ("a/b", "churn model", "x" * 64, "1abc", ""):
        with pytest.raises(UserError):
            instance_name(bad, partial=True)


@FUZZ
@given(st.text(max_size=80))
def test_a_name_is_valid_or_refused(raw: str) -> None:
    try:
        name = instance_name(raw)
    except UserError as error:
        assert len(error.message) <= 400
        return
    assert "/" not in name and 1 <= len(name) <= 63 and name == name.lower()


@FUZZ
@given(schedule, st.sampled_from(["", "gpu=l4 "]))
def test_a_schedule_is_refused_with_a_reason_or_kept_as_it_reads_back(typed: str, gpu: str) -> None:
    """Whatever `schedule=` says: refused naming the option, or stored in the one form that resolves
    to the same notebook again."""
    try:
        spec = resolve(parse_request(f"{gpu}schedule={typed}"), CATALOG, BOUNDS, TODAY)
    except UserError as error:
        assert error.field == "schedule" and "schedule" in error.message and len(error.message) <= MESSAGE_LIMIT
        return
    assert spec.schedule is None or schedule_text(spec.schedule) == spec.schedule
    assert resolve(parse_request(spec.request().command()), CATALOG, BOUNDS, TODAY) == spec
