"""The deployment files agree with the code: cloudbuild.yaml, manifest.yaml, the Dockerfile.

None of them can run here (no Cloud Build, no Slack, no Docker engine), so these tests check what
can be checked: structure, order, substitutions, the bash of each build step (`bash -n`), the Slack
scopes against the Web API methods the code calls, and that the image installs what CI installs.
"""

from __future__ import annotations

import ast
import inspect
import re
import shlex
import subprocess
import tomllib
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
CODE_DIRS = ("bot", "handlers")

# --- Slack: which scopes each Web API method the code calls needs ---------------------------------
# Every method called in bot/ and handlers/ must be listed (the test says which one is not).
# Values are the bot scopes that call needs *as this bot uses it*; see notes/slack.md and
# https://docs.slack.dev/reference/methods.
SCOPES_FOR_METHOD: dict[str, set[str]] = {
    "auth.test": set(),
    "apps.connections.open": set(),  # `check`, with the app-level token (connections:write), not the bot's
    # chat:write.public: launch messages go to the public channel /notebook was typed in, which the
    # bot has not necessarily been invited to (without it: not_in_channel, then a DM fallback).
    "chat.postMessage": {"chat:write", "chat:write.public"},
    "chat.postEphemeral": {"chat:write"},
    "chat.update": {"chat:write"},
    "chat.delete": {"chat:write"},
    "conversations.open": {"im:write"},
    # the bot reads its own recent messages only to recover a post whose reply was lost (bot/domain/outbox.py)
    "conversations.history": {"channels:history", "groups:history", "im:history"},
    "conversations.replies": {"channels:history", "groups:history", "im:history"},
    # users:read.email: the bot reads profile.email (Workbench's instance_owners needs it).
    "users.info": {"users:read", "users:read.email"},
    "users.lookupByEmail": {"users:read.email"},
    "usergroups.users.list": {"usergroups:read"},
    "views.open": set(),
    "views.push": set(),
    "views.update": set(),
    "views.publish": set(),
    # files_upload_v2 makes both calls (and POSTs the bytes to the URL the first returns): the digest's chart
    "files.getUploadURLExternal": {"files:write"},
    "files.completeUploadExternal": {"files:write"},
}
# WebClient helpers that are several Web API calls (not one api_call each, so the scan can't see them)
COMPOSITE_METHODS = {"files_upload_v2": ("files.getUploadURLExternal", "files.completeUploadExternal")}
SCOPES_FOR_LISTENER = {"command": {"commands"}}  # @app.command needs `commands`; events, actions, views none


def python_files() -> list[Path]:
    files = []
    for top in CODE_DIRS:
        files += [p for p in (ROOT / top).rglob("*.py") if "sim" not in p.relative_to(ROOT).parts[1:-1]]
    return sorted(p for p in files if p.parts[-2] != "sim")


@cache
def web_api_methods() -> dict[str, str]:
    """slack_sdk WebClient method name (chat_postMessage) -> Web API method (chat.postMessage)."""
    from slack_sdk import WebClient

    found = {}
    for name, function in inspect.getmembers(WebClient, inspect.isfunction):
        if name.startswith("_"):
            continue
        match = re.search(r"api_call\(\s*\"([a-zA-Z.]+)\"", inspect.getsource(function))
        if match:
            found[name] = match.group(1)
    return found


def slack_calls() -> dict[str, set[str]]:
    """Web API method -> the files calling it (client.chat_postMessage(...), say(...), api_call("x.y"))."""
    methods = web_api_methods()
    calls: dict[str, set[str]] = {}
    for path in python_files():
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            method = None
            if isinstance(node.func, ast.Attribute) and node.func.attr in COMPOSITE_METHODS:
                for one in COMPOSITE_METHODS[node.func.attr]:
                    calls.setdefault(one, set()).add(str(path.relative_to(ROOT)))
            elif isinstance(node.func, ast.Attribute) and node.func.attr in methods:
                method = methods[node.func.attr]
            elif isinstance(node.func, ast.Attribute) and node.func.attr == "api_call" and node.args:
                first = node.args[0]
                method = first.value if isinstance(first, ast.Constant) and isinstance(first.value, str) else None
            elif isinstance(node.func, ast.Name) and node.func.id == "say":
                method = "chat.postMessage"  # Bolt's say()
            if method:
                calls.setdefault(method, set()).add(str(path.relative_to(ROOT)))
    return calls


def listeners() -> dict[str, set[str]]:
    """Bolt listener kind (command, event, action, view, ...) -> the names registered in handlers/."""
    found: dict[str, set[str]] = {}
    for path in (ROOT / "handlers").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and isinstance(node.func.value, ast.Name)
                and node.func.value.id == "app"
                and node.args
                and isinstance(node.args[0], ast.Constant)
            ):
                found.setdefault(node.func.attr, set()).add(str(node.args[0].value))
    return found


@pytest.fixture(scope="module")
def manifest() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "manifest.yaml").read_text())


def test_the_code_calls_slack_through_methods_the_scope_table_knows() -> None:
    calls = slack_calls()
    assert {"chat.postMessage", "users.info", "conversations.open"} <= calls.keys()  # the scan finds calls
    unknown = {m: sorted(files) for m, files in calls.items() if m not in SCOPES_FOR_METHOD}
    assert not unknown, f"add these Web API methods and their scopes to SCOPES_FOR_METHOD: {unknown}"


def needed_scopes() -> set[str]:
    needed = set().union(*(SCOPES_FOR_METHOD[m] for m in slack_calls()))
    for kind, scopes in SCOPES_FOR_LISTENER.items():
        if listeners().get(kind):
            needed |= scopes
    return needed


def test_manifest_scopes_are_exactly_what_the_code_needs(manifest: dict[str, Any]) -> None:
    declared = set(manifest["oauth_config"]["scopes"]["bot"])
    needed = needed_scopes()
    assert needed - declared == set(), f"the code calls Slack methods needing {needed - declared}: declare them"
    assert declared - needed == set(), f"manifest.yaml declares {declared - needed}, which no code needs"
    assert "user" not in manifest["oauth_config"]["scopes"], "the bot needs no user-token scopes"


def test_check_compares_the_token_with_the_manifest_scopes(manifest: dict[str, Any]) -> None:
    from bot.run.doctor import MANIFEST_SCOPES

    assert sorted(MANIFEST_SCOPES) == sorted(manifest["oauth_config"]["scopes"]["bot"])


def test_manifest_routes_everything_to_the_one_bolt_endpoint(manifest: dict[str, Any]) -> None:
    features, settings = manifest["features"], manifest["settings"]
    (command,) = features["slash_commands"]
    assert command["command"] == "/notebook" and "/notebook" in listeners()["command"]
    assert command["should_escape"] is True  # `/notebook transfer NAME @person` parses <@U…> mentions
    urls = [command["url"], settings["event_subscriptions"]["request_url"], settings["interactivity"]["request_url"]]
    assert all(url == "https://BOT_URL/slack/events" for url in urls)
    assert settings["interactivity"]["is_enabled"] is True
    assert settings["socket_mode_enabled"] is False  # the HTTP (Cloud Run) variant
    assert settings["token_rotation_enabled"] is False  # the bot uses one long-lived xoxb token
    assert features["bot_user"]["display_name"]


def test_every_subscribed_event_has_a_listener_and_the_home_tab_is_drawn(manifest: dict[str, Any]) -> None:
    events = set(manifest["settings"]["event_subscriptions"]["bot_events"])
    handled = listeners().get("event", set())
    assert events <= handled, f"Slack would send {events - handled} and get no listener (Bolt answers 404)"
    home = manifest["features"]["app_home"]
    if home["home_tab_enabled"]:
        assert "app_home_opened" in events and "views.publish" in slack_calls()
    assert home["messages_tab_enabled"] is True  # reminders and approval requests are DMs
    assert home["messages_tab_read_only_enabled"] is True  # no listener reads messages


def test_the_documented_socket_mode_variant_of_the_manifest(manifest: dict[str, Any]) -> None:
    """docs/deploy.md turns manifest.yaml into its Socket Mode variant with one sed; check the result."""
    doc = (ROOT / "docs" / "deploy.md").read_text()
    match = re.search(r"(sed -E -e '[^\n]*\\\n\s*-e '[^\n]*') manifest\.yaml", doc)
    assert match, "docs/deploy.md no longer shows the sed that makes the Socket Mode manifest"
    command = match.group(1).replace("\\\n", " ")
    result = subprocess.run(
        [*shlex.split(command), str(ROOT / "manifest.yaml")], capture_output=True, text=True, check=True
    )
    socket = yaml.safe_load(result.stdout)
    assert socket["settings"]["socket_mode_enabled"] is True
    assert "https://" not in yaml.safe_dump(socket)
    assert "url" not in socket["features"]["slash_commands"][0]
    assert "request_url" not in socket["settings"]["interactivity"]
    assert "request_url" not in socket["settings"]["event_subscriptions"]
    assert socket["oauth_config"] == manifest["oauth_config"]
    assert socket["settings"]["event_subscriptions"]["bot_events"] == ["app_home_opened"]


# --- cloudbuild.yaml ----------------------------------------------------------------------------------
BUILT_IN_SUBSTITUTIONS = {
    "PROJECT_ID",
    "PROJECT_NUMBER",
    "BUILD_ID",
    "LOCATION",
    "TRIGGER_NAME",
    "COMMIT_SHA",
    "REVISION_ID",
    "SHORT_SHA",
    "REPO_NAME",
    "REPO_FULL_NAME",
    "BRANCH_NAME",
    "TAG_NAME",
    "REF_NAME",
    "TRIGGER_BUILD_CONFIG_PATH",
    "SERVICE_ACCOUNT_EMAIL",
    "SERVICE_ACCOUNT",
}
SUBSTITUTION = re.compile(r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)\}|([A-Za-z_][A-Za-z0-9_]*))")


@pytest.fixture(scope="module")
def build() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "cloudbuild.yaml").read_text())


def step(build: dict[str, Any], step_id: str) -> dict[str, Any]:
    (found,) = [s for s in build["steps"] if s.get("id") == step_id]
    return found


def text_of(value: Any) -> str:
    return " ".join(text_of(v) for v in value) if isinstance(value, list) else str(value)


def substitutions_used(build: dict[str, Any]) -> set[str]:
    used = set()
    for s in build["steps"]:
        for value in (s.get("name"), s.get("entrypoint"), *s.get("args", []), *s.get("env", [])):
            if value is None:
                continue
            text = str(value).replace("$$", "")  # $$ is a literal $ for bash, not a substitution
            used |= {a or b for a, b in SUBSTITUTION.findall(text)}
    return used


def substituted(text: str, build: dict[str, Any], **built_in: str) -> str:
    """What Cloud Build hands to the step: ${_X}/$X replaced by their values, $$ by $."""
    values = {**{k: str(v) for k, v in build["substitutions"].items()}, **built_in}

    def replace(match: re.Match[str]) -> str:
        return values[match.group(1) or match.group(2)]

    parts = text.split("$$")
    return "$".join(SUBSTITUTION.sub(replace, part) for part in parts)


def test_steps_run_in_order(build: dict[str, Any]) -> None:
    ids = [s["id"] for s in build["steps"]]
    assert ids == ["test", "build", "push", "environments", "indexes", "deploy", "scheduler"]
    assert not any("waitFor" in s for s in build["steps"])  # each step waits for the one before


def test_every_substitution_is_declared_or_built_in_and_every_declared_one_is_used(build: dict[str, Any]) -> None:
    declared = set(build["substitutions"])
    assert all(re.fullmatch(r"_[A-Z0-9_]+", name) for name in declared)
    used = substitutions_used(build)
    assert used - declared - BUILT_IN_SUBSTITUTIONS == set(), "undeclared: Cloud Build would refuse the build"
    assert declared - used == set(), "declared but unused"
    assert {"_REGION", "_SERVICE", "_ZONE", "_SCRIPTS_BUCKET", "_BOT_SA", "_SCHEDULER_SA", "_REPO"} <= declared


def test_each_step_s_bash_parses(build: dict[str, Any]) -> None:
    for s in build["steps"]:
        if s.get("entrypoint") != "bash":
            continue
        assert s["args"][0] == "-c"
        script = substituted(s["args"][1], build, PROJECT_ID="my-project", BUILD_ID="b-1")
        assert "set -euo pipefail" in script
        result = subprocess.run(["bash", "-n", "-c", script], capture_output=True, text=True)
        assert result.returncode == 0, f"step {s['id']}: {result.stderr}"


def test_tests_run_first_with_python_java_and_the_firestore_emulator(build: dict[str, Any]) -> None:
    test = step(build, "test")
    assert test["name"] == "gcr.io/google.com/cloudsdktool/google-cloud-cli:emulators"
    assert test["args"][1].rstrip().endswith("bash .ci/run")


def test_the_image_is_built_pushed_and_deployed_by_build_id(build: dict[str, Any]) -> None:
    image = "${_REGION}-docker.pkg.dev/$PROJECT_ID/${_REPO}/notebook-bot"
    assert f"--tag={image}:$BUILD_ID" in step(build, "build")["args"]
    assert image in step(build, "push")["args"]
    assert f'--image="{image}:$BUILD_ID"' in step(build, "deploy")["args"][1]


def test_environment_images_land_where_the_catalog_looks_for_them(build: dict[str, Any]) -> None:
    from bot.domain.catalog import load_catalog

    script = substituted(step(build, "environments")["args"][1], build, PROJECT_ID="{project}", BUILD_ID="b")
    assert "for dockerfile in environments/*/Dockerfile" in script
    pattern = re.search(r'image="([^"]+)/\$name"', script)
    assert pattern, script
    for name, environment in load_catalog().environments.items():
        if environment.container is None or "{project}" not in environment.container.repository:
            continue  # an image someone else publishes
        repository, _, recipe = environment.container.repository.rpartition("/")
        assert repository == pattern.group(1), f"{name}: catalog {repository} != build {pattern.group(1)}"
        assert environment.container.tag == "latest"
        if (ROOT / "environments").is_dir():
            assert (ROOT / "environments" / recipe / "Dockerfile").is_file(), f"{name}: no environments/{recipe}"


def test_deploy_keeps_cpu_a_warm_instance_secrets_and_the_environment(build: dict[str, Any]) -> None:
    script = step(build, "deploy")["args"][1]
    flags = substituted(script, build, PROJECT_ID="my-project", BUILD_ID="b-1")
    assert "--no-cpu-throttling" in flags and "--min-instances=1" in flags
    assert '--service-account="notebook-bot@my-project.iam.gserviceaccount.com"' in flags
    secrets = re.search(r'--set-secrets="([^"]+)"', flags)
    assert secrets, flags
    assert "SLACK_BOT_TOKEN=slack-bot-token:latest" in secrets.group(1).split(",")
    assert "SLACK_SIGNING_SECRET=slack-signing-secret:latest" in secrets.group(1).split(",")
    env = re.search(r'--set-env-vars="([^"]+)"', flags)
    assert env, flags
    names = {pair.split("=", 1)[0] for pair in env.group(1).split(",")}
    wanted = {"GOOGLE_CLOUD_PROJECT", "NOTEBOOK_ZONE", "NOTEBOOK_SCRIPTS_BUCKET", "NOTEBOOK_BOT_TASK_AUDIENCE"}
    assert wanted | {"NOTEBOOK_BOT_TASK_INVOKER"} <= names
    pairs = dict(pair.split("=", 1) for pair in env.group(1).split(","))
    instances = re.search(r'--max-instances="?(\d+)', flags)
    assert instances and pairs["NOTEBOOK_BOT_REPLICAS"] == instances.group(1), "Slack's share per process"
    assert "SLACK_BOT_TOKEN" not in names and "SLACK_SIGNING_SECRET" not in names  # secrets only from Secret Manager
    assert "xoxb-" not in script and "xapp-" not in script


def test_scheduler_calls_the_task_endpoint_with_an_oidc_token_for_the_bot(build: dict[str, Any]) -> None:
    script = substituted(step(build, "scheduler")["args"][1], build, PROJECT_ID="my-project", BUILD_ID="b")
    assert "gcloud scheduler jobs update http" in script and "gcloud scheduler jobs create http" in script
    assert '--uri="$url/tasks/reconcile"' in script and "--http-method=POST" in script
    assert '--oidc-service-account-email="notebook-bot-scheduler@my-project.iam.gserviceaccount.com"' in script
    assert '--oidc-token-audience="$url"' in script
    deploy = substituted(step(build, "deploy")["args"][1], build, PROJECT_ID="my-project", BUILD_ID="b")
    # The bot expects that audience and that email.
    assert "NOTEBOOK_BOT_TASK_AUDIENCE=$url" in deploy
    assert 'scheduler="notebook-bot-scheduler@my-project.iam.gserviceaccount.com"' in deploy
    assert "NOTEBOOK_BOT_TASK_INVOKER=$scheduler" in deploy


# --- Dockerfile ------------------------------------------------------------------------------------------
def dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text())
    instructions = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            instructions.append((keyword.upper(), rest.strip()))
    return instructions


def stages() -> list[list[tuple[str, str]]]:
    found: list[list[tuple[str, str]]] = []
    for instruction in dockerfile():
        if instruction[0] == "FROM":
            found.append([])
        found[-1].append(instruction)
    return found


@cache
def pyproject() -> dict[str, Any]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_the_image_installs_the_package_ci_installs() -> None:
    build_stage, _ = stages()
    runs = " && ".join(args for keyword, args in build_stage if keyword == "RUN")
    installs = [i.strip() for i in re.findall(r"pip install ([^&;]+)", runs)]
    assert installs == ["."], "the image installs this project, from its pyproject.toml, and nothing else"
    ci = (ROOT / ".ci" / "run").read_text()
    assert re.search(r"pip install (--quiet )?-e '\.\[test\]'", ci), "CI installs the same project (plus tests)"
    copied = {part for keyword, args in build_stage if keyword == "COPY" for part in args.split()[:-1]}
    assert {"pyproject.toml", "README.md"} <= copied  # README.md: pyproject's `readme`
    packages = {p.rstrip("*") for p in pyproject()["tool"]["setuptools"]["packages"]["find"]["include"]}
    assert packages <= copied, f"packages {packages - copied} would be missing from the image"
    ignored = set((ROOT / ".dockerignore").read_text().split())
    assert not (copied & ignored), ".dockerignore hides something the Dockerfile copies"


def test_the_image_runs_the_documented_command_as_a_non_root_user() -> None:
    build_stage, run_stage = stages()
    base = run_stage[0][1]
    assert base == build_stage[0][1].split(" AS ")[0], "both stages use the same Python (the venv is copied)"
    assert re.fullmatch(r"python:3\.(\d+)-slim", base)
    minor = int(re.fullmatch(r"python:3\.(\d+)-slim", base).group(1))  # type: ignore[union-attr]
    assert pyproject()["project"]["requires-python"] == ">=3.11" and minor >= 11
    keywords = dict(run_stage)
    assert keywords["ENTRYPOINT"] == '["notebook-bot"]' and keywords["CMD"] == '["serve"]'
    assert "notebook-bot" in pyproject()["project"]["scripts"]
    user = keywords["USER"].split(":")[0]
    assert user not in ("0", "root")
    run_commands = " ".join(args for keyword, args in run_stage if keyword == "RUN")
    assert "pip" not in run_commands and "apt-get install" not in run_commands  # nothing built in the final stage
    assert "COPY --from=build /venv /venv" in {f"COPY {args}" for keyword, args in run_stage if keyword == "COPY"}


def test_the_readme_points_to_the_deploy_guide() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "## Deploying" in readme and "docs/deploy.md" in readme
