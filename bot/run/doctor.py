"""`notebook-bot check`: can this configuration, with these credentials, do what the bot needs?

Each check talks to the real service (or to its emulator when the test seams point at one) and
prints one line: ok, FAIL, warn, or skipped, with the exact command that fixes a failure.
IAM questions that an emulator cannot answer are printed as "skipped (emulator)", never as ok.
Exit status: 0 when nothing failed, 1 otherwise.

Run it with the bot's own identity, or the IAM answers are about you:
    gcloud auth application-default login --impersonate-service-account=notebook-bot@PROJECT.iam.gserviceaccount.com
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TextIO

from bot.run.config import DEFAULT_ZONE, ConfigError, Settings, load_config

# The bot token's scopes: exactly the bot scopes manifest.yaml declares (tests/test_deploy_files.py
# keeps the two equal, and both equal to what the code's Slack calls need).
MANIFEST_SCOPES = (
    "commands",
    "chat:write",
    "chat:write.public",
    "im:write",
    "users:read",
    "users:read.email",
    "usergroups:read",
    "channels:history",
    "groups:history",
    "im:history",
    "files:write",
)

NOTEBOOKS_PERMISSIONS = (
    "notebooks.instances.create",
    "notebooks.instances.delete",
    "notebooks.instances.get",
    "notebooks.instances.list",
    "notebooks.instances.start",
    "notebooks.instances.stop",
    "notebooks.instances.update",
)
DATASTORE_PERMISSIONS = (
    "datastore.entities.get",
    "datastore.entities.list",
    "datastore.entities.create",
    "datastore.entities.update",
    "datastore.entities.delete",
)
MONITORING_PERMISSIONS = ("monitoring.timeSeries.list",)  # utilization for reminders; optional
BUCKET_PERMISSIONS = ("storage.objects.create",)  # scripts are written once, never read back or deleted
ACT_AS = ("iam.serviceAccounts.actAs",)

RESOURCE_MANAGER_URL = "https://cloudresourcemanager.googleapis.com/v1/"
IAM_URL = "https://iam.googleapis.com/v1/"
CLOUD_PLATFORM = "https://www.googleapis.com/auth/cloud-platform"
DEFAULT_SLACK_API_URL = "https://slack.com/api/"
BOT_SERVICE_ACCOUNT = "notebook-bot"  # the account docs/deploy.md creates

CHECK_NAMES = {
    "check_config": "configuration",
    "check_environment": "environment",
    "check_slack": "Slack token",
    "check_slack_app_token": "Slack app token",
    "check_firestore": "Firestore",
    "check_workbench": "Workbench",
    "check_scripts_bucket": "scripts bucket",
    "check_project_permissions": "project permissions",
    "check_notebook_service_account": "notebook service account",
}

OK, FAIL, WARN, SKIP = "ok", "FAIL", "warn", "skipped"
EMULATOR = "skipped (emulator)"


@dataclass
class Result:
    status: str  # ok, FAIL, warn, skipped, skipped (emulator)
    name: str
    detail: str = ""
    fix: list[str] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        return self.status == FAIL


class GoogleApiError(Exception):
    def __init__(self, status: int, message: str, reason: str = "", service: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.reason = reason
        self.service = service


class Doctor:
    """Runs the checks; `session`, the API URLs and `env` are seams for tests."""

    def __init__(
        self,
        env: Mapping[str, str] | None = None,
        *,
        session: Any = None,
        identity: str | None = None,
        resource_manager_url: str = RESOURCE_MANAGER_URL,
        iam_url: str = IAM_URL,
    ) -> None:
        self.env: Mapping[str, str] = os.environ if env is None else env
        self._session = session
        self._identity = identity
        self.resource_manager_url = resource_manager_url
        self.iam_url = iam_url
        self.settings: Settings | None = None
        self.results: list[Result] = []

    # --- running ----------------------------------------------------------------------------------
    def run(self) -> list[Result]:
        self.results = []
        if not self._check(self.check_config):
            return self.results
        for check in (
            self.check_environment,
            self.check_slack,
            self.check_slack_app_token,
            self.check_firestore,
            self.check_workbench,
            self.check_scripts_bucket,
            self.check_project_permissions,
            self.check_notebook_service_account,
        ):
            self._check(check)
        return self.results

    def _check(self, check: Callable[[], list[Result]]) -> bool:
        try:
            results = check()
        except Exception as exc:  # a check that crashes is a failed check, with its reason
            results = [Result(FAIL, CHECK_NAMES.get(check.__name__, check.__name__), _describe(exc), self._fix(exc))]
        self.results.extend(results)
        return not any(r.failed for r in results)

    def _fix(self, exc: Exception) -> list[str]:
        from google.auth.exceptions import DefaultCredentialsError

        if isinstance(exc, DefaultCredentialsError):
            account = f"{BOT_SERVICE_ACCOUNT}@{self.project or 'PROJECT'}.iam.gserviceaccount.com"
            return [f"gcloud auth application-default login --impersonate-service-account={account}"]
        return []

    def emulator(self, name: str) -> str | None:
        return self.env.get(name) or None

    @property
    def project(self) -> str:
        assert self.settings is not None
        return self.settings.project or ""

    @property
    def zone(self) -> str:
        assert self.settings is not None
        return self.settings.zone or self._zone or DEFAULT_ZONE

    _zone: str | None = None

    @property
    def region(self) -> str:
        return self.zone.rsplit("-", 1)[0]

    # --- configuration ------------------------------------------------------------------------------
    def check_config(self) -> list[Result]:
        try:
            self.settings = Settings.from_env(dict(self.env))
            config = load_config(self.settings.config_path)
        except ConfigError as exc:
            return [Result(FAIL, "configuration", str(exc), ["correct the variable or file named above"])]
        self._zone = config.policy.zone
        envs = len(config.catalog.environments)
        return [Result(OK, "configuration", f"{config.source}; {envs} environments; zone {self.zone}")]

    def check_environment(self) -> list[Result]:
        settings = self.settings
        assert settings is not None
        results = []
        socket_mode = bool(settings.slack_app_token) and not settings.slack_signing_secret
        needed = ["SLACK_BOT_TOKEN", "GOOGLE_CLOUD_PROJECT"]
        needed += ["SLACK_APP_TOKEN"] if socket_mode else ["SLACK_SIGNING_SECRET"]
        if self.env.get("K_SERVICE"):
            needed += ["NOTEBOOK_BOT_TASK_AUDIENCE", "NOTEBOOK_BOT_TASK_INVOKER"]
        missing = [name for name in needed if not self.env.get(name)]
        mode = "Socket Mode" if socket_mode else "HTTP mode"
        if missing:
            results.append(
                Result(
                    FAIL,
                    "environment",
                    f"{mode}: missing {', '.join(missing)}",
                    [f"set {name} (docs/deploy.md, step 9: the service's environment)" for name in missing],
                )
            )
        else:
            results.append(Result(OK, "environment", f"{mode}; project {settings.project}; store {settings.store_url}"))
        if not settings.scripts_bucket:
            results.append(
                Result(
                    WARN,
                    "scripts bucket",
                    "NOTEBOOK_SCRIPTS_BUCKET is not set: launches with bucket= are refused until it is",
                )
            )
        secret = settings.slack_signing_secret
        if secret and not (len(secret) == 32 and all(c in "0123456789abcdef" for c in secret)):
            results.append(
                Result(
                    WARN,
                    "signing secret",
                    "does not look like a Slack signing secret (32 hex characters); Slack requests will get 401",
                    ["copy it from api.slack.com/apps → your app → Basic Information → Signing Secret"],
                )
            )
        if not settings.task_audience and not settings.task_token and not self.env.get("K_SERVICE"):
            results.append(
                Result(
                    WARN,
                    "task endpoint",
                    "NOTEBOOK_BOT_TASK_OPEN is set: POST /tasks/reconcile is open to anyone (fine on a laptop only)"
                    if settings.task_open
                    else "POST /tasks/reconcile refuses every call: nothing authorizes it",
                    [
                        "Cloud Scheduler: set NOTEBOOK_BOT_TASK_AUDIENCE and NOTEBOOK_BOT_TASK_INVOKER; elsewhere "
                        "NOTEBOOK_BOT_TASK_TOKEN (a shared bearer token, 32+ characters); the worker inside "
                        "`serve` runs passes anyway"
                    ],
                )
            )
        return results

    # --- Slack ----------------------------------------------------------------------------------------
    def _slack(self, token: str | None) -> Any:
        from slack_sdk import WebClient
        from slack_sdk.http_retry.builtin_handlers import RateLimitErrorRetryHandler

        return WebClient(
            token=token,
            base_url=self.env.get("SLACK_API_URL") or DEFAULT_SLACK_API_URL,
            timeout=15,
            retry_handlers=[RateLimitErrorRetryHandler(max_retry_count=2)],  # Retry-After honoured here too
        )

    def check_slack(self) -> list[Result]:
        from slack_sdk.errors import SlackApiError

        assert self.settings is not None
        token = self.settings.slack_bot_token
        if not token:
            return [Result(SKIP, "Slack token", "SLACK_BOT_TOKEN is not set")]
        try:
            response = self._slack(token).auth_test()
        except SlackApiError as exc:
            error = exc.response.get("error", "unknown error")
            return [
                Result(
                    FAIL,
                    "Slack token",
                    f"auth.test answered {error}",
                    [
                        "copy the Bot User OAuth Token (xoxb-…) from api.slack.com/apps → your app → OAuth & "
                        "Permissions, then: printf %s 'xoxb-…' | gcloud secrets versions add slack-bot-token "
                        "--data-file=-",
                    ],
                )
            ]
        results = [
            Result(
                OK, "Slack token", f"bot {response.get('user')} ({response.get('user_id')}) in {response.get('team')}"
            )
        ]
        header = _header(response.headers, "x-oauth-scopes")
        if header is None:
            results.append(Result(WARN, "Slack scopes", "Slack did not say which scopes the token has"))
            return results
        granted = {s.strip() for s in header.split(",") if s.strip()}
        missing = [s for s in MANIFEST_SCOPES if s not in granted]
        extra = sorted(granted - set(MANIFEST_SCOPES))
        if missing:
            results.append(
                Result(
                    FAIL,
                    "Slack scopes",
                    f"the token lacks {', '.join(missing)} (declared in manifest.yaml)",
                    [
                        "api.slack.com/apps → your app → App Manifest: paste manifest.yaml's oauth_config, save, "
                        "then OAuth & Permissions → Reinstall to Workspace",
                    ],
                )
            )
        else:
            results.append(Result(OK, "Slack scopes", ", ".join(MANIFEST_SCOPES)))
        if extra:
            results.append(
                Result(
                    WARN,
                    "Slack scopes",
                    f"the token also has {', '.join(extra)}, which the bot does not use (least privilege: remove them)",
                )
            )
        return results

    def check_slack_app_token(self) -> list[Result]:
        from slack_sdk.errors import SlackApiError

        assert self.settings is not None
        token = self.settings.slack_app_token
        if not token:
            return []
        if not token.startswith("xapp-"):
            return [Result(FAIL, "Slack app token", "SLACK_APP_TOKEN must be an app-level token (xapp-…)")]
        try:
            self._slack(token).apps_connections_open(app_token=token)
        except SlackApiError as exc:
            error = exc.response.get("error", "unknown error")
            if error == "unknown_method":
                return [Result(SKIP, "Slack app token", "the Slack API at SLACK_API_URL has no apps.connections.open")]
            return [
                Result(
                    FAIL,
                    "Slack app token",
                    f"apps.connections.open answered {error}",
                    [
                        "api.slack.com/apps → your app → Basic Information → App-Level Tokens: generate one with "
                        "connections:write, and turn Socket Mode on",
                    ],
                )
            ]
        return [Result(OK, "Slack app token", "Socket Mode connections can be opened")]

    # --- Firestore ------------------------------------------------------------------------------------
    def check_firestore(self) -> list[Result]:
        assert self.settings is not None
        kind, _, database = self.settings.store_url.partition(":")
        if kind != "firestore":
            return [Result(SKIP, "Firestore", f"the store is {self.settings.store_url}, not Firestore")]
        from bot.adapters.firestore import FirestoreStore

        database = database or "(default)"
        emulator = self.emulator("FIRESTORE_EMULATOR_HOST") or ""
        store = FirestoreStore.connect(self.project or None, database, emulator=emulator)  # no credentials: raises
        try:
            store.get("launches", "_check")
        except Exception as exc:
            message = _describe(exc)
            fix = []
            lowered = message.lower()
            if "datastore mode" in lowered:
                fix = ["the database is in Datastore mode; the bot needs a Firestore database in Native mode"]
            elif "not found" in lowered or "does not exist" in lowered:
                fix = [
                    f"gcloud firestore databases create --database='{database}' --location={self.region} "
                    f"--type=firestore-native --project={self.project}"
                ]
            elif "disabled" in lowered or "has not been used" in lowered:
                fix = [f"gcloud services enable firestore.googleapis.com --project={self.project}"]
            elif "permission" in lowered or "403" in lowered:
                fix = [self._project_binding("roles/datastore.user")]
            return [Result(FAIL, "Firestore", f"reading database {database}: {message}", fix)]
        host = self.emulator("FIRESTORE_EMULATOR_HOST")
        where = f" (emulator {host})" if host else ""
        return [Result(OK, "Firestore", f"database {database} answered a read{where}")]

    # --- Workbench --------------------------------------------------------------------------------------
    def check_workbench(self) -> list[Result]:
        from bot.adapters.workbench import Workbench, WorkbenchError

        if not self.project:
            return [Result(SKIP, "Workbench", "GOOGLE_CLOUD_PROJECT is not set")]
        try:
            count = len(
                Workbench(self.project, emulator_host=self.emulator("NOTEBOOKS_EMULATOR_HOST") or "").list(self.zone)
            )
        except WorkbenchError as exc:
            fix = []
            lowered = exc.message.lower()
            if "disabled" in lowered or "has not been used" in lowered:
                fix = [f"gcloud services enable notebooks.googleapis.com --project={self.project}"]
            elif exc.kind == "permission":
                fix = [self._project_binding("roles/notebooks.admin")]
            return [Result(FAIL, "Workbench", f"listing instances in {self.zone}: {exc.message}", fix)]
        return [Result(OK, "Workbench", f"{count} instance(s) in {self.zone}")]

    # --- the scripts bucket -------------------------------------------------------------------------------
    def check_scripts_bucket(self) -> list[Result]:
        assert self.settings is not None
        name = self.settings.scripts_bucket
        if not name:
            return [Result(SKIP, "scripts bucket", "NOTEBOOK_SCRIPTS_BUCKET is not set")]
        from google.api_core import exceptions as g
        from google.cloud import storage

        emulated = self.emulator("STORAGE_EMULATOR_HOST")
        if emulated:
            from google.auth.credentials import AnonymousCredentials

            client = storage.Client(project=self.project or "emulator", credentials=AnonymousCredentials())
        else:
            client = storage.Client(project=self.project or None)
        bucket = client.bucket(name)
        create = (
            f"gcloud storage buckets create gs://{name} --project={self.project} --location={self.region} "
            "--uniform-bucket-level-access"
        )
        results = []
        try:
            if emulated:
                client.get_bucket(name, timeout=20)
                results.append(
                    Result(EMULATOR, "scripts bucket permissions", f"STORAGE_EMULATOR_HOST={emulated} has no IAM")
                )
            else:
                granted = set(bucket.test_iam_permissions(list(BUCKET_PERMISSIONS), timeout=20))
                missing = [p for p in BUCKET_PERMISSIONS if p not in granted]
                if missing:
                    return [
                        Result(
                            FAIL,
                            "scripts bucket permissions",
                            f"gs://{name}: missing {', '.join(missing)}",
                            [
                                f"gcloud storage buckets add-iam-policy-binding gs://{name} --member={self.member} "
                                "--role=roles/storage.objectCreator"
                            ],
                        )
                    ]
                results.append(
                    Result(OK, "scripts bucket permissions", f"gs://{name}: {', '.join(BUCKET_PERMISSIONS)}")
                )
        except g.NotFound:
            return [Result(FAIL, "scripts bucket", f"gs://{name} does not exist", [create])]
        probe = bucket.blob(f"notebook-bot-check/probe-{uuid.uuid4().hex}")
        try:
            probe.upload_from_string(b"notebook-bot check\n", content_type="text/plain", timeout=20)
            probe.delete(timeout=20)
        except Exception as exc:
            return [*results, Result(FAIL, "scripts bucket", f"writing to gs://{name}: {_describe(exc)}")]
        return [*results, Result(OK, "scripts bucket", f"gs://{name} exists; an object was written and deleted")]

    # --- IAM ----------------------------------------------------------------------------------------------
    def check_project_permissions(self) -> list[Result]:
        assert self.settings is not None
        wanted: dict[str, tuple[tuple[str, ...], str]] = {}
        results = []
        host = self.emulator("NOTEBOOKS_EMULATOR_HOST")
        if host:
            results.append(Result(EMULATOR, "Workbench permissions", f"NOTEBOOKS_EMULATOR_HOST={host} has no IAM"))
        else:
            wanted["Workbench permissions"] = (NOTEBOOKS_PERMISSIONS, "roles/notebooks.admin")
        host = self.emulator("FIRESTORE_EMULATOR_HOST")
        if not self.settings.store_url.startswith("firestore"):
            results.append(Result(SKIP, "Firestore permissions", "the store is not Firestore"))
        elif host:
            results.append(Result(EMULATOR, "Firestore permissions", f"FIRESTORE_EMULATOR_HOST={host} has no IAM"))
        else:
            wanted["Firestore permissions"] = (DATASTORE_PERMISSIONS, "roles/datastore.user")
        host = self.emulator("MONITORING_EMULATOR_HOST")
        if host:
            results.append(Result(EMULATOR, "Monitoring permissions", f"MONITORING_EMULATOR_HOST={host} has no IAM"))
        else:
            wanted["Monitoring permissions"] = (MONITORING_PERMISSIONS, "roles/monitoring.viewer")
        if not wanted:
            return results
        if not self.project:
            return [*results, *(Result(SKIP, name, "GOOGLE_CLOUD_PROJECT is not set") for name in wanted)]
        asked = sorted({p for permissions, _ in wanted.values() for p in permissions})
        url = f"{self.resource_manager_url}projects/{self.project}:testIamPermissions"
        try:
            granted = self._test_permissions(url, asked)
        except GoogleApiError as exc:
            return [*results, Result(FAIL, "project permissions", exc.message, self._api_fix(exc))]
        results.extend(self._identity_note())
        for name, (permissions, role) in wanted.items():
            missing = [p for p in permissions if p not in granted]
            if missing and name == "Monitoring permissions":  # reminders then go by the clock alone
                detail = f"{self.member} lacks {', '.join(missing)}: reminders can't say how busy notebooks are"
                results.append(Result(WARN, name, detail, [self._project_binding(role)]))
            elif missing:
                results.append(
                    Result(FAIL, name, f"{self.member} lacks {', '.join(missing)}", [self._project_binding(role)])
                )
            else:
                results.append(Result(OK, name, f"{len(permissions)} permissions on project {self.project}"))
        return results

    def check_notebook_service_account(self) -> list[Result]:
        host = self.emulator("NOTEBOOKS_EMULATOR_HOST")
        if host:
            return [Result(EMULATOR, "notebook service account", f"NOTEBOOKS_EMULATOR_HOST={host} has no IAM")]
        account = self.env.get("NOTEBOOK_SERVICE_ACCOUNT")
        if not account:
            return [
                Result(
                    WARN,
                    "notebook service account",
                    "NOTEBOOK_SERVICE_ACCOUNT is not set: notebooks run as the Compute Engine default service "
                    "account, which often holds roles/editor (docs/deploy.md, step 5)",
                )
            ]
        url = f"{self.iam_url}projects/-/serviceAccounts/{account}:testIamPermissions"
        try:
            granted = self._test_permissions(url, list(ACT_AS))
        except GoogleApiError as exc:
            return [Result(FAIL, "notebook service account", f"{account}: {exc.message}", self._api_fix(exc))]
        if "iam.serviceAccounts.actAs" not in granted:
            return [
                Result(
                    FAIL,
                    "notebook service account",
                    f"{self.member} cannot act as {account}, so Workbench refuses to create notebooks that run as it",
                    [
                        f"gcloud iam service-accounts add-iam-policy-binding {account} --member={self.member} "
                        f"--role=roles/iam.serviceAccountUser --project={self.project}"
                    ],
                )
            ]
        return [Result(OK, "notebook service account", f"notebooks run as {account}")]

    # --- Google API plumbing ------------------------------------------------------------------------
    @property
    def session(self) -> Any:
        """An authorized HTTP session with Application Default Credentials (loaded on first use)."""
        if self._session is None:
            import google.auth
            from google.auth.transport.requests import AuthorizedSession, Request

            credentials, _ = google.auth.default(scopes=[CLOUD_PLATFORM])
            with contextlib.suppress(Exception):  # the first real call reports the problem
                credentials.refresh(Request())
            email = getattr(credentials, "service_account_email", None)
            if self._identity is None and email and email != "default":
                self._identity = f"serviceAccount:{email}"
            elif self._identity is None:
                self._identity = ""  # user credentials: the answers are about whoever logged in
            self._session = AuthorizedSession(credentials)
        return self._session

    @property
    def member(self) -> str:
        """Who the IAM answers are about, as an IAM member (the fix commands grant roles to it)."""
        return self._identity or f"serviceAccount:{BOT_SERVICE_ACCOUNT}@{self.project}.iam.gserviceaccount.com"

    def _identity_note(self) -> list[Result]:
        if self._identity != "":
            return []
        return [
            Result(
                WARN,
                "identity",
                "these IAM answers are about the account you logged in with, not the bot's service account",
                [
                    "gcloud auth application-default login --impersonate-service-account="
                    f"{BOT_SERVICE_ACCOUNT}@{self.project}.iam.gserviceaccount.com, then run the check again",
                ],
            )
        ]

    def _test_permissions(self, url: str, permissions: list[str]) -> set[str]:
        response = self.session.post(url, json={"permissions": permissions}, timeout=30)
        try:
            body = response.json()
        except ValueError:
            body = {}
        if response.status_code != 200:
            error = body.get("error") or {}
            reason, service = "", ""
            for detail in error.get("details") or []:
                if detail.get("reason"):
                    reason = detail["reason"]
                    service = (detail.get("metadata") or {}).get("service", "")
            message = error.get("message") or f"HTTP {response.status_code}"
            raise GoogleApiError(response.status_code, message, reason, service)
        return set(body.get("permissions") or [])

    def _api_fix(self, exc: GoogleApiError) -> list[str]:
        if exc.reason == "SERVICE_DISABLED" and exc.service:
            return [f"gcloud services enable {exc.service} --project={self.project}"]
        return []

    def _project_binding(self, role: str) -> str:
        return f"gcloud projects add-iam-policy-binding {self.project} --member={self.member} --role={role}"


# --- output -------------------------------------------------------------------------------------------
def report(results: list[Result], out: TextIO) -> int:
    width = max((len(r.status) for r in results), default=4)
    for result in results:
        line = f"  {result.status:<{width}}  {result.name}"
        print(f"{line}: {result.detail}" if result.detail else line, file=out)
        for fix in result.fix:
            print(f"  {'':<{width}}    fix: {fix}", file=out)
    failed = sum(r.failed for r in results)
    if failed:
        print(f"\n{failed} check(s) failed: fix them and run `notebook-bot check` again.", file=out)
        return 1
    skipped = sum(r.status.startswith(SKIP) for r in results)
    tail = f" ({skipped} skipped: not verified here)" if skipped else ""
    print(f"\nAll checks passed{tail}.", file=out)
    return 0


def run_checks(env: Mapping[str, str] | None = None, out: TextIO | None = None, **seams: Any) -> int:
    out = out or sys.stdout
    doctor = Doctor(env, **seams)
    print("notebook-bot check", file=out)
    quiet = logging.getLogger("slack_sdk")  # its retries and errors are reported by the checks themselves
    level = quiet.level
    quiet.setLevel(logging.CRITICAL)
    try:
        return report(doctor.run(), out)
    finally:
        quiet.setLevel(level)


def _describe(exc: BaseException) -> str:
    text = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    return " ".join(str(text).split())[:400]


def _header(headers: Any, name: str) -> str | None:
    for key, value in dict(headers or {}).items():
        if key.lower() == name:
            return value if isinstance(value, str) else ",".join(value)
    return None
