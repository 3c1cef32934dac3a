"""The Workbench simulator, driven by the real google-cloud-notebooks REST client."""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from google.api_core import exceptions as gexc
from google.auth.credentials import AnonymousCredentials
from google.cloud import notebooks_v2 as nb

from bot.sim.workbench_api import WorkbenchSimulator

ZONE = "us-central1-a"
PARENT = f"projects/test-project/locations/{ZONE}"
PROXY = re.compile(r"^[0-9a-f]{16}-dot-us-central1\.notebooks\.googleusercontent\.com$")


@pytest.fixture
def sim() -> Iterator[WorkbenchSimulator]:
    with WorkbenchSimulator(op_polls_until_done=2) as simulator:
        yield simulator


def client_for(sim: WorkbenchSimulator) -> nb.NotebookServiceClient:
    return nb.NotebookServiceClient(
        credentials=AnonymousCredentials(), transport="rest", client_options={"api_endpoint": f"http://{sim.host}"}
    )


@pytest.fixture
def client(sim: WorkbenchSimulator) -> nb.NotebookServiceClient:
    return client_for(sim)


def create(client: nb.NotebookServiceClient, instance_id: str, request_id: str = "", **fields: Any) -> str:
    request = {"parent": PARENT, "instance_id": instance_id, "instance": nb.Instance(**fields)}
    if request_id:
        request["request_id"] = request_id
    return client.create_instance(request=request).operation.name


def poll(client: nb.NotebookServiceClient, op_name: str, limit: int = 10) -> tuple[list[bool], Any]:
    """Poll get_operation until done; returns the done flags seen and the final operation."""
    seen = []
    for _ in range(limit):
        op = client.get_operation({"name": op_name})
        seen.append(op.done)
        if op.done:
            return seen, op
    raise AssertionError(f"operation not done after {limit} polls: {seen}")


def test_a_client_that_only_lists_sees_its_creation_finish(sim, client) -> None:
    create(client, "nb-listed", "req-listed")
    states = [[i.state for i in client.list_instances(parent=PARENT)] for _ in range(3)]
    assert states == [[nb.State.PROVISIONING], [nb.State.PROVISIONING], [nb.State.ACTIVE]]


def test_create_reports_done_after_the_polls_then_the_instance_is_active(sim, client) -> None:
    op_name = create(client, "nb-one", "req-1", labels={"owner": "alice"})
    assert re.fullmatch(rf"{PARENT}/operations/operation-[0-9a-f]+", op_name)
    provisioning = client.get_instance(name=f"{PARENT}/instances/nb-one")
    assert provisioning.state == nb.State.PROVISIONING and provisioning.proxy_uri == ""

    seen, op = poll(client, op_name)
    assert seen == [False, True], "the get above was one of the two looks"
    assert not op.HasField("error")
    meta = nb.OperationMetadata.pb(nb.OperationMetadata())
    assert op.metadata.Unpack(meta) and meta.verb == "create" and meta.target == f"{PARENT}/instances/nb-one"
    answered = nb.Instance.pb(nb.Instance())
    assert op.response.Unpack(answered) and answered.state == nb.State.ACTIVE

    instance = client.get_instance(name=f"{PARENT}/instances/nb-one")
    assert instance.state == nb.State.ACTIVE and instance.health_state == nb.HealthState.HEALTHY
    assert PROXY.match(instance.proxy_uri), instance.proxy_uri
    assert instance.labels == {"owner": "alice"} and instance.creator and instance.create_time


def test_the_same_request_id_returns_the_same_operation_and_one_instance(sim, client) -> None:
    first = create(client, "nb-idem", "req-same")
    again = create(client, "nb-idem", "req-same")
    assert first == again
    assert list(sim.instances()) == [f"{PARENT}/instances/nb-idem"]
    assert sim.count("create") == 2
    assert [c.query.get("requestId") for c in sim.calls() if c.kind == "create"] == ["req-same", "req-same"]


def test_an_existing_id_with_another_request_id_is_a_conflict(sim, client) -> None:
    create(client, "nb-taken", "req-a")
    with pytest.raises(gexc.Conflict) as raised:
        create(client, "nb-taken", "req-b")
    assert "already exists" in raised.value.message
    assert len(sim.instances()) == 1


@pytest.mark.parametrize("bad_id", ["Upper", "1starts-with-digit", "ends-with-", "x" * 64, "under_score"])
def test_an_invalid_instance_id_is_refused(sim, client, bad_id: str) -> None:
    with pytest.raises(gexc.BadRequest):
        create(client, bad_id, "req-bad")
    assert sim.instances() == {}


@pytest.mark.parametrize(
    "status, exception",
    [
        (403, gexc.Forbidden),
        (404, gexc.NotFound),
        (409, gexc.Conflict),
        (429, gexc.TooManyRequests),
        (500, gexc.InternalServerError),
        (503, gexc.ServiceUnavailable),
    ],
)
def test_injected_http_errors_raise_the_matching_exception(sim, client, status: int, exception: type) -> None:
    sim.fail_next("create", status, "injected trouble", times=2)
    for _ in range(2):
        with pytest.raises(exception) as raised:
            create(client, "nb-retry", "req-retry")
        assert "injected trouble" in raised.value.message
    create(client, "nb-retry", "req-retry")  # the third call goes through
    assert sim.count("create") == 3 and len(sim.instances()) == 1


def test_an_injected_error_status_name_is_on_the_wire(sim) -> None:
    sim.fail_next("get", 429, "slow down")
    url = f"http://{sim.host}/v2/{PARENT}/instances/anything"
    with pytest.raises(urllib.error.HTTPError) as raised:
        urllib.request.urlopen(url)
    assert json.loads(raised.value.read()) == {
        "error": {"code": 429, "message": "slow down", "status": "RESOURCE_EXHAUSTED"}
    }


def test_a_failed_create_operation_surfaces_its_error_and_leaves_no_instance(sim, client) -> None:
    quota = "Quota 'NVIDIA_L4_GPUS' exceeded. Limit: 1.0 in region us-central1."
    sim.fail_next_operation("create", 7, quota)
    op_name = create(client, "nb-quota", "req-q")
    assert f"{PARENT}/instances/nb-quota" in sim.instances()
    seen, op = poll(client, op_name)
    assert seen == [False, False, True]
    assert op.error.code == 7 and op.error.message == quota
    assert not op.HasField("response")
    assert sim.instances() == {}
    with pytest.raises(gexc.NotFound):
        client.get_instance(name=f"{PARENT}/instances/nb-quota")
    _, op = poll(client, create(client, "nb-quota", "req-q2"))  # the name is free again, the failure used up
    assert not op.HasField("error") and client.get_instance(name=f"{PARENT}/instances/nb-quota").proxy_uri


def test_the_blocking_result_raises_the_operation_error(client) -> None:
    with WorkbenchSimulator(op_polls_until_done=0) as quick:
        quick_client = client_for(quick)
        quick.fail_next_operation("create", 8, "ZONE_RESOURCE_POOL_EXHAUSTED us-central1-b")
        request = {"parent": PARENT, "instance_id": "nb-stockout", "instance": nb.Instance()}
        with pytest.raises(gexc.ResourceExhausted, match="ZONE_RESOURCE_POOL_EXHAUSTED"):
            quick_client.create_instance(request=request).result(timeout=10)
        ok = quick_client.create_instance(request={**request, "instance_id": "nb-ok"}).result(timeout=10)
        assert ok.state == nb.State.ACTIVE and PROXY.match(ok.proxy_uri)


def test_list_pages_through_three_pages_and_filters_by_label(sim, client) -> None:
    for i in range(7):
        sim.add_instance(ZONE, f"nb-{i}", {"labels": {"owner": "alice" if i % 3 == 0 else "bob"}})
    sim.add_instance("europe-west4-a", "elsewhere")  # another zone is not listed

    pager = client.list_instances(request={"parent": PARENT, "page_size": 3})
    pages = [[i.name.rsplit("/", 1)[1] for i in page.instances] for page in pager.pages]
    assert pages == [["nb-0", "nb-1", "nb-2"], ["nb-3", "nb-4", "nb-5"], ["nb-6"]]
    tokens = [c.query.get("pageToken") for c in sim.calls() if c.kind == "list"]
    assert tokens[0] is None and all(tokens[1:]) and len(tokens) == 3

    for expression in ("labels.owner=alice", "labels.owner:alice", 'labels.owner = "alice"'):
        found = client.list_instances(request={"parent": PARENT, "filter": expression})
        assert sorted(i.name.rsplit("/", 1)[1] for i in found) == ["nb-0", "nb-3", "nb-6"], expression
    everything = client.list_instances(request={"parent": PARENT, "filter": "state=ACTIVE"})
    assert len(list(everything)) == 7, "other filter forms are ignored"


def test_stop_start_and_delete_move_through_their_states(sim, client) -> None:
    name = f"{PARENT}/instances/nb-life"
    poll(client, create(client, "nb-life", "req-life"))

    stop = client.stop_instance(request={"name": name}).operation.name
    assert client.get_instance(name=name).state == nb.State.STOPPING
    poll(client, stop)
    assert client.get_instance(name=name).state == nb.State.STOPPED

    start = client.start_instance(request={"name": name}).operation.name
    assert client.get_instance(name=name).state == nb.State.STARTING
    _, op = poll(client, start)
    answered = nb.Instance.pb(nb.Instance())
    assert op.response.Unpack(answered) and answered.state == nb.State.ACTIVE
    assert client.get_instance(name=name).state == nb.State.ACTIVE

    reset = client.reset_instance(request={"name": name}).operation.name
    poll(client, reset)
    assert client.get_instance(name=name).state == nb.State.ACTIVE

    delete = client.delete_instance(request={"name": name, "request_id": "req-del"}).operation.name
    assert client.delete_instance(request={"name": name, "request_id": "req-del"}).operation.name == delete
    assert client.get_instance(name=name).name == name, "still there until the operation completes"
    _, op = poll(client, delete)
    assert op.response.type_url == "type.googleapis.com/google.protobuf.Empty"
    assert sim.instances() == {}
    for call in (client.get_instance, client.stop_instance, client.start_instance, client.delete_instance):
        with pytest.raises(gexc.NotFound):
            call(request={"name": name})
    assert [sim.count(k) for k in ("stop", "start", "reset", "delete")] == [2, 2, 1, 3]


def test_a_failed_stop_leaves_the_instance_as_it_was(sim, client) -> None:
    name = sim.add_instance(ZONE, "nb-stuck")
    sim.fail_next_operation("stop", 13, "internal error")
    _, op = poll(client, client.stop_instance(request={"name": name}).operation.name)
    assert op.error.code == 13
    assert client.get_instance(name=name).state == nb.State.ACTIVE


def test_integer_enums_in_the_request_are_stored_and_answered_as_names(sim, client) -> None:
    setup = nb.GceSetup(
        machine_type="g2-standard-4",
        accelerator_configs=[nb.AcceleratorConfig(type_=13, core_count=1)],
        boot_disk=nb.BootDisk(disk_type=3, disk_size_gb=150),
        data_disks=[nb.DataDisk(disk_type=2, disk_size_gb=100)],
        metadata={"idle-timeout-seconds": "10800"},
    )
    poll(client, create(client, "nb-enum", "req-enum", gce_setup=setup, instance_owners=["alice@example.com"]))
    sent = sim.calls()[0].body
    assert sent["gceSetup"]["acceleratorConfigs"] == [{"type": 13, "coreCount": "1"}], "the client sends integers"

    stored = sim.instances()[f"{PARENT}/instances/nb-enum"]
    assert stored["gceSetup"]["acceleratorConfigs"] == [{"type": "NVIDIA_L4", "coreCount": "1"}]
    assert stored["gceSetup"]["bootDisk"] == {"diskType": "PD_BALANCED", "diskSizeGb": "150"}
    assert stored["gceSetup"]["dataDisks"][0]["diskType"] == "PD_SSD"
    assert stored["state"] == "ACTIVE" and stored["instanceOwners"] == ["alice@example.com"]

    answered = client.get_instance(name=f"{PARENT}/instances/nb-enum")
    accelerator = answered.gce_setup.accelerator_configs[0]
    assert accelerator.type_ == nb.AcceleratorConfig.AcceleratorType.NVIDIA_L4 and accelerator.core_count == 1
    assert answered.gce_setup.boot_disk.disk_type == nb.DiskType.PD_BALANCED
    assert answered.gce_setup.metadata["idle-timeout-seconds"] == "10800"
    assert list(answered.instance_owners) == [], "instanceOwners is input only"


def test_update_replaces_labels(sim, client) -> None:
    name = sim.add_instance(ZONE, "nb-labels", {"labels": {"owner": "alice", "old": "x"}})
    update = client.update_instance(
        instance=nb.Instance(name=name, labels={"owner": "bob"}), update_mask={"paths": ["labels"]}
    )
    seen, op = poll(client, update.operation.name)
    assert seen == [False, False, True] and not op.HasField("error")
    assert client.get_instance(name=name).labels == {"owner": "bob"}
    [call] = [c for c in sim.calls() if c.kind == "update"]
    assert call.verb == "PATCH" and call.query["updateMask"] == "labels"


def test_changes_behind_the_bots_back_are_seen(sim, client) -> None:
    name = sim.add_instance(ZONE, "nb-console", {"gceSetup": {"machineType": "e2-standard-4"}})
    assert client.get_instance(name=name).state == nb.State.ACTIVE
    sim.set_state(name, "STOPPED")
    assert client.get_instance(name=name).state == nb.State.STOPPED
    sim.remove(name)
    with pytest.raises(gexc.NotFound):
        client.get_instance(name=name)
    with pytest.raises(KeyError):
        sim.set_state(name, "ACTIVE")


def test_an_unknown_operation_is_not_found(client) -> None:
    with pytest.raises(gexc.NotFound):
        client.get_operation({"name": f"{PARENT}/operations/operation-missing"})


def test_settle_finishes_pending_operations(sim, client) -> None:
    create(client, "nb-settle", "req-settle")
    sim.settle()
    assert sim.instances()[f"{PARENT}/instances/nb-settle"]["state"] == "ACTIVE"
