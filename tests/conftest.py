"""Shared fixtures. Emulators start once per session, and only for tests that ask for them."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from bot.adapters.firestore import FirestoreStore
from tests.support.emulators import firestore_emulator, new_project_id, storage_emulator


@pytest.fixture(scope="session")
def firestore_host() -> Iterator[str]:
    """A Firestore emulator for the session; FIRESTORE_EMULATOR_HOST points at it meanwhile."""
    with firestore_emulator() as host, pytest.MonkeyPatch.context() as env:
        env.setenv("FIRESTORE_EMULATOR_HOST", host)
        yield host


@pytest.fixture
def firestore_project(firestore_host: str) -> str:
    """A project id of this test's own: `firestore.Client(project=firestore_project)` starts empty."""
    return new_project_id()


@pytest.fixture
def store(firestore_project: str) -> FirestoreStore:
    """The bot's store on this test's own (empty) Firestore emulator project."""

    return FirestoreStore.connect(firestore_project)


@pytest.fixture(scope="session")
def storage_host() -> Iterator[str]:
    """A Cloud Storage emulator for the session; STORAGE_EMULATOR_HOST points at it meanwhile.
    Buckets are shared by the whole session: give each test bucket names of its own."""
    with storage_emulator() as url, pytest.MonkeyPatch.context() as env:
        env.setenv("STORAGE_EMULATOR_HOST", url)
        yield url


@pytest.fixture
def configured_bot(firestore_project, monkeypatch, tmp_path) -> Iterator[Callable[..., object]]:
    """`make(config_text, start)`: a Bot with that TOML config on this test's Firestore project, its
    clock at `start`, its store a DyingStore (counted, and able to lose a batch of record writes)."""

    from bot.run.config import load_config
    from tests.harness import Bot
    from tests.support.store_calls import DyingStore

    bots: list[Bot] = []

    def make(config_text: str, start: float) -> Bot:
        config = tmp_path / "config.toml"
        config.write_text(config_text)
        store = DyingStore(FirestoreStore.connect(firestore_project))
        bot = Bot(store, monkeypatch, config=load_config(config)).__enter__()
        bot.clock.now = start
        bots.append(bot)
        return bot

    yield make
    for bot in bots:
        bot.__exit__(None, None, None)
