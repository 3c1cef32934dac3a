"""A local stand-in for the Workbench v2 REST API (notebooks.googleapis.com/v2).

The real client works against it unchanged:

    NotebookServiceClient(credentials=AnonymousCredentials(), transport="rest",
                          client_options={"api_endpoint": f"http://{sim.host}"})

Covered: create, get, list (paging, `labels.KEY=VALUE` filters), delete, start, stop, reset,
update (PATCH with updateMask) and the operations mixin's get_operation. Standard library only.
`stock_out(zone, available)` makes creations in a zone fail as a GPU stockout does (`stockout_error`).

Wire facts this relies on (checked against google-cloud-notebooks 1.18 / google-api-core 2.x):
- Data calls carry `$alt=json;enum-encoding=int`: request enums are integers, int64 are strings.
  Answers use enum NAMES; the client parses both. get_operation carries no `$alt` and, unlike the
  other calls, parses WITHOUT ignore_unknown_fields: an unknown key or enum name anywhere in an
  operation (even inside the packed Instance) makes the client raise, so operations carry only
  fields the Instance message knows.
- The client picks the exception class from the HTTP status alone; the JSON `status` is ignored.
  400 BadRequest, 403 Forbidden, 404 NotFound, 409 Conflict (not AlreadyExists), 429 TooManyRequests,
  500 InternalServerError, 503 ServiceUnavailable, 504 GatewayTimeout. Of these only NotFound,
  InternalServerError and ServiceUnavailable have a `grpc_status_code`; the others have None.
  `exc.message` reads "VERB URL: message".
- `instanceOwners` is input only: it is kept in the stored JSON but left out of answers.
- An update (PATCH) applies at once; its operation only reports completion. Under the
  `gce_setup.metadata` mask the keys sent are merged into the instance's metadata (MERGED_MAPS).
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


def _words(text: str) -> list[str]:
    return text.split()


STATUS_NAMES = {  # HTTP status -> canonical name in Google's JSON errors
    int(code): name
    for code, name in (
        pair.split(":")
        for pair in _words(
            "400:INVALID_ARGUMENT 401:UNAUTHENTICATED 403:PERMISSION_DENIED 404:NOT_FOUND 409:ALREADY_EXISTS "
            "412:FAILED_PRECONDITION 429:RESOURCE_EXHAUSTED 500:INTERNAL 501:UNIMPLEMENTED 503:UNAVAILABLE "
            "504:DEADLINE_EXCEEDED"
        )
    )
}
ENUMS = {  # request enum fields (JSON name) -> names by number; "-" marks unused numbers
    "type": _words(  # AcceleratorConfig.type
        "ACCELERATOR_TYPE_UNSPECIFIED - NVIDIA_TESLA_P100 NVIDIA_TESLA_V100 NVIDIA_TESLA_P4 NVIDIA_TESLA_T4 - - "
        "NVIDIA_TESLA_T4_VWS NVIDIA_TESLA_P100_VWS NVIDIA_TESLA_P4_VWS NVIDIA_TESLA_A100 NVIDIA_A100_80GB NVIDIA_L4"
    ),
    "diskType": _words("DISK_TYPE_UNSPECIFIED PD_STANDARD PD_SSD PD_BALANCED PD_EXTREME"),
    "diskEncryption": _words("DISK_ENCRYPTION_UNSPECIFIED GMEK CMEK"),
    "nicType": _words("NIC_TYPE_UNSPECIFIED VIRTIO_NET GVNIC"),
}
INSTANCE_ID = re.compile(r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$")
ROUTE = re.compile(r"^/v2/(projects/[^/]+/locations/[^/]+)/(instances|operations)(?:/([^/:]+))?(?::(\w+))?$")
INSTANCE_TYPE = "type.googleapis.com/google.cloud.notebooks.v2.Instance"
METADATA_TYPE = "type.googleapis.com/google.cloud.notebooks.v2.OperationMetadata"
EMPTY_TYPE = "type.googleapis.com/google.protobuf.Empty"
INPUT_ONLY = ("instanceOwners",)  # kept in the stored JSON, left out of answers
OUTPUT_ONLY = ("name", "id", "state", "proxyUri", "creator", "healthState", "healthInfo", "createTime", "updateTime")
# Masks whose map Workbench merges key by key rather than replaces (what `gcloud workbench instances update
# --metadata=idle-timeout-seconds=N` relies on; the API reference does not spell it out).
MERGED_MAPS = ("gceSetup.metadata",)  # as the REST client sends masks: camelCase
RUNNING = {"start": "STARTING", "stop": "STOPPING", "reset": "STARTING"}  # instance state while running
FINAL = {"create": "ACTIVE", "start": "ACTIVE", "stop": "STOPPED", "reset": "ACTIVE"}  # ... and when done


@dataclass(frozen=True)
class Call:
    verb: str
    kind: str  # create, get, list, delete, start, stop, reset, update, get_operation (or "unknown")
    path: str
    query: dict[str, str]
    body: dict[str, Any] | None


class ApiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


@dataclass
class _Operation:
    name: str
    kind: str
    target: str
    created: str
    polls_left: int
    error: dict[str, Any] | None = None  # set up front by fail_next_operation, shown once done
    done: bool = False
    ended: str = ""
    before: str = ""  # the instance's state when the operation began (restored if it fails)
    response: dict[str, Any] = field(default_factory=dict)


def enum_names(value: Any, key: str = "") -> Any:
    """Integers in enum fields become names, recursively (request bodies use enum-encoding=int)."""
    if isinstance(value, dict):
        return {k: enum_names(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [enum_names(v, key) for v in value]
    names = ENUMS.get(key)
    if names and isinstance(value, int) and 0 <= value < len(names) and names[value] != "-":
        return names[value]
    return value


def camel(path: str) -> list[str]:
    return [re.sub(r"_([a-z])", lambda m: m.group(1).upper(), part) for part in path.split(".")]


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # socketserver's 5 drops a burst of connections (fifty launches) for a second


class WorkbenchSimulator:
    def __init__(self, *, op_polls_until_done: int = 2, clock: Callable[[], datetime] | None = None) -> None:
        self.op_polls_until_done = op_polls_until_done
        self.clock = clock or (lambda: datetime.now(UTC))
        self.host = ""
        self._lock = threading.RLock()
        self._instances: dict[str, dict[str, Any]] = {}
        self._ops: dict[str, _Operation] = {}
        self._request_ids: dict[tuple[str, str], str] = {}  # (kind, requestId) -> operation name
        self._calls: list[Call] = []
        self._fail_http: dict[str, list[tuple[int, str]]] = {}
        self._fail_ops: dict[str, list[dict[str, Any]]] = {}
        self._stockouts: dict[str, tuple[str, ...]] = {}  # zone -> the zones the error says have capacity
        self._server: ThreadingHTTPServer | None = None

    # --- lifecycle ---------------------------------------------------------------------------------
    def start(self, port: int = 0) -> str:
        simulator = self

        class Handler(_Handler):
            sim = simulator

        self._server = _Server(("127.0.0.1", port), Handler)
        threading.Thread(target=self._server.serve_forever, args=(0.05,), name="workbench-sim", daemon=True).start()
        self.host = f"127.0.0.1:{self._server.server_port}"
        return self.host

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> WorkbenchSimulator:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- inspection --------------------------------------------------------------------------------
    def instances(self) -> dict[str, dict[str, Any]]:
        with self._lock:
            return json.loads(json.dumps(self._instances))

    def calls(self) -> list[Call]:
        with self._lock:
            return list(self._calls)

    def count(self, kind: str) -> int:
        with self._lock:
            return sum(1 for c in self._calls if c.kind == kind)

    # --- error injection ---------------------------------------------------------------------------
    def fail_next(self, kind: str, status: int, message: str, *, times: int = 1) -> None:
        with self._lock:
            self._fail_http.setdefault(kind, []).extend([(status, message)] * times)

    def recover(self, kind: str) -> None:
        """`kind` calls answer normally again: the failures still queued for them are dropped."""
        with self._lock:
            self._fail_http.pop(kind, None)

    def fail_next_operation(self, kind: str, code: int, message: str) -> None:
        with self._lock:
            self._fail_ops.setdefault(kind, []).append({"code": code, "message": message})

    def stock_out(self, zone: str, available: tuple[str, ...] | list[str] = ()) -> None:
        """Every creation in `zone` fails, once its operation is done, with Compute Engine's stockout
        (ZONE_RESOURCE_POOL_EXHAUSTED_WITH_DETAILS) naming `available` as the zones that have capacity."""
        with self._lock:
            self._stockouts[zone] = tuple(available)

    def restock(self, zone: str) -> None:
        with self._lock:
            self._stockouts.pop(zone, None)

    # --- changes behind the bot's back -------------------------------------------------------------
    def set_state(self, name: str, state: str) -> None:
        with self._lock:
            self._set_state(self._instances[name], state)  # KeyError for an unknown name

    def remove(self, name: str) -> None:
        with self._lock:
            del self._instances[name]  # KeyError for an unknown name

    def add_instance(
        self, zone: str, instance_id: str, body: dict[str, Any] | None = None, project: str = "test-project"
    ) -> str:
        with self._lock:
            name = f"projects/{project}/locations/{zone}/instances/{instance_id}"
            instance = self._new_instance(name, enum_names(body or {}))
            self._activate(instance)
            self._set_state(instance, (body or {}).get("state", "ACTIVE"))  # e.g. body {"state": "STOPPED"}
            self._instances[name] = instance
            return name

    def restore(self, instances: dict[str, dict[str, Any]]) -> None:
        """Put back instances as `instances()` gave them (the sandbox keeps them across runs)."""
        with self._lock:
            self._instances.update(json.loads(json.dumps(instances)))

    def settle(self) -> None:
        """Finish every pending operation now, as if enough time had passed."""
        with self._lock:
            for op in self._ops.values():
                if not op.done:
                    self._finish(op)

    # --- request handling --------------------------------------------------------------------------
    def handle(self, verb: str, raw_path: str, body: dict[str, Any] | None) -> tuple[int, dict[str, Any]]:
        url = urlsplit(raw_path)
        query = {k: v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        match = ROUTE.match(url.path)
        parent, collection, rid, action = match.groups() if match else ("", "", None, None)
        kind = self._kind(verb, collection, rid, action) if match else "unknown"
        with self._lock:
            self._calls.append(Call(verb, kind, url.path, query, body))
            try:
                if kind == "unknown":
                    raise ApiError(404, f"No route for {verb} {url.path}")
                if self._fail_http.get(kind):
                    raise ApiError(*self._fail_http[kind].pop(0))
                if kind == "get_operation":
                    return 200, self._poll(f"{parent}/operations/{rid}")
                if kind == "list":
                    return 200, self._list(parent, query)
                if kind == "create":
                    return 200, self._create(parent, query, body or {})
                name = f"{parent}/instances/{rid}"
                if kind == "get":
                    self._looked_at(name)
                    return 200, self._public(self._get(name))
                return 200, self._act(kind, name, query, body or {})
            except ApiError as e:
                status = STATUS_NAMES.get(e.status, "UNKNOWN")
                return e.status, {"error": {"code": e.status, "message": e.message, "status": status}}

    @staticmethod
    def _kind(verb: str, collection: str, rid: str | None, action: str | None) -> str:
        if collection == "operations":
            return "get_operation" if verb == "GET" and rid and not action else "unknown"
        if rid is None:
            return {"GET": "list", "POST": "create"}.get(verb, "unknown")
        if action:
            return action if verb == "POST" and action in ("start", "stop", "reset") else "unknown"
        return {"GET": "get", "DELETE": "delete", "PATCH": "update"}.get(verb, "unknown")

    def _create(self, parent: str, query: dict[str, str], body: dict[str, Any]) -> dict[str, Any]:
        request_id, instance_id = query.get("requestId", ""), query.get("instanceId", "")
        if request_id and ("create", request_id) in self._request_ids:
            return self._op_json(self._ops[self._request_ids["create", request_id]])
        if not INSTANCE_ID.match(instance_id):
            raise ApiError(400, f"Invalid instance_id '{instance_id}': must match {INSTANCE_ID.pattern}")
        setup = body.get("gceSetup", {})
        if len(setup.get("acceleratorConfigs", [])) > 1 or len(setup.get("dataDisks", [])) > 1:
            raise ApiError(400, "At most one accelerator config and one data disk are supported")
        script = setup.get("metadata", {}).get("post-startup-script")
        if script and not script.startswith("gs://"):
            raise ApiError(400, "post-startup-script must be a Cloud Storage URI (gs://...)")
        name = f"{parent}/instances/{instance_id}"
        if name in self._instances:
            raise ApiError(409, f"Resource '{name}' already exists")
        self._instances[name] = self._new_instance(name, enum_names(body))
        op = self._start_op("create", name, request_id)
        zone = parent.rsplit("/", 1)[-1]
        if zone in self._stockouts and op.error is None:
            op.error = stockout_error(parent, enum_names(setup), self._stockouts[zone])
        return self._op_json(op)

    def _act(self, kind: str, name: str, query: dict[str, str], body: dict[str, Any]) -> dict[str, Any]:
        request_id = query.get("requestId", "")
        if request_id and (kind, request_id) in self._request_ids:
            return self._op_json(self._ops[self._request_ids[kind, request_id]])
        instance = self._get(name)
        if kind == "update":
            paths = [p for p in query.get("updateMask", "").split(",") if p]
            if not paths:
                raise ApiError(400, "update_mask is required")
            body = enum_names(body)
            for path in paths:
                *head, last = camel(path)
                src: Any = body
                dst = instance
                for part in head:
                    src, dst = src.get(part) if isinstance(src, dict) else None, dst.setdefault(part, {})
                if isinstance(src, dict) and last in src and ".".join(camel(path)) in MERGED_MAPS:
                    dst[last] = {**dst.get(last, {}), **src[last]}
                elif isinstance(src, dict) and last in src:
                    dst[last] = src[last]
                else:
                    dst.pop(last, None)
            instance["updateTime"] = self._now()
        return self._op_json(self._start_op(kind, name, request_id))

    def _list(self, parent: str, query: dict[str, str]) -> dict[str, Any]:
        self._looked_at(f"{parent}/instances/")
        found = [i for n, i in sorted(self._instances.items()) if n.startswith(f"{parent}/instances/")]
        label = re.fullmatch(r'\s*labels\.([\w-]+)\s*[=:]\s*"?([^"\s]*)"?\s*', query.get("filter", ""))
        if label:
            found = [i for i in found if i.get("labels", {}).get(label[1]) == label[2]]
        try:
            start = int(base64.urlsafe_b64decode(query["pageToken"]).decode()) if query.get("pageToken") else 0
            size = int(query.get("pageSize") or 0) or 50
        except ValueError:
            raise ApiError(400, "Invalid page token or page size") from None
        answer: dict[str, Any] = {"instances": [self._public(i) for i in found[start : start + size]]}
        if start + size < len(found):
            answer["nextPageToken"] = base64.urlsafe_b64encode(str(start + size).encode()).decode()
        return {k: v for k, v in answer.items() if v}

    # --- operations --------------------------------------------------------------------------------
    def _start_op(self, kind: str, target: str, request_id: str) -> _Operation:
        name = f"{target.split('/instances/')[0]}/operations/operation-{secrets.token_hex(10)}"
        instance = self._instances[target]
        op = _Operation(name, kind, target, self._now(), self.op_polls_until_done, before=instance["state"])
        if self._fail_ops.get(kind):
            op.error = self._fail_ops[kind].pop(0)
        if kind in RUNNING:
            self._set_state(instance, RUNNING[kind])
        self._ops[op.name] = op
        if request_id:
            self._request_ids[kind, request_id] = op.name
        return op

    def _poll(self, name: str) -> dict[str, Any]:
        op = self._ops.get(name)
        if op is None:
            raise ApiError(404, f"Operation '{name}' not found")
        self._progress(op)
        return self._op_json(op)

    def _progress(self, op: _Operation) -> None:
        """One look at a running operation moves it on: after op_polls_until_done looks it is done."""
        if op.done:
            return
        if op.polls_left > 0:
            op.polls_left -= 1
        else:
            self._finish(op)

    def _looked_at(self, parent: str) -> None:
        """A get or list of instances is a look at the operations running on them (so a client that
        follows instances instead of polling operations sees them finish, as time would)."""
        for op in [op for op in self._ops.values() if not op.done and op.target.startswith(parent)]:
            self._progress(op)

    def _finish(self, op: _Operation) -> None:
        op.done, op.ended = True, self._now()
        instance = self._instances.get(op.target)
        if op.error is None and instance is None and op.kind != "delete":
            op.error = {"code": 5, "message": f"Resource '{op.target}' was not found"}
        if op.error is not None:  # a failed create leaves nothing; others leave the instance as it was
            if instance is not None and op.kind == "create":
                del self._instances[op.target]
            elif instance is not None and op.kind in RUNNING:
                self._set_state(instance, op.before)
        elif op.kind == "delete":
            self._instances.pop(op.target, None)
            op.response = {"@type": EMPTY_TYPE}
        else:
            assert instance is not None
            if op.kind == "create":
                self._activate(instance)
            self._set_state(instance, FINAL.get(op.kind, instance["state"]))
            op.response = {"@type": INSTANCE_TYPE, **self._public(instance)}

    def _op_json(self, op: _Operation) -> dict[str, Any]:
        metadata = {"@type": METADATA_TYPE, "createTime": op.created, "target": op.target, "verb": op.kind}
        answer: dict[str, Any] = {"name": op.name, "metadata": metadata, "done": op.done}
        if op.done:
            metadata["endTime"] = op.ended
            answer.update({"error": op.error} if op.error else {"response": op.response})
        return answer

    # --- instances ---------------------------------------------------------------------------------
    def _get(self, name: str) -> dict[str, Any]:
        instance = self._instances.get(name)
        if instance is None:
            raise ApiError(404, f"Resource '{name}' was not found")
        return instance

    def _new_instance(self, name: str, body: dict[str, Any]) -> dict[str, Any]:
        now, project = self._now(), name.split("/")[1]
        instance = {k: v for k, v in body.items() if k not in OUTPUT_ONLY}
        instance.update(name=name, id=str(uuid.uuid4()), state="PROVISIONING", createTime=now, updateTime=now)
        instance["creator"] = f"notebook-bot@{project}.iam.gserviceaccount.com"
        return instance

    @staticmethod
    def _activate(instance: dict[str, Any]) -> None:
        region = instance["name"].split("/")[3].rsplit("-", 1)[0]
        instance.setdefault("proxyUri", f"{secrets.token_hex(8)}-dot-{region}.notebooks.googleusercontent.com")

    def _set_state(self, instance: dict[str, Any], state: str) -> None:
        instance["state"], instance["updateTime"] = state, self._now()
        if state == "ACTIVE":
            instance["healthState"] = "HEALTHY"
        else:
            instance.pop("healthState", None)

    @staticmethod
    def _public(instance: dict[str, Any]) -> dict[str, Any]:
        return json.loads(json.dumps({k: v for k, v in instance.items() if k not in INPUT_ONLY}))

    def _now(self) -> str:
        return self.clock().astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def stockout_error(parent: str, setup: dict[str, Any], available: tuple[str, ...]) -> dict[str, Any]:
    """A create operation's error when the zone is out of the machine or GPU, as google.rpc.Status JSON.

    Compute Engine's own error (seen in gcloud's output, 2026) has the code
    ZONE_RESOURCE_POOL_EXHAUSTED_WITH_DETAILS, the message "The zone '...' does not have enough
    resources available to fulfill the request.", an ErrorInfo (reason `resource_availability`,
    metadata `zone`, `vmType`, `attachment` and `zonesAvailable`, comma-separated), a LocalizedMessage
    naming the zones with capacity, and a Help link. That Workbench relays it this way, as the status
    code 8 with the Compute code in front of the message and these details, is assumed."""
    zone = parent.rsplit("/", 1)[-1]
    machine = str(setup.get("machineType") or "").rsplit("/", 1)[-1]
    accelerators = setup.get("acceleratorConfigs") or []
    attachment = ""
    what = f"A {machine} VM instance"
    if accelerators:
        kind = str(accelerators[0].get("type", "")).lower().replace("_", "-")
        count = int(accelerators[0].get("coreCount") or 1)
        attachment = f"{kind}:{count}"
        what += f" with {count} {kind} accelerator(s)"
    project = parent.split("/")[1]
    metadata = {"zone": zone, "vmType": machine, **({"attachment": attachment} if attachment else {})}
    localized = f"{what} is currently unavailable in the {zone} zone."
    if available:
        metadata["zonesAvailable"] = ",".join(available)
        localized += (
            f" Consider trying your request in the {', '.join(available)} zone(s), which currently has capacity "
            "to accommodate your request."
        )
    localized += (
        " Alternatively, you can try your request again with a different VM hardware configuration or at a "
        "later time. For more information, see the troubleshooting documentation."
    )
    return {
        "code": 8,
        "message": f"ZONE_RESOURCE_POOL_EXHAUSTED_WITH_DETAILS: The zone 'projects/{project}/zones/{zone}' does not "
        "have enough resources available to fulfill the request.  '(resource type:compute)'.",
        "details": [
            {
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": "resource_availability",
                "domain": "compute.googleapis.com",
                "metadata": metadata,
            },
            {"@type": "type.googleapis.com/google.rpc.LocalizedMessage", "locale": "en-US", "message": localized},
            {
                "@type": "type.googleapis.com/google.rpc.Help",
                "links": [
                    {
                        "description": "Troubleshooting documentation",
                        "url": "https://cloud.google.com/compute/docs/resource-error",
                    }
                ],
            },
        ],
    }


class _Handler(BaseHTTPRequestHandler):
    sim: WorkbenchSimulator
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in two writes; avoid a 40 ms delayed-ACK stall

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw.strip() else None
        except ValueError:
            status, answer = 400, {"error": {"code": 400, "message": "Invalid JSON", "status": "INVALID_ARGUMENT"}}
        else:
            status, answer = self.sim.handle(self.command, self.path, body)
        data = json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=UTF-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PATCH = do_DELETE = _serve

    def log_message(self, format: str, *args: Any) -> None:
        pass


def main(argv: list[str] | None = None) -> None:
    import argparse

    parser = argparse.ArgumentParser(description="Run the simulated Workbench v2 API in the foreground.")
    parser.add_argument("--port", type=int, default=8089)
    parser.add_argument("--polls", type=int, default=2, help="looks (polls, gets, lists) before an operation is done")
    args = parser.parse_args(argv)
    sim = WorkbenchSimulator(op_polls_until_done=args.polls)
    host = sim.start(args.port)
    print(f"Workbench v2 simulator on http://{host} — set NOTEBOOKS_EMULATOR_HOST={host}. Ctrl-C stops it.", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        sim.stop()


if __name__ == "__main__":
    main()
