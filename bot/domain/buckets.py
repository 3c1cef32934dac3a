"""Cloud Storage buckets a notebook mounts: `bucket=NAME` or `bucket=NAME/DIR`.

`parse_mount` checks what a person typed against Cloud Storage's naming rules before anything
is rendered or recorded; the startup script (bot/adapters/startup.py) is built only from Mounts, so a
bucket name and a directory are the only two things a user's text can put into it.
`BucketChecker` asks Cloud Storage whether the bot can read each bucket's metadata in the launch's
reserve step (a worker, not the request path), so a missing or forbidden bucket fails the launch
with the reason before a name or a quota is taken or anything is created.
The storage client is built on first use (see bot/run/services.py on cold starts).
"""

from __future__ import annotations

import ipaddress
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from bot.adapters.lazy import Lazy
from bot.domain.errors import UserError

MAX_MOUNTS = 10
MAX_DIRECTORY_BYTES = 1024
BUCKET_CHARS = re.compile(r"^[a-z0-9][a-z0-9._-]*[a-z0-9]$")
GOOGLE_LOOKALIKE = re.compile(r"g[o0]{2}g[l1]e")
AVOIDED_IN_OBJECT_NAMES = set("#[]*?")  # Cloud Storage advises against these in object names
EXAMPLE = "e.g. `bucket=my-data` or `bucket=my-data/training`"


@dataclass(frozen=True)
class Mount:
    """A bucket, or one directory of it, to mount at MOUNT_ROOT/bucket."""

    bucket: str
    directory: str | None = None

    def __str__(self) -> str:
        return f"{self.bucket}/{self.directory}" if self.directory else self.bucket


def parse_mount(raw: str) -> Mount:
    """`NAME` or `NAME/DIR` -> Mount, checked against Cloud Storage's naming rules (UserError if not)."""
    bucket, _, directory = raw.partition("/")
    bucket = bucket.lower()  # bucket names are lowercase; the directory keeps its case
    problem = bucket_name_problem(bucket)
    if problem:
        raise UserError(
            f"`{_shown(raw)}` can't be mounted: {problem} ({EXAMPLE}).",
            field="bucket",
        )
    directory = directory.rstrip("/")
    if directory:
        problem = directory_problem(directory)
        if problem:
            raise UserError(f"`{_shown(raw)}` can't be mounted: {problem} ({EXAMPLE}).", field="bucket")
    return Mount(bucket, directory or None)


def parse_mounts(raws: Iterable[str]) -> tuple[Mount, ...]:
    """Every `bucket=` of one launch; one mount per bucket, since each mounts at its bucket's name."""
    mounts = tuple(parse_mount(raw) for raw in raws)
    if len(mounts) > MAX_MOUNTS:
        raise UserError(f"A notebook mounts at most {MAX_MOUNTS} buckets; you gave {len(mounts)}.", field="bucket")
    seen: dict[str, Mount] = {}
    for mount in mounts:
        if mount.bucket in seen:
            raise UserError(
                f"`{seen[mount.bucket]}` and `{mount}` would both mount at `{mount.bucket}`: give each bucket "
                "once (mount the bucket itself to see all of its directories).",
                field="bucket",
            )
        seen[mount.bucket] = mount
    return mounts


def normalize(raws: Iterable[str]) -> tuple[str, ...]:
    """The canonical `bucket=` values (lowercase bucket, no trailing slash), checked."""
    return tuple(str(m) for m in parse_mounts(raws))


def bucket_name_problem(name: str) -> str | None:
    """What breaks Cloud Storage's bucket naming rules in `name`, or None."""
    if not name:
        return "the bucket name is empty"
    if len(name) < 3:
        return "a bucket name has at least 3 characters"
    if len(name) > (222 if "." in name else 63):
        return "a bucket name has at most 63 characters (222 if it has dots)"
    if not BUCKET_CHARS.match(name):
        return (
            "a bucket name has only lowercase letters, digits, `-`, `_` and `.`, "
            "and starts and ends with a letter or digit"
        )
    if any(not part or len(part) > 63 for part in name.split(".")):
        return "each dot-separated part of a bucket name has 1 to 63 characters"
    try:
        ipaddress.IPv4Address(name)
    except ValueError:
        pass
    else:
        return "a bucket name can't be an IP address"
    if name.startswith("goog") or GOOGLE_LOOKALIKE.search(name):
        return "a bucket name can't start with `goog` or contain `google` (or a look-alike)"
    return None


def directory_problem(directory: str) -> str | None:
    """What makes `directory` unusable as a directory (object-name prefix) to mount, or None."""
    if len(directory.encode()) > MAX_DIRECTORY_BYTES:
        return f"a directory name has at most {MAX_DIRECTORY_BYTES} bytes"
    for ch in directory:
        if ch.isspace() or unicodedata.category(ch)[0] == "C":
            return "a directory name can't contain spaces, line breaks or control characters"
        if ch in AVOIDED_IN_OBJECT_NAMES:
            return f"a directory name can't contain `{ch}`"
    parts = directory.split("/")
    if any(part == "" for part in parts):
        return "a directory name can't contain `//` or start with `/`"
    if any(part in (".", "..") for part in parts):
        return "a directory name can't contain `.` or `..` as a path part"
    if directory.startswith(".well-known/acme-challenge"):
        return "`.well-known/acme-challenge/` is reserved by Cloud Storage"
    return None


def _shown(raw: str) -> str:
    """The user's text, safe to quote back in Slack markdown (no backticks or line breaks)."""
    text = "".join(ch if ch.isprintable() and ch != "`" else "�" for ch in raw)
    return text if len(text) <= 80 else text[:77] + "…"


# --- Cloud Storage -----------------------------------------------------------------------------
class Storage:
    """A google-cloud-storage Client built on first use. STORAGE_EMULATOR_HOST is honoured by the
    library itself (anonymous credentials, plain HTTP)."""

    def __init__(self, project: str | None) -> None:
        self.project = project
        self._client: Lazy[Any] = Lazy(self._build)

    def _build(self) -> Any:
        from google.cloud import storage

        return storage.Client(project=self.project)

    @property
    def client(self) -> Any:
        return self._client.get()


class BucketChecker:
    """Refuses a launch whose buckets the bot can't read (UserError, field "bucket"), before it reserves.

    Reading a bucket's metadata (storage.buckets.get) is the check: it tells a missing bucket from a
    forbidden one. The notebook's own service account mounts the bucket, so this is a strong hint,
    not a proof, that the mount will work.
    """

    TIMEOUT = 5.0  # per bucket

    def __init__(self, storage: Storage, scripts_bucket: str | None) -> None:
        self.storage = storage
        self.scripts_bucket = scripts_bucket

    def check_setup(self, spec: Any) -> None:
        """The request path's part: whether this bot can mount buckets at all (no call anywhere)."""
        if spec.buckets and not self.scripts_bucket:
            raise UserError(
                "Mounting buckets isn't set up on this bot yet, so I can't launch with `bucket=`. "
                "An admin must set NOTEBOOK_SCRIPTS_BUCKET to a Cloud Storage bucket the bot can write "
                "startup scripts to (and the notebooks' service account can read). Launch without "
                "`bucket=` meanwhile.",
                field="bucket",
            )

    def __call__(self, spec: Any) -> None:
        """The launch's reserve step: every bucket readable (asks Cloud Storage, so not before the ack)."""
        self.check_setup(spec)
        for mount in parse_mounts(spec.buckets):
            self.check(mount.bucket)

    def check(self, bucket: str) -> None:
        from google.api_core import exceptions as g
        from google.auth.exceptions import GoogleAuthError

        try:
            self.storage.client.bucket(bucket).reload(timeout=self.TIMEOUT)
        except g.NotFound:
            raise UserError(
                f"The bucket `{bucket}` doesn't exist (or was deleted). Check its name in the Cloud "
                "Console's Cloud Storage page, then launch again.",
                field="bucket",
            ) from None
        except (g.Forbidden, g.Unauthorized):
            raise UserError(
                f"I'm not allowed to read the bucket `{bucket}`, so the notebook couldn't mount it either. "
                "Ask the bucket's owner or an admin to grant the bot's service account "
                "roles/storage.bucketViewer (or roles/storage.legacyBucketReader) on it, and the "
                "notebooks' service account roles/storage.objectUser (or objectViewer to read only).",
                field="bucket",
            ) from None
        except (g.GoogleAPICallError, g.RetryError, GoogleAuthError, OSError) as exc:
            raise UserError(
                f"I couldn't check the bucket `{bucket}` just now ({type(exc).__name__}); try again in a minute.",
                field="bucket",
            ) from None
