"""The bucket-mount post-startup script: what is accepted, what it renders to, and what it does
when bash runs it (in a temp directory, with stub gcsfuse/mkdir/chown/id/mountpoint as the only
commands on PATH, each recording its arguments)."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from bot.adapters.startup import MOUNT_ROOT, object_name, render_script
from bot.domain.buckets import Mount, parse_mount, parse_mounts
from bot.domain.catalog import load_catalog
from bot.domain.errors import UserError
from bot.domain.spec import SpecBounds, parse_request, resolve

BASH = shutil.which("bash") or "/bin/bash"
UID, GID = "1000", "1001"
SEP, END = "\x1f", "\x1e"
STUB_RECORD = f'printf \'%s{SEP}\' "$STUB_NAME" "$@" >> "$STUB_LOG"; printf \'{END}\' >> "$STUB_LOG"'
STUBS = {
    "gcsfuse": """
for arg in "$@"; do [ "$arg" = "${STUB_FAIL_BUCKET:-}" ] && exit 1; done
printf '%s\\n' "${@: -1}" >> "$STUB_MOUNTS"
""",
    "mountpoint": """
while IFS= read -r mounted; do [ "$mounted" = "${@: -1}" ] && exit 0; done < "$STUB_MOUNTS"
exit 1
""",
    "id": f"""
[ "${{2:-}}" = jupyter ] || exit 1
[ "$1" = -u ] && echo {UID} || echo {GID}
""",
    "mkdir": "",
    "chown": "",
}


class Sandbox:
    """Runs scripts under bash with only the stubs on PATH; `calls` are what the stubs were asked."""

    def __init__(self, root: Path, without: tuple[str, ...] = ()) -> None:
        self.root = root
        self.bin = root / "bin"
        self.work = root / "work"
        self.log = root / "calls.log"
        self.mounts = root / "mounts"
        for path in (self.bin, self.work):
            path.mkdir()
        self.log.write_text("")
        self.mounts.write_text("")
        for name, body in STUBS.items():
            if name in without:
                continue
            stub = self.bin / name
            stub.write_text(f"#!{BASH}\nSTUB_NAME={name}\n{STUB_RECORD}\n{body}")
            stub.chmod(0o755)

    def run(self, script: str, **env: str) -> subprocess.CompletedProcess[str]:
        path = self.root / "post-startup.sh"
        path.write_text(script)
        environment = {"PATH": str(self.bin), "STUB_LOG": str(self.log), "STUB_MOUNTS": str(self.mounts), **env}
        return subprocess.run(
            [BASH, str(path)], cwd=self.work, env=environment, capture_output=True, text=True, timeout=30
        )

    def calls(self, name: str | None = None) -> list[list[str]]:
        records = [r.split(SEP)[:-1] for r in self.log.read_text().split(END) if r]
        return [r for r in records if name is None or r[0] == name]

    def reboot(self) -> None:
        self.mounts.write_text("")
        self.log.write_text("")


def run_script(script: str, root: Path) -> tuple[subprocess.CompletedProcess[str], Sandbox]:
    sandbox = Sandbox(root)
    return sandbox.run(script), sandbox


def mount_calls(bucket: str, directory: str | None = None) -> list[list[str]]:
    """What the script asks of the system to mount one bucket (after `id`)."""
    target = f"{MOUNT_ROOT}/{bucket}"
    only_dir = [f"--only-dir={directory}"] if directory else []
    return [
        ["mountpoint", "-q", target],
        ["mkdir", "-p", target],
        ["chown", f"{UID}:{GID}", "/home/jupyter/mounted", MOUNT_ROOT, target],
        ["gcsfuse", "--implicit-dirs", "-o", "allow_other", f"--uid={UID}", f"--gid={GID}", *only_dir, bucket, target],
    ]


ID_CALLS = [["id", "-u", "jupyter"], ["id", "-g", "jupyter"]]


# --- names ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "raw, expected",
    [
        ("my-data", Mount("my-data")),
        ("my-data/training", Mount("my-data", "training")),
        ("My-Data/Training/2024", Mount("my-data", "Training/2024")),
        ("my_data.example.com/a/b/", Mount("my_data.example.com", "a/b")),
        ("abc/", Mount("abc")),
        ("a1b/données-é", Mount("a1b", "données-é")),
    ],
)
def test_bucket_names_and_directories_that_are_accepted(raw: str, expected: Mount) -> None:
    assert parse_mount(raw) == expected


@pytest.mark.parametrize(
    "raw, reason",
    [
        ("ab", "at least 3 characters"),
        ("a" * 64, "at most 63 characters"),
        ("-data", "starts and ends with a letter or digit"),
        ("data-", "starts and ends with a letter or digit"),
        ("my'data", "only lowercase letters"),
        ('my"data', "only lowercase letters"),
        ("my;data", "only lowercase letters"),
        ("$(reboot)", "only lowercase letters"),
        ("`reboot`", "only lowercase letters"),
        ("my data", "only lowercase letters"),
        ("data\nrm", "only lowercase letters"),
        ("a..b", "each dot-separated part"),
        ("..", "at least 3 characters"),
        ("192.168.1.10", "IP address"),
        ("goog-data", "`goog`"),
        ("my-g00gle-data", "`google`"),
        ("", "empty"),
        ("/training", "empty"),
        ("data/../etc", "`.` or `..`"),
        ("data/..", "`.` or `..`"),
        ("data/./x", "`.` or `..`"),
        ("data//x", "`//`"),
        ("data/x\ny", "line breaks"),
        ("data/x\ry", "line breaks"),
        ("data/x\ty", "spaces"),
        ("data/x\x00y", "control characters"),
        ("data/x\u200by", "control characters"),
        ("data/a*b", "`*`"),
        ("data/a#b", "`#`"),
        ("data/[x]", "`[`"),
        ("data/.well-known/acme-challenge/x", "reserved"),
        ("data/" + "x" * 1025, "1024 bytes"),
    ],
)
def test_names_against_cloud_storage_rules_are_refused_on_the_bucket_field(raw: str, reason: str) -> None:
    with pytest.raises(UserError) as caught:
        parse_mount(raw)
    assert caught.value.field == "bucket"
    assert reason in caught.value.message
    assert "\n" not in caught.value.message and "\r" not in caught.value.message


def test_the_grammar_refuses_bad_buckets_before_anything_else_happens() -> None:
    for text in ("bucket=my;data", "bucket=$(reboot)", "bucket=data/../x", "bucket=goog"):
        with pytest.raises(UserError) as caught:
            parse_request(text)
        assert caught.value.field == "bucket", text
    request = parse_request("bucket=My-Data/Training bucket=other/")
    assert request.buckets == ("my-data/Training", "other")


def test_several_buckets_but_each_once() -> None:
    assert parse_mounts(["a-1", "b-2/x", "c-3"]) == (Mount("a-1"), Mount("b-2", "x"), Mount("c-3"))
    with pytest.raises(UserError, match="would both mount at `data`"):
        parse_mounts(["data/a", "data/b"])
    with pytest.raises(UserError, match="at most 10"):
        parse_mounts([f"bucket-{n}" for n in range(11)])


def test_resolve_checks_buckets_even_when_a_request_was_built_by_hand() -> None:
    from bot.domain.spec import NotebookRequest

    bounds = SpecBounds()
    catalog = load_catalog()
    from datetime import date

    spec = resolve(parse_request("bucket=my-data/x"), catalog, bounds, date(2026, 1, 1))
    assert spec.buckets == ("my-data/x",)
    with pytest.raises(UserError) as caught:
        resolve(NotebookRequest(buckets=("bad'name",)), catalog, bounds, date(2026, 1, 1))
    assert caught.value.field == "bucket"


# --- the rendered script ----------------------------------------------------------------------------
def test_rendering_is_deterministic_and_content_addressed() -> None:
    one = render_script(["my-data/training", "other"])
    assert one == render_script([Mount("my-data", "training"), "other"])
    assert object_name(one) == object_name(render_script(["my-data/training", "other"]))
    assert object_name(one) != object_name(render_script(["my-data/training"]))
    assert re.fullmatch(r"notebook-bot/post-startup/[0-9a-f]{64}\.sh", object_name(one))
    assert one.startswith("#!/bin/bash\n")


def test_rendering_refuses_what_the_grammar_refuses() -> None:
    for hostile in ("x;reboot", "data/a\nreboot", "data/../../etc", "$(id)"):
        with pytest.raises(UserError):
            render_script([hostile])
    with pytest.raises(ValueError):
        render_script([])


HOSTILE_DIRECTORIES = [
    "a'b",
    'a"b',
    "a;echo${IFS}x>pwned1;b",
    "$(echo${IFS}x>pwned2)",
    "`echo${IFS}x>pwned3`",
    "x'$(echo${IFS}x>pwned4)'y",
    'x"$(echo${IFS}x>pwned5)"y',
    "a&&echo>pwned6",
    "a|tee${IFS}pwned7",
    "${HOME}~!%s\\n\\",
    "-rf",
    "--only-dir=/etc",
]


@pytest.mark.parametrize("directory", HOSTILE_DIRECTORIES)
def test_user_values_stay_two_quoted_arguments(directory: str, tmp_path: Path) -> None:
    """Only the bucket and the directory vary between scripts, each as one literal argument."""
    script = render_script([f"my-data/{directory}"])
    benign = render_script(["my-data/training"])
    varying = [line for line in script.splitlines() if line not in benign.splitlines()]
    assert len(varying) == 1 and len(script.splitlines()) == len(benign.splitlines())
    assert shlex.split(varying[0]) == ["mount_bucket", "my-data", directory, "||", "failed=1"]
    assert subprocess.run([BASH, "-n"], input=script, text=True, capture_output=True).returncode == 0

    result, sandbox = run_script(script, tmp_path)
    assert result.returncode == 0, result.stderr
    assert sandbox.calls() == ID_CALLS + mount_calls("my-data", directory)
    assert list(sandbox.work.iterdir()) == [], "nothing was executed from the user's text"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bin", "calls.log", "mounts", "post-startup.sh", "work"]


def test_the_script_mounts_the_bucket_directory_for_the_jupyter_user(tmp_path: Path) -> None:
    result, sandbox = run_script(render_script(["my-data/training"]), tmp_path)
    assert result.returncode == 0, result.stderr
    assert sandbox.calls() == ID_CALLS + mount_calls("my-data", "training")
    assert "mounted gs://my-data/training at /home/jupyter/mounted/gcs/my-data" in result.stderr


def test_several_buckets_are_mounted_in_order_and_a_whole_bucket_has_no_only_dir(tmp_path: Path) -> None:
    result, sandbox = run_script(render_script(["my-data/training", "shared-models", "logs.example.com/a/b"]), tmp_path)
    assert result.returncode == 0, result.stderr
    assert sandbox.calls() == (
        ID_CALLS
        + mount_calls("my-data", "training")
        + mount_calls("shared-models")
        + mount_calls("logs.example.com", "a/b")
    )


def test_every_start_mounts_again_and_a_mounted_bucket_is_left_alone(tmp_path: Path) -> None:
    sandbox = Sandbox(tmp_path)
    script = render_script(["my-data", "other-data"])
    assert sandbox.run(script).returncode == 0
    assert len(sandbox.calls("gcsfuse")) == 2

    sandbox.log.write_text("")  # run again without a restart: both are still mounted
    again = sandbox.run(script)
    assert again.returncode == 0 and sandbox.calls("gcsfuse") == [] and sandbox.calls("mkdir") == []
    assert "is already mounted" in again.stderr

    sandbox.reboot()  # a stop and start: mounts are gone, the script runs again (run_every_start)
    assert sandbox.run(script).returncode == 0
    assert len(sandbox.calls("gcsfuse")) == 2


def test_one_failing_mount_does_not_stop_the_others_but_fails_the_script(tmp_path: Path) -> None:
    sandbox = Sandbox(tmp_path)
    result = sandbox.run(render_script(["broken-one", "good-one"]), STUB_FAIL_BUCKET="broken-one")
    assert result.returncode == 1
    assert [c[-2] for c in sandbox.calls("gcsfuse")] == ["broken-one", "good-one"]
    assert "could not mount gs://broken-one" in result.stderr


def test_without_gcsfuse_nothing_is_touched(tmp_path: Path) -> None:
    sandbox = Sandbox(tmp_path, without=("gcsfuse",))
    result = sandbox.run(render_script(["my-data"]))
    assert result.returncode == 1 and "gcsfuse is not installed" in result.stderr
    assert sandbox.calls() == []


def test_without_a_jupyter_user_nothing_is_mounted(tmp_path: Path) -> None:
    sandbox = Sandbox(tmp_path)
    script = render_script(["my-data"]).replace("jupyter_user=jupyter", "jupyter_user=nobody-here")
    result = sandbox.run(script)
    assert result.returncode == 1 and "there is no user" in result.stderr
    assert sandbox.calls("gcsfuse") == [] and sandbox.calls("mkdir") == []
