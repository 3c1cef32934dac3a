"""Vertex AI Workbench instances (notebooks v2) behind one small interface.

Calls return operation names instead of waiting: the reconciler polls them later, so no
request thread ever blocks on a long-running operation. Google's errors are translated into
WorkbenchError, whose message says in plain words what happened and what to try.
The client is created on first use: importing and building it costs about a second, which a
cold start cannot spend before acknowledging Slack.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from bot.adapters.lazy import Lazy

if TYPE_CHECKING:
    from bot.domain.catalog import Catalog
    from bot.domain.spec import NotebookSpec

RETRIABLE_CODES = {4, 10, 13, 14}  # DEADLINE_EXCEEDED, ABORTED, INTERNAL, UNAVAILABLE
ZONE_IN_TEXT = re.compile(r"\b([a-z]+-[a-z]+\d+-[a-z])\b")
EXHAUSTED_ZONE = re.compile(r"zones/([a-z]+-[a-z]+\d+-[a-z])\b")  # "The zone 'projects/P/zones/Z' does not have…"
CAPACITY_IN = re.compile(r"trying your request in the ([a-z0-9, -]+?) zone\(s\)")  # Compute's LocalizedMessage
HTTP_PREFIX = re.compile(r"^[A-Z]+ https?://\S+: ")  # the REST client prefixes messages with "VERB URL: "
HTTP_TO_CODE = {400: 3, 401: 16, 403: 7, 404: 5, 409: 6, 429: 14, 500: 13, 503: 14, 504: 4}  # 429: retry later


@dataclass
class WorkbenchError(Exception):
    """A failed Workbench call or operation, explained for people."""

    kind: str  # quota, stockout, not_found, permission, exists, invalid, unavailable, unknown
    message: str
    retriable: bool = False
    zones: list[str] = field(default_factory=list)  # a stockout's zones that Google says have capacity

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True)
class InstanceInfo:
    name: str  # full resource name
    instance_id: str
    zone: str
    state: str  # Instance State name: ACTIVE, STOPPED, ...
    proxy_uri: str | None
    labels: dict[str, str]
    machine_type: str = ""
    creator: str = ""
    accelerator: str | None = None  # AcceleratorType name of attached GPUs (N1), e.g. NVIDIA_TESLA_T4
    accelerator_count: int = 0

    @property
    def url(self) -> str | None:
        if not self.proxy_uri:
            return None
        return self.proxy_uri if "://" in self.proxy_uri else f"https://{self.proxy_uri}"


@dataclass(frozen=True)
class OperationStatus:
    done: bool
    error: WorkbenchError | None = None


class Workbench:
    def __init__(self, project: str, *, emulator_host: str | None = None, service_account: str | None = None) -> None:
        self.project = project
        self.service_account = service_account  # notebooks run as this account (else Compute's default)
        self._emulator_host = emulator_host if emulator_host is not None else os.environ.get("NOTEBOOKS_EMULATOR_HOST")
        self._client: Lazy[Any] = Lazy(self._build)

    def _build(self) -> Any:
        from google.cloud import notebooks_v2

        if not self._emulator_host:
            return notebooks_v2.NotebookServiceClient(transport="rest")
        from google.auth.credentials import AnonymousCredentials

        return notebooks_v2.NotebookServiceClient(
            credentials=AnonymousCredentials(),
            transport="rest",
            client_options={"api_endpoint": f"http://{self._emulator_host}"},
        )

    @property
    def client(self) -> Any:
        return self._client.get()

    def parent(self, zone: str) -> str:
        return f"projects/{self.project}/locations/{zone}"

    def instance_name(self, zone: str, instance_id: str) -> str:
        return f"{self.parent(zone)}/instances/{instance_id}"

    # --- calls ----------------------------------------------------------------------------------
    def create(
        self,
        spec: NotebookSpec,
        catalog: Catalog,
        *,
        instance_id: str,
        owner_email: str,
        labels: dict[str, str],
        request_id: str,
        metadata: dict[str, str] | None = None,
    ) -> str:
        """Ask for the instance; returns the operation name. Safe to repeat with the same request_id."""
        instance = build_instance(
            spec, catalog, self.project, owner_email, labels, metadata or {}, service_account=self.service_account
        )
        request = {
            "parent": self.parent(spec.zone),
            "instance_id": instance_id,
            "instance": instance,
            "request_id": request_id,
        }
        with translated():
            return self.client.create_instance(request=request).operation.name

    def operation(self, name: str) -> OperationStatus:
        with translated():
            op = self.client.get_operation({"name": name})
        if not op.done:
            return OperationStatus(done=False)
        if op.HasField("error") and op.error.code:
            return OperationStatus(done=True, error=explain(op.error.code, op.error.message, op.error.details))
        return OperationStatus(done=True)

    def get(self, zone: str, instance_id: str) -> InstanceInfo | None:
        from google.api_core.exceptions import NotFound

        try:
            with translated(passthrough=(NotFound,)):
                return to_info(self.client.get_instance(name=self.instance_name(zone, instance_id)))
        except NotFound:
            return None

    def list(self, zone: str, *, label: tuple[str, str] | None = None) -> list[InstanceInfo]:
        request: dict[str, Any] = {"parent": self.parent(zone), "page_size": 500}
        if label:
            request["filter"] = f"labels.{label[0]}={label[1]}"
        with translated():
            return [to_info(i) for i in self.client.list_instances(request=request)]

    def stop(self, zone: str, instance_id: str) -> str:
        with translated():
            return self.client.stop_instance(request={"name": self.instance_name(zone, instance_id)}).operation.name

    def start(self, zone: str, instance_id: str) -> str:
        with translated():
            return self.client.start_instance(request={"name": self.instance_name(zone, instance_id)}).operation.name

    def delete(self, zone: str, instance_id: str, request_id: str) -> str:
        request = {"name": self.instance_name(zone, instance_id), "request_id": request_id}
        with translated():
            return self.client.delete_instance(request=request).operation.name

    def set_labels(self, zone: str, instance_id: str, labels: dict[str, str]) -> str:
        from google.cloud import notebooks_v2

        instance = notebooks_v2.Instance(name=self.instance_name(zone, instance_id), labels=labels)
        with translated():
            op = self.client.update_instance(instance=instance, update_mask={"paths": ["labels"]})
            return op.operation.name

    def set_idle_timeout(self, zone: str, instance_id: str, seconds: int) -> str:
        """Change the instance's idle shutdown (`idle-timeout-seconds`); returns the operation name.

        Sends only that key under the `gce_setup.metadata` mask, as `gcloud workbench instances update
        --metadata=KEY=VALUE` does: Workbench merges it into the instance's metadata (the other keys,
        such as post-startup-script, stay; Google documents this command for changing the idle timeout,
        the merge itself is not spelled out in the API reference). Safe to repeat."""
        from google.cloud import notebooks_v2

        instance = notebooks_v2.Instance(
            name=self.instance_name(zone, instance_id),
            gce_setup=notebooks_v2.GceSetup(metadata={"idle-timeout-seconds": str(seconds)}),
        )
        with translated():
            op = self.client.update_instance(instance=instance, update_mask={"paths": ["gce_setup.metadata"]})
            return op.operation.name


# --- building and reading instances ---------------------------------------------------------------
def build_instance(
    spec: NotebookSpec,
    catalog: Catalog,
    project: str,
    owner_email: str,
    labels: dict[str, str],
    metadata: dict[str, str],
    *,
    service_account: str | None = None,
) -> Any:
    from google.cloud import notebooks_v2 as nb

    env = catalog.environments[spec.environment]
    disk_type = nb.DiskType[catalog.disk_types[spec.disk_type].api_name]
    setup: dict[str, Any] = {
        "machine_type": spec.machine,
        "boot_disk": nb.BootDisk(disk_size_gb=spec.boot_disk_gb, disk_type=disk_type),
        "data_disks": [nb.DataDisk(disk_size_gb=spec.disk_gb, disk_type=disk_type)],
        "metadata": {"idle-timeout-seconds": str(spec.idle_seconds), **metadata},
    }
    if env.vm_image is not None:
        setup["vm_image"] = nb.VmImage(project=env.vm_image.project, family=env.vm_image.family, name=env.vm_image.name)
    else:
        assert env.container is not None
        repository = env.container.repository.replace("{project}", project)
        setup["container_image"] = nb.ContainerImage(repository=repository, tag=env.container.tag)
    if service_account:
        setup["service_accounts"] = [nb.ServiceAccount(email=service_account)]
    if spec.gpu is not None:
        accelerator = catalog.gpus[spec.gpu].accelerator
        built_in = catalog.machines[spec.machine].gpu is not None
        if not built_in:  # G2/A2 machine types carry their GPUs; N1 gets them attached
            setup["accelerator_configs"] = [
                nb.AcceleratorConfig(type_=nb.AcceleratorConfig.AcceleratorType[accelerator], core_count=spec.gpu_count)
            ]
        setup["gpu_driver_config"] = nb.GPUDriverConfig(enable_gpu_driver=True)
    return nb.Instance(gce_setup=nb.GceSetup(**setup), instance_owners=[owner_email], labels=labels)


def to_info(instance: Any) -> InstanceInfo:
    from google.cloud import notebooks_v2 as nb

    parts = instance.name.split("/")
    attached = list(instance.gce_setup.accelerator_configs)
    return InstanceInfo(
        name=instance.name,
        instance_id=parts[-1],
        zone=parts[3] if len(parts) > 3 else "",
        state=nb.State(instance.state).name,
        proxy_uri=instance.proxy_uri or None,
        labels=dict(instance.labels),
        machine_type=instance.gce_setup.machine_type.rsplit("/", 1)[-1],
        creator=instance.creator,
        accelerator=nb.AcceleratorConfig.AcceleratorType(attached[0].type_).name if attached else None,
        accelerator_count=int(attached[0].core_count) if attached else 0,
    )


def label_value(text: str) -> str:
    """Label values: lowercase letters, digits, '-' and '_', at most 63 characters."""
    return re.sub(r"[^a-z0-9_-]", "-", text.lower())[:63]


# --- errors -----------------------------------------------------------------------------------------
def explain(code: int, message: str, details: Iterable[Any] = ()) -> WorkbenchError:
    """Turn a Google error code, text and details into a WorkbenchError a person can act on."""
    text = message or ""
    lowered = text.lower()
    exhausted = EXHAUSTED_ZONE.findall(text)
    zones = sorted(set(ZONE_IN_TEXT.findall(text)) - set(exhausted))
    if "quota" in lowered:
        return WorkbenchError(
            "quota",
            f"The project is out of quota: {text.strip()} Ask an admin to request more quota "
            "(IAM & Admin → Quotas), or choose a smaller or different GPU.",
        )
    if "resource_pool_exhausted" in lowered or "does not have enough resources" in lowered or code == 8:
        available = [z for z in zones_with_capacity(text, details) if z not in exhausted]
        where = f" in `{exhausted[0]}`" if exhausted else " in the zone"
        if available:
            named = f" Google says these zones have capacity now: {', '.join(available)}."
        else:
            named = f" Zones named in the error: {', '.join(zones)}." if zones else ""
        return WorkbenchError(
            "stockout",
            f"Google Cloud has no capacity for this machine or GPU{where} right now."
            f"{named} Try again later, another zone (`zone=...`), or another GPU.",
            zones=available,
        )
    if code == 5 or "not found" in lowered or "was not found" in lowered:
        return WorkbenchError(
            "not_found",
            f"Something the notebook needs does not exist: {text.strip()} If it names an image, the "
            "environment's image is missing (an admin must build or fix it); if it names an "
            "accelerator type, that GPU is not offered in this zone.",
        )
    if code == 7 or code == 16:
        return WorkbenchError(
            "permission",
            f"The bot's service account is not allowed to do this: {text.strip()} An admin must grant "
            "it roles/notebooks.admin and roles/iam.serviceAccountUser (see docs/deploy.md).",
        )
    if code == 6:
        return WorkbenchError("exists", f"An instance with that name already exists: {text.strip()}")
    if code == 3 or code == 9:
        return WorkbenchError("invalid", f"Workbench refused the request: {text.strip()}")
    if code in RETRIABLE_CODES or code == 429:
        return WorkbenchError("unavailable", f"Workbench is unavailable right now ({text.strip()}).", retriable=True)
    return WorkbenchError("unknown", f"Workbench said: {text.strip() or f'error {code}'}")


def zones_with_capacity(text: str, details: Iterable[Any] = ()) -> list[str]:
    """The zones a stockout error says have capacity, in its order: ErrorInfo's `zonesAvailable`
    (reason `resource_availability`), else the LocalizedMessage's or the message's "Consider trying
    your request in the A, B zone(s)". Details may be packed (Any, as in an operation) or not."""
    from google.rpc import error_details_pb2

    hints = (error_details_pb2.ErrorInfo, error_details_pb2.LocalizedMessage)
    sentences = [text]
    for detail in details:
        if hasattr(detail, "Unpack"):  # a packed Any: unpack the two kinds that can name zones
            kind = next((k for k in hints if detail.Is(k.DESCRIPTOR)), None)
            if kind is None:
                continue
            unpacked = kind()
            detail.Unpack(unpacked)
            detail = unpacked
        if isinstance(detail, error_details_pb2.ErrorInfo) and detail.reason == "resource_availability":
            listed = detail.metadata.get("zonesAvailable", "")
            zones = [z.strip() for z in listed.split(",") if ZONE_IN_TEXT.fullmatch(z.strip())]
            if zones:
                return zones
        elif isinstance(detail, error_details_pb2.LocalizedMessage):
            sentences.append(detail.message)
    for sentence in sentences:
        match = CAPACITY_IN.search(sentence)
        if match:
            return ZONE_IN_TEXT.findall(match.group(1))
    return []


class translated:
    """Context manager: google.api_core exceptions become WorkbenchError (others pass through)."""

    def __init__(self, passthrough: tuple[type[BaseException], ...] = ()) -> None:
        self.passthrough = passthrough

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> bool:
        from google.api_core import exceptions as g

        if exc is None or isinstance(exc, self.passthrough):
            return False
        if isinstance(exc, g.GoogleAPICallError):
            # Over REST the client sets grpc_status_code only for some statuses; the HTTP one is always there.
            code = exc.grpc_status_code.value[0] if exc.grpc_status_code is not None else HTTP_TO_CODE.get(exc.code, 2)
            error = explain(code, HTTP_PREFIX.sub("", exc.message or str(exc)), getattr(exc, "details", None) or ())
            transient = g.TooManyRequests | g.ServiceUnavailable | g.InternalServerError | g.GatewayTimeout
            if isinstance(exc, transient) and error.kind != "stockout":  # Compute answers a stockout with 503:
                error.retriable = True  # retrying the zone that is out only delays the offer of one that isn't
            raise error from None
        if isinstance(exc, g.RetryError | ConnectionError | OSError):
            raise WorkbenchError("unavailable", f"Workbench could not be reached ({exc}).", retriable=True) from None
        return False
