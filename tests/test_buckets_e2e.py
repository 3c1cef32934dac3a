"""`bucket=` end to end: signed Slack requests in; the bucket checked in Cloud Storage (the
gcp-storage-emulator) before anything is recorded; the mount script uploaded there; the instance
on the Workbench simulator pointing at it; and the script, run under bash, mounting what it should."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
from google.api_core import exceptions as g
from google.cloud import storage

from bot.adapters.startup import StartupScripts, render_script
from bot.adapters.workbench import WorkbenchError
from bot.domain.buckets import BucketChecker
from bot.domain.errors import UserError
from tests.harness import Bot
from tests.test_startup_script import ID_CALLS, Sandbox, mount_calls


@pytest.fixture
def gcs(storage_host: str) -> storage.Client:
    return storage.Client(project="test-project")  # STORAGE_EMULATOR_HOST: anonymous, plain HTTP


@pytest.fixture
def scripts_bucket(gcs: storage.Client) -> str:
    return gcs.create_bucket(f"nb-scripts-{uuid.uuid4().hex[:8]}").name


def existing_bucket(gcs: storage.Client, name: str) -> str:
    """The emulator is shared by the session: create the bucket unless an earlier test did."""
    if gcs.lookup_bucket(name) is None:
        gcs.create_bucket(name)
    return name


def is_ready(message: Any) -> bool:
    return message.thread_ts is None and "is ready for" in message.text


def nothing_recorded(bot: Bot) -> None:
    assert bot.store.query("launches") == [] and bot.store.query("notebooks") == []
    assert bot.workbench.calls() == []
    assert bot.slack.calls("chat.postMessage") == []


def refusal(response) -> str:
    """The refusal the person sees: the slash command's own (ephemeral) answer."""
    return response.json()["text"]


def script_at(gcs: storage.Client, uri: str) -> str:
    bucket, _, name = uri.removeprefix("gs://").partition("/")
    return gcs.bucket(bucket).blob(name).download_as_text()


def test_a_bucket_launch_ends_with_the_instance_running_the_uploaded_mount_script(
    store, monkeypatch, gcs, scripts_bucket, tmp_path: Path
) -> None:
    existing_bucket(gcs, "my-data")
    with Bot(store, monkeypatch, scripts_bucket=scripts_bucket) as bot:
        assert bot.driver.command("U0ALICE", "new bucket=my-data/training").status == 200
        bot.reconcile_until(lambda: is_ready(bot.launch_message()))

        [instance] = bot.workbench.instances().values()
        metadata = instance["gceSetup"]["metadata"]
        uri = metadata["post-startup-script"]
        assert uri.startswith(f"gs://{scripts_bucket}/notebook-bot/post-startup/") and uri.endswith(".sh")
        assert metadata["post-startup-script-behavior"] == "run_every_start"
        assert "container-allow-fuse" not in metadata, "a VM image needs no FUSE in a container"
        assert metadata["idle-timeout-seconds"] == "10800"
        [notebook] = bot.store.query("notebooks")
        assert notebook["spec"]["buckets"] == ["my-data/training"]

    script = script_at(gcs, uri)
    assert script == render_script(["my-data/training"])
    blob = gcs.bucket(scripts_bucket).get_blob(uri.split("/", 3)[3])
    assert blob.content_type == "text/x-shellscript"

    sandbox = Sandbox(tmp_path)
    result = sandbox.run(script)
    assert result.returncode == 0, result.stderr
    assert sandbox.calls() == ID_CALLS + mount_calls("my-data", "training")


def test_several_buckets_in_a_container_environment_share_one_script_object(
    store, monkeypatch, gcs, scripts_bucket, tmp_path: Path
) -> None:
    existing_bucket(gcs, "my-data")
    models = existing_bucket(gcs, f"models-{uuid.uuid4().hex[:6]}")
    with Bot(store, monkeypatch, scripts_bucket=scripts_bucket) as bot:
        bot.driver.command("U0ALICE", f"new tf-2-8 name=first bucket=my-data/training bucket={models}")
        bot.driver.command("U0BOB", f"new tf-2-8 name=second bucket=my-data/training bucket={models}")
        bot.reconcile_until(lambda: sum(is_ready(m) for m in bot.channel_messages()) == 2)
        instances = bot.workbench.instances().values()
        uris = {i["gceSetup"]["metadata"]["post-startup-script"] for i in instances}
        assert all(i["gceSetup"]["metadata"]["container-allow-fuse"] == "true" for i in instances)

    assert len(uris) == 1, "the same buckets give the same script object"
    assert len(list(gcs.list_blobs(scripts_bucket))) == 1
    sandbox = Sandbox(tmp_path)
    assert sandbox.run(script_at(gcs, uris.pop())).returncode == 0
    assert sandbox.calls("gcsfuse") == [mount_calls("my-data", "training")[-1], mount_calls(models)[-1]]


def failed_launch(bot: Bot) -> str:
    """The launch message once the worker failed it (the request itself only records the launch)."""
    return bot.reconcile_until(lambda: "Couldn't create" in (text := bot.launch_message().text) and text)


def nothing_reserved_or_created(bot: Bot) -> None:
    assert bot.store.query("notebooks") == [], "no name or quota taken"
    assert bot.workbench.count("create") == 0


def test_a_missing_bucket_fails_the_launch_before_anything_is_reserved(store, monkeypatch, gcs, scripts_bucket) -> None:
    missing = f"no-such-bucket-{uuid.uuid4().hex[:8]}"
    with Bot(store, monkeypatch, scripts_bucket=scripts_bucket) as bot:
        response = bot.driver.command("U0ALICE", f"new gpu=l4 bucket={missing}/training")
        assert response.status == 200 and "doesn't exist" not in response.body, "the ack asks no one"
        assert f"The bucket `{missing}` doesn't exist" in failed_launch(bot)
        nothing_reserved_or_created(bot)
    assert list(gcs.list_blobs(scripts_bucket)) == []


def test_one_missing_bucket_among_several_is_named(store, monkeypatch, gcs, scripts_bucket) -> None:
    existing_bucket(gcs, "my-data")
    with Bot(store, monkeypatch, scripts_bucket=scripts_bucket) as bot:
        bot.driver.command("U0ALICE", "new bucket=my-data bucket=not-there-either-zz9")
        assert "`not-there-either-zz9` doesn't exist" in failed_launch(bot)
        nothing_reserved_or_created(bot)


def test_a_form_launch_with_a_missing_bucket_fails_in_the_channel_with_the_reason(
    store, monkeypatch, gcs, scripts_bucket
) -> None:
    with Bot(store, monkeypatch, scripts_bucket=scripts_bucket) as bot:
        bot.driver.command("U0ALICE", "new")
        [view_id] = bot.slack.wait_for(lambda: list(bot.slack.views()))
        response = bot.driver.submit("U0ALICE", view_id, {"bucket": {"value": "absent-bucket-q7 "}})
        assert response.status == 200 and "errors" not in response.body, "the form closes at once"
        assert "`absent-bucket-q7` doesn't exist" in failed_launch(bot)
        nothing_reserved_or_created(bot)


def test_a_bad_bucket_name_is_answered_at_once(store, monkeypatch, scripts_bucket) -> None:
    with Bot(store, monkeypatch, scripts_bucket=scripts_bucket) as bot:
        reply = bot.driver.command("U0ALICE", "new bucket=data;reboot").json()
        assert "can't be mounted" in reply["text"] and "lowercase letters" in reply["text"]
        nothing_recorded(bot)


def test_without_a_scripts_bucket_bucket_launches_are_refused_with_words_for_admins(store, monkeypatch, gcs) -> None:
    existing_bucket(gcs, "my-data")
    with Bot(store, monkeypatch) as bot:
        text = refusal(bot.driver.command("U0ALICE", "new bucket=my-data"))
        assert "NOTEBOOK_SCRIPTS_BUCKET" in text and "An admin must set" in text
        nothing_recorded(bot)


def test_a_missing_scripts_bucket_fails_the_launch_and_says_so(store, monkeypatch, gcs) -> None:
    existing_bucket(gcs, "my-data")
    with Bot(store, monkeypatch, scripts_bucket=f"gone-scripts-{uuid.uuid4().hex[:8]}") as bot:
        bot.driver.command("U0ALICE", "new bucket=my-data")
        failed = bot.reconcile_until(lambda: "Couldn't create" in bot.launch_message().text and bot.launch_message())
        assert "NOTEBOOK_SCRIPTS_BUCKET" in failed.text and "does not exist" in failed.text
        assert bot.workbench.count("create") == 0
        assert bot.store.query("notebooks") == [], "a failed launch frees its name"


# --- what the emulator can't show: refusals by Cloud Storage -------------------------------------
class FailingStorage:
    """A Storage whose client raises `error` on every call."""

    def __init__(self, error: Exception) -> None:
        self.error = error
        outer = self

        class Blob:
            def upload_from_string(self, *args: Any, **kwargs: Any) -> None:
                raise outer.error

        class Bucket:
            def reload(self, **kwargs: Any) -> None:
                raise outer.error

            def blob(self, name: str) -> Blob:
                return Blob()

        class Client:
            def bucket(self, name: str) -> Bucket:
                return Bucket()

        self.client = Client()


class Spec:
    environment = "base"

    def __init__(self, *buckets: str) -> None:
        self.buckets = buckets


@pytest.mark.parametrize(
    "error, expected",
    [
        (g.Forbidden("no"), "not allowed to read the bucket `secret-data`"),
        (g.Unauthorized("no"), "roles/storage.bucketViewer"),
        (g.ServiceUnavailable("later"), "couldn't check the bucket `secret-data` just now"),
        (ConnectionError("down"), "try again in a minute"),
    ],
)
def test_a_bucket_the_bot_may_not_read_is_refused_with_the_role_to_grant(error: Exception, expected: str) -> None:
    check = BucketChecker(FailingStorage(error), "scripts")  # type: ignore[arg-type]
    with pytest.raises(UserError) as caught:
        check(Spec("secret-data/x"))
    assert expected in caught.value.message and caught.value.field == "bucket"
    check(Spec())  # no buckets: nothing to ask


@pytest.mark.parametrize(
    "error, kind, retriable",
    [
        (g.Forbidden("no"), "permission", False),
        (g.NotFound("no"), "not_found", False),
        (g.ServiceUnavailable("later"), "unavailable", True),
    ],
)
def test_upload_errors_become_workbench_errors(error: Exception, kind: str, retriable: bool) -> None:
    scripts = StartupScripts(FailingStorage(error), "scripts")  # type: ignore[arg-type]
    with pytest.raises(WorkbenchError) as caught:
        scripts.metadata(Spec("my-data"))  # type: ignore[arg-type]
    assert (caught.value.kind, caught.value.retriable) == (kind, retriable)
    assert scripts.metadata(Spec()) == {}  # type: ignore[arg-type]


def test_a_stored_spec_with_a_bucket_name_refused_today_fails_without_retries() -> None:
    scripts = StartupScripts(FailingStorage(AssertionError("never asked")), "scripts")  # type: ignore[arg-type]
    with pytest.raises(WorkbenchError) as caught:
        scripts.metadata(Spec("Bad'Name"))  # type: ignore[arg-type]
    assert caught.value.kind == "invalid" and not caught.value.retriable and "can't be mounted" in str(caught.value)


def test_the_storage_client_is_built_on_first_use(storage_host: str) -> None:
    from bot.adapters.store import SqliteStore
    from bot.run.config import Settings, load_config
    from bot.run.services import Services

    services = Services(Settings(project="p", scripts_bucket="s"), config=load_config(None), store=SqliteStore())
    assert services.launcher.buckets is not None
    assert not services.storage._client.built, "building the launcher builds no Google client"
    assert services.storage.client is services.storage.client


def test_characters_slack_escapes_reach_the_script_as_typed(store, monkeypatch, gcs, scripts_bucket) -> None:
    existing_bucket(gcs, "my-data")
    with Bot(store, monkeypatch, scripts_bucket=scripts_bucket) as bot:
        bot.driver.command("U0ALICE", "new bucket=my-data/r&amp;d")  # what Slack sends for r&d
        bot.reconcile_until(lambda: is_ready(bot.launch_message()))
        [notebook] = bot.store.query("notebooks")
        assert notebook["spec"]["buckets"] == ["my-data/r&d"]
