"""The emulator fixtures work with the real Google Cloud clients."""

from __future__ import annotations

import os
import uuid

import pytest
from google.api_core.exceptions import NotFound
from google.auth.credentials import AnonymousCredentials
from google.cloud import firestore, storage

from tests.support.emulators import new_project_id, reset_firestore


def test_firestore_transaction_and_in_query_round_trip(firestore_host: str, firestore_project: str) -> None:
    assert os.environ["FIRESTORE_EMULATOR_HOST"] == firestore_host
    db = firestore.Client(project=firestore_project)
    things = db.collection("things")
    for key, state in [("a", "ready"), ("b", "failed"), ("c", "creating")]:
        things.document(key).set({"state": state, "n": 0})

    @firestore.transactional
    def bump(transaction: firestore.Transaction, ref: firestore.DocumentReference) -> int:
        n = ref.get(transaction=transaction).get("n") + 1
        transaction.update(ref, {"n": n})
        return n

    assert bump(db.transaction(), things.document("a")) == 1
    assert bump(db.transaction(), things.document("a")) == 2
    assert things.document("a").get().to_dict() == {"state": "ready", "n": 2}

    found = things.where(filter=firestore.FieldFilter("state", "in", ["ready", "creating"])).stream()
    assert sorted(doc.id for doc in found) == ["a", "c"]


def test_projects_do_not_see_each_others_documents(firestore_host: str, firestore_project: str) -> None:
    other_project = new_project_id()
    assert other_project != firestore_project
    mine = firestore.Client(project=firestore_project).collection("things")
    theirs = firestore.Client(project=other_project).collection("things")

    mine.document("x").set({"owner": "me"})
    assert not theirs.document("x").get().exists
    assert list(theirs.stream()) == []
    theirs.document("x").set({"owner": "them"})
    assert mine.document("x").get().to_dict() == {"owner": "me"}

    reset_firestore(firestore_host, other_project)
    assert not theirs.document("x").get().exists
    assert mine.document("x").get().to_dict() == {"owner": "me"}


def test_each_test_starts_with_an_empty_project(firestore_project: str) -> None:
    assert list(firestore.Client(project=firestore_project).collection("things").stream()) == []


@pytest.fixture
def gcs(storage_host: str) -> storage.Client:
    assert os.environ["STORAGE_EMULATOR_HOST"] == storage_host
    return storage.Client(project="test", credentials=AnonymousCredentials())


def test_gcs_upload_and_download_round_trip(gcs: storage.Client) -> None:
    bucket = gcs.create_bucket(f"bucket-{uuid.uuid4().hex[:8]}")
    bucket.blob("dir/hello.txt").upload_from_string(b"hello\x00world", content_type="application/octet-stream")

    again = gcs.bucket(bucket.name)
    again.reload()
    assert again.blob("dir/hello.txt").download_as_bytes() == b"hello\x00world"
    assert [blob.name for blob in gcs.list_blobs(bucket.name, prefix="dir/")] == ["dir/hello.txt"]


def test_gcs_missing_bucket_is_not_found(gcs: storage.Client) -> None:
    with pytest.raises(NotFound):
        gcs.bucket(f"missing-{uuid.uuid4().hex[:8]}").reload()
