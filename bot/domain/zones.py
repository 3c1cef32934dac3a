"""Where to go when a zone is out of capacity: the nearest zone that Google says has it, that the
policy allows and that the catalog lists the GPU in."""

from __future__ import annotations

from collections.abc import Iterable, Sequence


def region_of(zone: str) -> str:
    """`us-central1-a` -> `us-central1`."""
    return zone.rsplit("-", 1)[0]


def geography_of(zone: str) -> str:
    """`us-central1-a` -> `us`, `europe-west4-b` -> `europe`, `northamerica-northeast1-a` -> `northamerica`."""
    return zone.split("-", 1)[0]


def distance(home: str, zone: str) -> int:
    """0 in the same region, 1 in the same geography (us-, europe-, asia-…), 2 anywhere else."""
    if region_of(zone) == region_of(home):
        return 0
    return 1 if geography_of(zone) == geography_of(home) else 2


def nearest_zone(
    home: str, candidates: Iterable[str], *, allowed: Sequence[str] = (), offered: Sequence[str] = ()
) -> str | None:
    """The candidate nearest to `home` (same region, then same geography, then any; by name within
    each), among those `allowed` (empty: any zone) and `offered` (the catalog's zones for the GPU;
    empty: not listed, so any). None when no candidate qualifies; `home` itself never does."""
    fitting = {
        zone
        for zone in candidates
        if zone != home and (not allowed or zone in allowed) and (not offered or zone in offered)
    }
    return min(fitting, key=lambda zone: (distance(home, zone), zone), default=None)
