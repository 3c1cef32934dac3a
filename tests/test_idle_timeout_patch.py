"""The Workbench adapter's idle-timeout change against the Workbench fake, through the real REST client."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from bot.adapters.workbench import Workbench, WorkbenchError
from bot.sim.workbench_api import WorkbenchSimulator

ZONE = "us-central1-a"
METADATA = {
    "idle-timeout-seconds": "10800",
    "post-startup-script": "gs://scripts/abc.sh",
    "post-startup-script-behavior": "run_every_start",
}


@pytest.fixture
def sim() -> Iterator[WorkbenchSimulator]:
    with WorkbenchSimulator(op_polls_until_done=1) as simulator:
        yield simulator


def metadata(sim: WorkbenchSimulator, name: str) -> dict[str, str]:
    return sim.instances()[name]["gceSetup"]["metadata"]


def test_it_changes_only_the_idle_timeout_and_keeps_the_other_metadata(sim) -> None:
    name = sim.add_instance(ZONE, "trainer", {"gceSetup": {"machineType": "g2-standard-4", "metadata": METADATA}})
    workbench = Workbench("test-project", emulator_host=sim.host)

    operation = workbench.set_idle_timeout(ZONE, "trainer", 86400)

    assert metadata(sim, name) == {**METADATA, "idle-timeout-seconds": "86400"}
    assert sim.instances()[name]["gceSetup"]["machineType"] == "g2-standard-4"
    [call] = [c for c in sim.calls() if c.kind == "update"]
    assert call.verb == "PATCH" and call.query["updateMask"] == "gceSetup.metadata"
    assert call.path == f"/v2/{name}" and call.body == {"gceSetup": {"metadata": {"idle-timeout-seconds": "86400"}}}
    while not (status := workbench.operation(operation)).done:
        pass
    assert status.error is None
    workbench.set_idle_timeout(ZONE, "trainer", 86400)  # a repeated step changes nothing more
    assert metadata(sim, name) == {**METADATA, "idle-timeout-seconds": "86400"}


def test_a_missing_instance_is_explained(sim) -> None:
    with pytest.raises(WorkbenchError) as raised:
        Workbench("test-project", emulator_host=sim.host).set_idle_timeout(ZONE, "nowhere", 3600)
    assert raised.value.kind == "not_found"
