"""`notebook-bot check` against the Slack simulator, the Firestore and Storage emulators and the
Workbench simulator. IAM questions the emulators can't answer must say "skipped (emulator)".

The Google IAM calls themselves (Resource Manager and IAM testIamPermissions) have no emulator:
their handling is tested against a loopback stub speaking their documented REST shape, with the
stub's URL passed as the seam (never reached in the emulator runs).
"""

from __future__ import annotations

import io
import json
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests

from bot.run.cli import main
from bot.run.doctor import (
    DATASTORE_PERMISSIONS,
    EMULATOR,
    MANIFEST_SCOPES,
    MONITORING_PERMISSIONS,
    NOTEBOOKS_PERMISSIONS,
    Doctor,
    report,
    run_checks,
)
from bot.sim.monitoring_api import MonitoringSimulator
from bot.sim.slack_api import SlackSimulator
from bot.sim.workbench_api import WorkbenchSimulator
from tests.support.emulators import free_port

SIGNING_SECRET = "8f742231b10e8888abcd99aaabbb85a5"
CLEARED = (
    "K_SERVICE",
    "NOTEBOOK_BOT_CONFIG",
    "NOTEBOOK_BOT_STORE",
    "NOTEBOOK_ZONE",
    "SLACK_APP_TOKEN",
    "NOTEBOOK_SERVICE_ACCOUNT",
    "NOTEBOOK_BOT_TASK_AUDIENCE",
    "NOTEBOOK_BOT_TASK_INVOKER",
)


class Simulated:
    """Every service the checks talk to, simulated or emulated, with the environment pointing at them."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, project: str, bucket: str) -> None:
        self.monkeypatch = monkeypatch
        self.project = project
        self.bucket = bucket
        self.slack = SlackSimulator(scopes=MANIFEST_SCOPES)
        self.workbench = WorkbenchSimulator()
        self.monitoring = MonitoringSimulator()
        for name in CLEARED:
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("SLACK_API_URL", self.slack.start())
        monkeypatch.setenv("NOTEBOOKS_EMULATOR_HOST", self.workbench.start())
        monkeypatch.setenv("MONITORING_EMULATOR_HOST", self.monitoring.start())
        monkeypatch.setenv("SLACK_BOT_TOKEN", self.slack.bot_token)
        monkeypatch.setenv("SLACK_SIGNING_SECRET", SIGNING_SECRET)
        monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", project)
        monkeypatch.setenv("NOTEBOOK_SCRIPTS_BUCKET", bucket)

    def use_slack(self, **kwargs: Any) -> SlackSimulator:
        self.slack.stop()
        self.slack = SlackSimulator(**kwargs)
        self.monkeypatch.setenv("SLACK_API_URL", self.slack.start())
        self.monkeypatch.setenv("SLACK_BOT_TOKEN", self.slack.bot_token)
        return self.slack

    def check(self) -> tuple[int, str]:
        out = io.StringIO()
        code = run_checks(out=out)
        return code, out.getvalue()

    def stop(self) -> None:
        self.slack.stop()
        self.workbench.stop()
        self.monitoring.stop()


@pytest.fixture
def gcs(storage_host: str) -> Any:
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    return storage.Client(project="test", credentials=AnonymousCredentials())


@pytest.fixture
def sim(monkeypatch: pytest.MonkeyPatch, firestore_project: str, gcs: Any) -> Iterator[Simulated]:
    bucket = gcs.create_bucket(f"scripts-{uuid.uuid4().hex[:8]}")
    simulated = Simulated(monkeypatch, firestore_project, bucket.name)
    yield simulated
    simulated.stop()


def status_of(output: str, name: str) -> list[str]:
    """The statuses printed for the checks called `name`."""
    found = []
    for line in output.splitlines():
        body = line.strip()
        for status in (EMULATOR, "ok", "FAIL", "warn", "skipped"):
            if body.startswith(status + " ") and body[len(status) :].strip().startswith(name + ":"):
                found.append(status)
                break
    return found


def test_everything_passes_against_the_emulators_and_iam_is_skipped_not_faked(sim: Simulated) -> None:
    code, output = sim.check()
    assert code == 0, output
    assert "FAIL" not in output
    for name in ("configuration", "environment", "Slack token", "Slack scopes", "Firestore", "Workbench"):
        assert status_of(output, name) == ["ok"], (name, output)
    assert status_of(output, "scripts bucket") == ["ok"]
    iam = ("Workbench permissions", "Firestore permissions", "Monitoring permissions", "scripts bucket permissions")
    for name in iam:
        assert status_of(output, name) == [EMULATOR], (name, output)
    assert status_of(output, "notebook service account") == [EMULATOR]
    assert "All checks passed" in output
    assert sim.slack.calls("auth.test")  # really asked Slack
    assert sim.workbench.count("list") == 1  # really asked Workbench


@pytest.fixture
def root_logging() -> Iterator[None]:
    """main() configures the root logger; give the next tests theirs back."""
    import logging

    root = logging.getLogger()
    saved = root.handlers[:], root.level
    yield
    root.handlers[:], level = saved
    root.setLevel(level)


@pytest.mark.usefixtures("root_logging")
def test_the_cli_verb_exits_0_when_all_pass_and_1_otherwise(sim: Simulated, capsys: pytest.CaptureFixture) -> None:
    assert main(["check"]) == 0
    assert "All checks passed" in capsys.readouterr().out
    sim.use_slack(scopes=[s for s in MANIFEST_SCOPES if s != "im:write"])
    assert main(["check"]) == 1
    assert "the token lacks im:write" in capsys.readouterr().out


def test_a_missing_scope_fails_and_says_how_to_fix_it(sim: Simulated) -> None:
    sim.use_slack(scopes=[s for s in MANIFEST_SCOPES if s != "users:read.email"])
    code, output = sim.check()
    assert code == 1
    assert status_of(output, "Slack scopes") == ["FAIL"]
    assert "the token lacks users:read.email" in output
    assert "Reinstall to Workspace" in output


def test_an_extra_scope_is_only_a_warning(sim: Simulated) -> None:
    sim.use_slack(scopes=[*MANIFEST_SCOPES, "channels:read"])
    code, output = sim.check()
    assert code == 0, output
    assert status_of(output, "Slack scopes") == ["ok", "warn"]
    assert "channels:read, which the bot does not use" in output


def test_a_bad_token_fails(sim: Simulated, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-not-the-right-one")
    code, output = sim.check()
    assert code == 1
    assert "auth.test answered invalid_auth" in output
    assert "gcloud secrets versions add slack-bot-token" in output


def test_a_missing_bucket_fails_with_the_command_that_creates_it(sim: Simulated, monkeypatch) -> None:
    name = "no-such-bucket-" + uuid.uuid4().hex[:8]
    monkeypatch.setenv("NOTEBOOK_SCRIPTS_BUCKET", name)
    monkeypatch.setenv("NOTEBOOK_ZONE", "europe-west4-b")
    code, output = sim.check()
    assert code == 1
    assert status_of(output, "scripts bucket") == ["FAIL"]
    assert (
        f"gcloud storage buckets create gs://{name} --project={sim.project} --location=europe-west4 "
        "--uniform-bucket-level-access"
    ) in output


def test_the_probe_object_is_deleted(sim: Simulated, gcs: Any) -> None:
    assert sim.check()[0] == 0
    assert list(gcs.list_blobs(sim.bucket)) == []


def test_an_unreachable_firestore_fails(sim: Simulated, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", f"127.0.0.1:{free_port()}")
    code, output = sim.check()
    assert code == 1
    assert status_of(output, "Firestore") == ["FAIL"]


def test_a_disabled_workbench_api_says_which_api_to_enable(sim: Simulated) -> None:
    sim.workbench.fail_next(
        "list", 403, f"Notebooks API has not been used in project {sim.project} before or it is disabled."
    )
    code, output = sim.check()
    assert code == 1
    assert status_of(output, "Workbench") == ["FAIL"]
    assert f"gcloud services enable notebooks.googleapis.com --project={sim.project}" in output


def test_a_broken_config_file_stops_the_checks(sim: Simulated, monkeypatch, tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text("[access]\nadmins = [\n")
    monkeypatch.setenv("NOTEBOOK_BOT_CONFIG", str(config))
    code, output = sim.check()
    assert code == 1
    assert status_of(output, "configuration") == ["FAIL"]
    assert "not valid TOML" in output
    assert not sim.slack.calls("auth.test")


def test_missing_variables_are_named(sim: Simulated, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTEBOOK_SCRIPTS_BUCKET")
    monkeypatch.setenv("K_SERVICE", "notebook-bot")  # on Cloud Run the task endpoint must be configured
    code, output = sim.check()
    assert code == 1
    assert "missing NOTEBOOK_BOT_TASK_AUDIENCE, NOTEBOOK_BOT_TASK_INVOKER" in output
    assert "NOTEBOOK_SCRIPTS_BUCKET is not set: launches with bucket= are refused" in output  # a warning
    assert status_of(output, "scripts bucket") == ["warn", "skipped"]


def test_socket_mode_needs_an_app_token_not_a_signing_secret(sim: Simulated, monkeypatch) -> None:
    monkeypatch.delenv("SLACK_SIGNING_SECRET")
    monkeypatch.setenv("SLACK_APP_TOKEN", "xapp-1-A0SIM-1-abc")
    code, output = sim.check()
    assert code == 0, output
    assert "Socket Mode" in output
    # The simulator has no apps.connections.open: that check says so instead of passing.
    assert status_of(output, "Slack app token") == ["skipped"]


# --- the IAM checks, against a stub of the two testIamPermissions APIs ---------------------------------
class IamStub:
    """POST .../projects/P:testIamPermissions and .../serviceAccounts/E:testIamPermissions."""

    def __init__(self, granted: set[str], error: dict[str, Any] | None = None) -> None:
        self.granted = granted
        self.error = error
        self.asked: list[tuple[str, list[str]]] = []
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                stub.asked.append((self.path, body["permissions"]))
                if stub.error:
                    status, answer = stub.error["code"], {"error": stub.error}
                else:
                    status, answer = 200, {"permissions": [p for p in body["permissions"] if p in stub.granted]}
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_port}/v1/"
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


BOT = "serviceAccount:notebook-bot@p1.iam.gserviceaccount.com"
ENV = {"GOOGLE_CLOUD_PROJECT": "p1", "NOTEBOOK_SERVICE_ACCOUNT": "notebook-vm@p1.iam.gserviceaccount.com"}


def doctor_with(stub: IamStub, env: dict[str, str] | None = None) -> Doctor:
    doctor = Doctor(
        env or ENV,
        session=requests.Session(),
        identity=BOT,
        resource_manager_url=stub.url,
        iam_url=stub.url,
    )
    assert doctor.check_config()[0].status == "ok"
    return doctor


@pytest.fixture
def stub() -> Iterator[IamStub]:
    server = IamStub(granted=set())
    yield server
    server.stop()


def test_missing_project_permissions_name_the_role_and_the_binding(stub: IamStub) -> None:
    stub.granted = set(DATASTORE_PERMISSIONS) | {"notebooks.instances.get", "notebooks.instances.list"}
    results = doctor_with(stub).check_project_permissions()
    (path, asked), *_ = stub.asked
    assert path == "/v1/projects/p1:testIamPermissions"
    assert set(asked) == set(NOTEBOOKS_PERMISSIONS) | set(DATASTORE_PERMISSIONS) | set(MONITORING_PERMISSIONS)
    workbench, firestore, monitoring = results
    assert (workbench.status, firestore.status, monitoring.status) == ("FAIL", "ok", "warn")
    grant = f"gcloud projects add-iam-policy-binding p1 --member={BOT} --role=roles/monitoring.viewer"
    assert monitoring.fix == [grant] and "monitoring.timeSeries.list" in monitoring.detail
    assert "notebooks.instances.create" in workbench.detail and "notebooks.instances.get" not in workbench.detail
    assert workbench.fix == [f"gcloud projects add-iam-policy-binding p1 --member={BOT} --role=roles/notebooks.admin"]


def test_all_project_permissions_granted(stub: IamStub) -> None:
    stub.granted = set(NOTEBOOKS_PERMISSIONS) | set(DATASTORE_PERMISSIONS) | set(MONITORING_PERMISSIONS)
    assert [r.status for r in doctor_with(stub).check_project_permissions()] == ["ok", "ok", "ok"]


def test_a_disabled_api_says_which_one_to_enable(stub: IamStub) -> None:
    stub.error = {
        "code": 403,
        "message": "Cloud Resource Manager API has not been used in project 123 before or it is disabled.",
        "status": "PERMISSION_DENIED",
        "details": [
            {
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": "SERVICE_DISABLED",
                "metadata": {"service": "cloudresourcemanager.googleapis.com"},
            }
        ],
    }
    (result,) = doctor_with(stub).check_project_permissions()
    assert result.status == "FAIL"
    assert result.fix == ["gcloud services enable cloudresourcemanager.googleapis.com --project=p1"]


def test_act_as_on_the_notebooks_service_account(stub: IamStub) -> None:
    (result,) = doctor_with(stub).check_notebook_service_account()
    assert stub.asked == [
        (
            "/v1/projects/-/serviceAccounts/notebook-vm@p1.iam.gserviceaccount.com:testIamPermissions",
            ["iam.serviceAccounts.actAs"],
        ),
    ]
    assert result.status == "FAIL"
    assert result.fix == [
        "gcloud iam service-accounts add-iam-policy-binding notebook-vm@p1.iam.gserviceaccount.com "
        f"--member={BOT} --role=roles/iam.serviceAccountUser --project=p1"
    ]
    stub.granted = {"iam.serviceAccounts.actAs"}
    assert doctor_with(stub).check_notebook_service_account()[0].status == "ok"


def test_without_a_notebooks_service_account_it_warns(stub: IamStub) -> None:
    (result,) = doctor_with(stub, {"GOOGLE_CLOUD_PROJECT": "p1"}).check_notebook_service_account()
    assert result.status == "warn" and "roles/editor" in result.detail
    assert stub.asked == []


def test_the_report_exit_code() -> None:
    from bot.run.doctor import Result

    out = io.StringIO()
    assert report([Result("ok", "a"), Result(EMULATOR, "b", "no IAM"), Result("warn", "c")], out) == 0
    assert "1 skipped: not verified here" in out.getvalue()
    assert report([Result("ok", "a"), Result("FAIL", "b", "broken", ["do this"])], io.StringIO()) == 1


def test_slack_asking_the_check_to_slow_down_is_waited_out(sim: Simulated) -> None:
    sim.slack.rate_limit_next("auth.test", retry_after=1)
    code, output = sim.check()
    assert code == 0, output
    assert status_of(output, "Slack token") == ["ok"]
    assert [c.error for c in sim.slack.calls("auth.test")][:1] == ["ratelimited"]
