"""The /notebook new grammar and its resolution against the shipped catalog."""

from __future__ import annotations

from datetime import date, time

import pytest

from bot.domain.catalog import load_catalog
from bot.domain.errors import UserError
from bot.domain.schedules import Schedules
from bot.domain.spec import NotebookSpec, SpecBounds, format_duration, parse_duration, parse_request, resolve

CATALOG = load_catalog()
TODAY = date(2026, 11, 29)


DEFAULT_BOUNDS = SpecBounds()


def launch(text: str, bounds: SpecBounds = DEFAULT_BOUNDS) -> NotebookSpec:
    return resolve(parse_request(text), CATALOG, bounds, TODAY)


def refusal(text: str, bounds: SpecBounds = DEFAULT_BOUNDS) -> UserError:
    with pytest.raises(UserError) as caught:
        launch(text, bounds)
    return caught.value


def test_the_headline_command_gets_an_l4_on_a_g2_machine_with_the_tf_container() -> None:
    spec = launch("tf-2-8 gpu=l4")
    assert (spec.environment, spec.gpu, spec.gpu_count, spec.machine) == ("tf-2-8", "l4", 1, "g2-standard-4")
    assert CATALOG.environments["tf-2-8"].container is not None
    assert spec.usd_per_hour == pytest.approx(0.71 + 0.10 * 250 / 730, abs=0.001)


def test_keys_are_case_insensitive_and_in_any_order() -> None:
    a = launch("TF-2-8 DISK=200 GPU=T4x2 Idle=90m")
    b = launch("idle=1h30m gpu=t4x2 tf-2-8 disk=200gb")
    assert a == b
    assert (a.gpu, a.gpu_count, a.disk_gb, a.idle_seconds) == ("t4", 2, 200, 5400)


def test_defaults_without_arguments() -> None:
    spec = launch("")
    assert (spec.environment, spec.machine, spec.gpu, spec.disk_gb, spec.boot_disk_gb) == (
        "base",
        "e2-standard-4",
        None,
        100,
        150,
    )
    assert spec.zone == "us-central1-a" and spec.idle_seconds == 3 * 3600


def test_gpu_aliases_resolve() -> None:
    assert launch("gpu=nvidia-tesla-v100").gpu == "v100"
    assert launch("gpu=a100-80").machine == "a2-ultragpu-1g"
    assert launch("gpu=a100x2").machine == "a2-highgpu-2g"


def test_n1_gpus_get_an_n1_machine_within_their_vcpu_limit() -> None:
    assert launch("gpu=t4").machine == "n1-standard-8"
    assert CATALOG.machines[launch("gpu=v100").machine].vcpus <= 12


def test_a_machine_with_built_in_gpus_brings_them_along() -> None:
    spec = launch("machine=g2-standard-24")
    assert (spec.gpu, spec.gpu_count) == ("l4", 2)


def test_p100_is_understood_as_retired_and_l4_is_offered_with_one_click() -> None:
    error = refusal("tf-2-8 gpu=p100 machine=n1-standard-8")
    assert "retired" in error.message and "2026-09-15" in error.message
    assert error.offer == "tf-2-8 gpu=l4"  # the N1 machine can't carry an L4, so it is dropped
    assert error.offer_label == "Launch with L4 instead"
    assert launch(error.offer).gpu == "l4"


def test_deprecated_gpus_launch_with_a_notice() -> None:
    spec = launch("gpu=t4")
    assert spec.notices and "2027-08-01" in spec.notices[0] and "gpu=l4" in spec.notices[0]


def test_unknown_environment_suggests_the_close_one() -> None:
    error = refusal("tf-2-9")
    assert "Did you mean `tf-2-8`" in error.message and error.field == "environment"


def test_unknown_gpu_lists_the_choices() -> None:
    error = refusal("gpu=l5")
    assert "Did you mean `l4`" in error.message and "`a100`" in error.message and error.field == "gpu"


def test_gpu_count_the_gpu_does_not_come_in() -> None:
    error = refusal("gpu=l4x3")
    assert "1, 2, 4, 8" in error.message and "not 3" in error.message


def test_gpu_count_beyond_what_the_machine_can_take() -> None:
    error = refusal("gpu=v100 machine=n1-standard-16")
    assert "at most 12 vCPUs" in error.message and "`n1-standard-8`" in error.message


def test_machine_family_that_takes_no_gpu() -> None:
    error = refusal("gpu=t4 machine=e2-standard-4")
    assert "e2 machines take no" in error.message and "`n1-standard-4`" in error.message
    assert "built into" in refusal("gpu=l4 machine=n1-standard-8").message


@pytest.mark.parametrize("text", ["disk=5", "disk=70000", "boot-disk=100"])
def test_disk_out_of_range(text: str) -> None:
    assert "out of range" in refusal(text).message


@pytest.mark.parametrize("name", ["Bad_Name", "1abc", "ends-", "x" * 64])
def test_invalid_instance_name(name: str) -> None:
    error = refusal(f"name={name}")
    assert error.field == "name" and "lowercase letters" in error.message


def test_unknown_option_and_typos_in_keys() -> None:
    error = refusal("colour=red")
    assert "`colour`" in error.message and "Options:" in error.message
    assert "Did you mean `machine`" in refusal("machin=n1-standard-8").message


def test_repeated_or_empty_options_and_two_environments() -> None:
    assert "twice" in refusal("gpu=l4 gpu=t4").message
    assert "needs a value" in refusal("gpu=").message
    assert "environment" in refusal("tf-2-8 pytorch").message


def test_zone_and_idle_bounds_come_from_policy() -> None:
    bounds = SpecBounds(allowed_zones=("us-central1-a", "us-central1-b"), idle_max=4 * 3600)
    assert "Allowed zones" in refusal("zone=europe-west4-a", bounds).message
    assert "not a zone name" in refusal("zone=nowhere").message
    assert "between 10m and 4h" in refusal("idle=8h", bounds).message
    assert "not a duration" in refusal("idle=soon").message


def test_request_command_text_round_trips() -> None:
    spec = launch("tf-2-8 gpu=t4x2 disk=300 name=my-nb idle=2h bucket=data/x bucket=more schedule=21:30+Weekends")
    again = launch(spec.request().command())
    assert again == spec


def test_spec_survives_the_store_format() -> None:
    spec = launch("gpu=t4 bucket=my-data/training")
    assert NotebookSpec.from_dict(spec.to_dict()) == spec


def test_durations() -> None:
    assert parse_duration("2h") == 7200 and parse_duration("45") == 2700 and parse_duration("1d") == 86400
    assert format_duration(5400) == "1h30m" and format_duration(600) == "10m"
    assert parse_duration("30s") == 30 and parse_duration("1m30s") == 90 and format_duration(90) == "1m30s"


@pytest.mark.parametrize("dash", ["\u2010", "\u2011", "\u2012", "\u2013", "\u2014", "\u2212", "\uff0d"])
def test_look_alike_dashes_are_read_as_hyphens(dash: str) -> None:
    """Phones and word processors turn '-' into look-alikes; `tf‑2‑8` is `tf-2-8`, not a near miss."""
    spec = launch(f"tf{dash}2{dash}8 gpu=l4 disk{dash}type=ssd name=churn{dash}model")
    assert (spec.environment, spec.disk_type, spec.name) == ("tf-2-8", "ssd", "churn-model")


def test_invisible_characters_are_dropped() -> None:
    assert launch("tf-2\u00ad-8 gpu=l4\u200b").environment == "tf-2-8"


def test_an_environment_alias_says_what_it_stands_for() -> None:
    """`pytorch` is a real name of the base image (it ships PyTorch), and the reply says so."""
    spec = launch("pytorch gpu=t4x2 disk=500 idle=2h")
    assert spec.environment == "base"
    assert spec.notices[0] == (
        "`pytorch` is the `base` image, which ships Python 3.11, TensorFlow and PyTorch in the default kernel "
        "(Debian 11)."
    )
    assert launch("base").notices == ()


# --- schedule=: a notebook's own off-hours, within the [schedules] policy ---------------------------
@pytest.mark.parametrize(
    "typed, stored, words",
    [
        ("schedule=21:30", "21:30", "evening stop 21:30"),
        ("schedule=9:30", "09:30", "evening stop 09:30"),
        ("Schedule=Default", None, ""),
        ("schedule=default+weekends", "default+weekends", "runs through weekends"),
        ("schedule=22:00+WEEKENDS", "22:00+weekends", "evening stop 22:00, runs through weekends"),
    ],
)
def test_a_schedule_is_stored_one_way_and_shown_in_the_summary(typed: str, stored: str | None, words: str) -> None:
    spec = launch(f"gpu=l4 {typed}")
    assert spec.schedule == stored and spec.schedule_words == words
    assert (words in spec.summary(CATALOG)) if words else "evening" not in spec.summary(CATALOG)
    assert NotebookSpec.from_dict(spec.to_dict()) == spec and launch(spec.request().command()) == spec


@pytest.mark.parametrize(
    "typed, says",
    [
        ("schedule=tonight", "is not a schedule"),
        ("schedule=of", "Did you mean `off`?"),
        ("schedule=defualt", "Did you mean `default`?"),
        ("schedule=21:00+weekend", "Did you mean `+weekends`?"),
        ("schedule=25:00", "is not a schedule"),
        ("schedule=21:5", "is not a schedule"),
        ("schedule=08:30", "too early"),
        ("schedule=off", "`schedule=off` isn't allowed here"),
        ("schedule=", "needs a value"),
        ("schedul=21:00", "Did you mean `schedule`?"),
        ("schedule=20:00 schedule=21:00", "twice"),
    ],
)
def test_a_bad_schedule_is_refused_with_words(typed: str, says: str) -> None:
    error = refusal(f"gpu=l4 {typed}")
    assert says in error.message and error.field in ("schedule", "schedul"), error.message


def test_a_schedule_is_checked_against_the_teams_policy() -> None:
    strict = SpecBounds(schedules=Schedules(latest_stop_at=time(22, 0), allow_weekends=False))
    assert "too late" in refusal("gpu=l4 schedule=22:30", strict).message
    assert "`+weekends` isn't allowed" in refusal("gpu=l4 schedule=21:00+weekends", strict).message
    assert launch("gpu=l4 schedule=off", SpecBounds(schedules=Schedules(allow_off=True))).schedule == "off"
    assert launch("schedule=off").schedule == "off", "no GPU: nothing to opt out of, so nothing to refuse"
