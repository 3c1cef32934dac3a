"""Kicks give way to acknowledgements: the steps a request recorded start once the requests on their
way to their acknowledgement are answered (a burst is acknowledged first), never later than
HOLD_LIMIT, and a key kicked twice meanwhile runs once."""

from __future__ import annotations

import threading

from bot.run.kicks import Kicks


def test_a_kick_waits_until_the_requests_in_progress_are_acknowledged(monkeypatch) -> None:
    monkeypatch.setattr(Kicks, "HOLD_LIMIT", 60.0)
    kicks = Kicks(threads=1)
    ran = threading.Event()
    with kicks.acknowledging():
        kicks.submit("launch:a", ran.set)
        assert not ran.wait(0.3), "the kick started while a request was on its way to its acknowledgement"
    assert kicks.wait_idle() and ran.is_set()
    kicks.shutdown()


def test_a_key_kicked_again_while_it_waits_runs_once(monkeypatch) -> None:
    monkeypatch.setattr(Kicks, "HOLD_LIMIT", 60.0)
    kicks = Kicks(threads=2)
    runs: list[str] = []
    with kicks.acknowledging():
        for key in ("launch:a", "launch:a", "launch:b"):
            kicks.submit(key, lambda key=key: runs.append(key))
    assert kicks.wait_idle()
    assert sorted(runs) == ["launch:a", "launch:b"]
    kicks.shutdown()


def test_requests_that_never_stop_coming_do_not_starve_the_kicks(monkeypatch) -> None:
    monkeypatch.setattr(Kicks, "HOLD_LIMIT", 0.2)
    kicks = Kicks(threads=1)
    ran = threading.Event()
    with kicks.acknowledging():  # still in progress when the kick starts
        kicks.submit("launch:a", ran.set)
        assert ran.wait(30), "the kick should start after HOLD_LIMIT whatever the requests do"
    kicks.shutdown()
