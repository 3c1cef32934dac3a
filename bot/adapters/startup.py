"""The post-startup script that mounts a notebook's buckets, rendered and uploaded to GCS.

Workbench instances run `post-startup-script` (a gs:// URI) as root; with
`post-startup-script-behavior=run_every_start` they run it on every start, so the buckets are
mounted again after each stop/start. The script is stored under a name derived from its content
(same buckets, same object), in NOTEBOOK_SCRIPTS_BUCKET.

Only two values from a user reach the script: each bucket's name and directory, checked against
Cloud Storage's naming rules (bot/domain/buckets.py) and then shell-quoted as single arguments of one
function call each. Everything else in the script is fixed text.
"""

from __future__ import annotations

import hashlib
import shlex
from collections.abc import Iterable

from bot.adapters.workbench import WorkbenchError
from bot.domain.buckets import Mount, Storage, parse_mounts
from bot.domain.catalog import Catalog
from bot.domain.errors import UserError
from bot.domain.spec import NotebookSpec

MOUNT_ROOT = "/home/jupyter/mounted/gcs"
JUPYTER_USER = "jupyter"
OBJECT_PREFIX = "notebook-bot/post-startup/"
BEHAVIOR = "run_every_start"

_HEAD = f"""#!/bin/bash
# Rendered by notebook-bot: mounts Cloud Storage buckets with gcsfuse at {MOUNT_ROOT}/BUCKET,
# owned by the {JUPYTER_USER} user, on every start of the notebook (post-startup-script-behavior
# {BEHAVIOR}). Its object name is its SHA-256: do not edit it in place.
set -u

mount_root={MOUNT_ROOT}
jupyter_user={JUPYTER_USER}

log() {{
  echo "notebook-bot: $*" >&2
}}

# mount_bucket BUCKET [DIRECTORY]: mount the bucket (or only that directory of it) at mount_root/BUCKET.
mount_bucket() {{
  local bucket="$1" directory="${{2:-}}"
  local target="$mount_root/$bucket"
  if mountpoint -q "$target"; then
    log "$target is already mounted"
    return 0
  fi
  mkdir -p "$target" || return 1
  chown "$uid:$gid" "${{mount_root%/*}}" "$mount_root" "$target" || return 1
  local options=(--implicit-dirs -o allow_other --uid="$uid" --gid="$gid")
  if [ -n "$directory" ]; then
    options+=(--only-dir="$directory")
  fi
  if gcsfuse "${{options[@]}}" "$bucket" "$target"; then
    log "mounted gs://$bucket${{directory:+/$directory}} at $target"
  else
    log "could not mount gs://$bucket${{directory:+/$directory}} at $target"
    return 1
  fi
}}

if ! command -v gcsfuse >/dev/null 2>&1; then
  log "gcsfuse is not installed on this image; no bucket is mounted"
  exit 1
fi
if ! uid="$(id -u "$jupyter_user")" || ! gid="$(id -g "$jupyter_user")"; then
  log "there is no user $jupyter_user; no bucket is mounted"
  exit 1
fi

failed=0
"""

_TAIL = """exit "$failed"
"""


def render_script(buckets: Iterable[str | Mount]) -> str:
    """The bash script mounting these buckets (`NAME` or `NAME/DIR` strings, checked again here)."""
    mounts = parse_mounts(str(b) for b in buckets)
    if not mounts:
        raise ValueError("a post-startup script needs at least one bucket")
    calls = []
    for mount in mounts:
        args = [mount.bucket] + ([mount.directory] if mount.directory else [])
        calls.append("mount_bucket " + " ".join(shlex.quote(a) for a in args) + " || failed=1\n")
    return _HEAD + "".join(calls) + _TAIL


def object_name(script: str) -> str:
    """Content-addressed: the same script is always the same object."""
    return f"{OBJECT_PREFIX}{hashlib.sha256(script.encode()).hexdigest()}.sh"


class StartupScripts:
    """Launcher's `prepare_metadata`: uploads a launch's mount script and points the instance at it."""

    def __init__(self, storage: Storage, scripts_bucket: str | None, catalog: Catalog | None = None) -> None:
        self.storage = storage
        self.scripts_bucket = scripts_bucket
        self.catalog = catalog

    def metadata(self, spec: NotebookSpec) -> dict[str, str]:
        if not spec.buckets:
            return {}
        if not self.scripts_bucket:
            raise WorkbenchError(
                "invalid",
                "This notebook mounts buckets, but NOTEBOOK_SCRIPTS_BUCKET is not set any more, so the bot "
                "has nowhere to put the mount script. An admin must set it; then launch again.",
            )
        try:
            script = render_script(spec.buckets)
        except UserError as exc:  # a launch recorded before today's naming rules: say so, don't retry
            raise WorkbenchError("invalid", exc.message) from None
        metadata = {
            "post-startup-script": self.upload(script),
            "post-startup-script-behavior": BEHAVIOR,
        }
        environment = self.catalog.environments.get(spec.environment) if self.catalog else None
        if environment is not None and environment.container is not None:
            metadata["container-allow-fuse"] = "true"  # gives the container /dev/fuse for gcsfuse
        return metadata

    def upload(self, script: str) -> str:
        """Store the script (once) and return its gs:// URI. Raises WorkbenchError explained for people."""
        from google.api_core import exceptions as g
        from google.auth.exceptions import GoogleAuthError

        name = object_name(script)
        uri = f"gs://{self.scripts_bucket}/{name}"
        blob = self.storage.client.bucket(self.scripts_bucket).blob(name)
        try:
            # if_generation_match=0: write only if absent; the content is the name, so present is done.
            blob.upload_from_string(script.encode(), content_type="text/x-shellscript", if_generation_match=0)
        except g.PreconditionFailed:
            pass
        except g.NotFound:
            raise WorkbenchError(
                "not_found",
                f"The scripts bucket `{self.scripts_bucket}` (NOTEBOOK_SCRIPTS_BUCKET) does not exist. An admin "
                "must create it or fix the setting.",
            ) from None
        except (g.Forbidden, g.Unauthorized):
            raise WorkbenchError(
                "permission",
                f"The bot's service account may not write to the scripts bucket `{self.scripts_bucket}`. An "
                "admin must grant it roles/storage.objectCreator there (and the notebooks' service account "
                "roles/storage.objectViewer, to read the script).",
            ) from None
        except (g.GoogleAPICallError, g.RetryError, GoogleAuthError, OSError) as exc:
            raise WorkbenchError(
                "unavailable", f"Cloud Storage could not take the mount script ({exc}).", retriable=True
            ) from None
        return uri
