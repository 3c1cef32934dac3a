"""Choosing the zone a stockout's offer names, and reading the zones out of Google's error."""

from __future__ import annotations

from google.protobuf import any_pb2
from google.rpc import error_details_pb2

from bot.adapters.workbench import explain, zones_with_capacity
from bot.domain.zones import nearest_zone

# As Compute Engine words it (gcloud's output for a T4 stockout, 2026).
LOCALIZED = (
    "A n1-standard-4 VM instance with 1 nvidia-tesla-t4 accelerator(s) is currently unavailable in the "
    "us-central1-b zone. Consider trying your request in the us-central1-a, us-central1-f zone(s), which "
    "currently has capacity to accommodate your request. Alternatively, you can try your request again with a "
    "different VM hardware configuration or at a later time."
)
MESSAGE = (
    "ZONE_RESOURCE_POOL_EXHAUSTED_WITH_DETAILS: The zone 'projects/p/zones/us-central1-b' does not have enough "
    "resources available to fulfill the request.  '(resource type:compute)'."
)


def packed(message) -> any_pb2.Any:
    detail = any_pb2.Any()
    detail.Pack(message)
    return detail


def test_the_same_region_comes_first_then_the_same_geography_then_any() -> None:
    home = "us-central1-a"
    assert nearest_zone(home, ["europe-west4-a", "us-east1-b", "us-central1-c", "us-central1-b"]) == "us-central1-b"
    assert nearest_zone(home, ["europe-west4-a", "us-west1-a", "us-east1-b"]) == "us-east1-b"
    assert nearest_zone(home, ["europe-west4-b", "asia-east1-a"]) == "asia-east1-a"
    assert nearest_zone(home, [home]) is None and nearest_zone(home, []) is None


def test_only_allowed_zones_the_catalog_lists_are_chosen() -> None:
    candidates = ["us-central1-b", "us-central1-c", "us-east1-b"]
    assert nearest_zone("us-central1-a", candidates, allowed=["us-central1-c", "us-east1-b"]) == "us-central1-c"
    assert nearest_zone("us-central1-a", candidates, offered=["us-east1-b"]) == "us-east1-b"
    assert nearest_zone("us-central1-a", candidates, allowed=["us-central1-b"], offered=["us-east1-b"]) is None


def test_the_zones_come_from_error_info_before_any_sentence() -> None:
    info = error_details_pb2.ErrorInfo(
        reason="resource_availability",
        domain="compute.googleapis.com",
        metadata={"zone": "us-central1-b", "zonesAvailable": "us-central1-c,us-east1-b"},
    )
    words = error_details_pb2.LocalizedMessage(locale="en-US", message=LOCALIZED)
    assert zones_with_capacity(MESSAGE, [packed(words), packed(info)]) == ["us-central1-c", "us-east1-b"]
    assert zones_with_capacity(MESSAGE, [packed(words)]) == ["us-central1-a", "us-central1-f"]
    assert zones_with_capacity(f"{MESSAGE} {LOCALIZED}") == ["us-central1-a", "us-central1-f"]
    assert zones_with_capacity(MESSAGE) == []  # the zone that is out is not one that has capacity


def test_a_stockout_error_names_the_zone_that_is_out_and_those_with_capacity() -> None:
    error = explain(8, f"{MESSAGE} {LOCALIZED}")
    assert error.kind == "stockout" and error.zones == ["us-central1-a", "us-central1-f"]
    assert "in `us-central1-b`" in error.message and "us-central1-a, us-central1-f" in error.message
    assert explain(8, MESSAGE).zones == []
