"""Property-based fuzzing of reading forms back: view_values, LaunchForm.from_view / from_meta and
errors_for on views of any shape (state as a list, options without values, numbers where strings
belong, 5,000-digit entries). They never raise; a bad entry in a field is flagged on that field.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from bot.adapters.store import SqliteStore
from bot.domain.errors import UserError
from bot.run.config import Settings
from bot.run.services import Services
from bot.ui.forms import (
    FORM_FIELDS,
    LaunchForm,
    default_form,
    errors_for,
    field_of,
    launch_modal,
    view_meta,
    view_values,
)

FUZZ = settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture]
)

junk = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20) | st.just("9" * 5000),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)
block_ids = st.sampled_from([*FORM_FIELDS, "gpu_count:l4", "machine:l4:1", "decision", "reason", "price"]) | st.text(
    max_size=10
)
entered = st.one_of(
    junk,
    st.fixed_dictionaries({"type": st.just("plain_text_input"), "value": junk}),
    st.fixed_dictionaries({"type": st.just("static_select"), "selected_option": junk}),
    st.fixed_dictionaries(
        {"type": st.just("static_select"), "selected_option": st.fixed_dictionaries({"value": junk})}
    ),
)
input_block = st.fixed_dictionaries(
    {"type": st.sampled_from(["input", "section", "context"]) | junk, "block_id": block_ids | junk},
    optional={
        "element": junk
        | st.fixed_dictionaries(
            {"action_id": st.just("value") | junk},
            optional={"initial_value": junk, "initial_option": junk, "type": junk},
        )
    },
)
views = st.one_of(
    junk,
    st.fixed_dictionaries(
        {},
        optional={
            "blocks": st.lists(input_block, max_size=8) | junk,
            "state": st.fixed_dictionaries(
                {
                    "values": st.dictionaries(
                        block_ids, st.dictionaries(st.just("value") | st.text(max_size=5), entered)
                    )
                    | junk
                }
            )
            | junk,
            "private_metadata": st.text(max_size=50) | junk | st.builds(json.dumps, junk),
            "callback_id": st.sampled_from(["launch_modal", "review_modal"]) | junk,
        },
    ),
)


@pytest.fixture
def services(monkeypatch: pytest.MonkeyPatch) -> Iterator[Services]:
    monkeypatch.setenv("SLACK_API_URL", "http://127.0.0.1:9/api/")  # nothing is sent
    monkeypatch.setenv("NOTEBOOKS_EMULATOR_HOST", "127.0.0.1:9")
    yield Services(Settings(slack_bot_token="xoxb-fuzz", project="fuzz"), store=SqliteStore(), clock=lambda: 1.8e9)


@FUZZ
@given(view=views, meta=junk)
def test_reading_any_view_never_raises(services: Services, view: Any, meta: Any) -> None:
    values = view_values(view)
    assert all(isinstance(k, str) and (v is None or isinstance(v, str)) for k, v in values.items())
    assert isinstance(view_meta(view), dict)
    defaults = LaunchForm.from_meta(meta, default_form(services.launcher))
    form = LaunchForm.from_view(view, defaults)
    assert isinstance(form.gpu_count, int) and all(
        isinstance(getattr(form, f), str) for f in FORM_FIELDS if f != "gpu_count"
    )
    try:
        services.launcher.check(form.request())
    except UserError as error:
        errors = errors_for(error, view if isinstance(view, dict) else None)
        [(block, message)] = errors.items()
        assert isinstance(block, str) and 0 < len(message) <= 2000
    launch_modal(services.launcher, form, "C0GENERAL")  # and the form can be drawn again


EDITABLE = {"disk": "disk", "boot_disk": "boot_disk", "idle": "idle", "name": "name", "bucket": "bucket"}
typed = st.one_of(
    st.text(max_size=30),
    st.integers(min_value=1, max_value=6000).map(lambda n: "9" * n),
    st.sampled_from(["0", "-5", "²", "100 gpu=a100", "a/b", "2h30", "x" * 3000, "B" * 70, "1e3", "٣"]),
)


@FUZZ
@given(field=st.sampled_from(sorted(EDITABLE)), value=typed)
@example(field="boot_disk", value="0\r0")  # found by this test: a carriage return split the command
@example(field="idle", value="2h\u00a030m")
def test_a_bad_entry_is_flagged_on_its_own_field(services: Services, field: str, value: str) -> None:
    """Whatever is typed into one field of the real launch form, a refusal lands on that field."""
    view = launch_modal(services.launcher, default_form(services.launcher), "C0GENERAL")
    block = next(b for b in view["blocks"] if b.get("block_id") == field)
    view["state"] = {"values": {block["block_id"]: {"value": {"type": "plain_text_input", "value": value}}}}
    form = LaunchForm.from_view(
        view, LaunchForm.from_meta(view_meta(view).get("form"), default_form(services.launcher))
    )
    try:
        services.launcher.check(form.request())
    except UserError as error:
        [(flagged, _)] = errors_for(error, view).items()
        assert field_of(flagged) == EDITABLE[field], (field, value[:40], error.field, error.message[:120])


def test_regression_malformed_shapes_from_slack_payload_fuzzing(services: Services) -> None:
    defaults = default_form(services.launcher)
    for view in (
        {"state": [], "blocks": []},
        {"state": {"values": []}, "blocks": "nope"},
        {
            "blocks": [{"type": "input", "block_id": "gpu_count:l4", "element": {"action_id": "value"}}],
            "state": {"values": {"gpu_count:l4": {"value": {"selected_option": {"value": "9" * 5000}}}}},
        },
        {"blocks": [{"type": "input", "block_id": "gpu_count:l4", "element": {"initial_option": {"value": "²"}}}]},
        {"private_metadata": 42},
        {"private_metadata": "[" * 5000},
        {"private_metadata": json.dumps({"form": {"gpu_count": "9" * 5000, "disk": 7, "environment": None}})},
    ):
        form = LaunchForm.from_view(view, LaunchForm.from_meta(view_meta(view).get("form"), defaults))
        assert form.gpu_count == defaults.gpu_count and form.disk == defaults.disk


def test_a_5000_digit_disk_is_refused_on_the_disk_field(services: Services) -> None:
    view = launch_modal(services.launcher, default_form(services.launcher), "C0GENERAL")
    view["state"] = {"values": {"disk": {"value": {"type": "plain_text_input", "value": "9" * 5000}}}}
    form = LaunchForm.from_view(view, default_form(services.launcher))
    with pytest.raises(UserError) as refused:
        services.launcher.check(form.request())
    assert list(errors_for(refused.value, view)) == ["disk"]
