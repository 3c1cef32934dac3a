"""The Slack fake serves files_upload_v2 as Slack does (its three steps, the files:write scope), so the
digest's chart upload is exercised through slack_sdk's real client."""

from __future__ import annotations

import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.adapters.notify import Slack
from bot.sim.slack_api import DEFAULT_SCOPES, SlackSimulator


def test_an_upload_is_shared_in_the_channel_with_its_comment() -> None:
    with SlackSimulator() as sim:
        slack = Slack(WebClient(token=sim.bot_token, base_url=sim.base_url))
        file_id = slack.upload("C0COSTS", b"\x89PNG-bytes", filename="c.png", title="Chart", comment="Hi", alt_text="A")

        [uploaded] = sim.files()
        assert (uploaded.id, uploaded.data, uploaded.title, uploaded.channels) == (
            file_id,
            b"\x89PNG-bytes",
            "Chart",
            ("C0COSTS",),
        )
        assert [c.method for c in sim.calls()] == [
            "files.getUploadURLExternal",
            "upload",
            "files.completeUploadExternal",
        ]
        [message] = sim.messages("C0COSTS")
        assert message.text == "Hi" and message.files == [file_id]


def test_without_files_write_the_upload_is_refused_and_nothing_is_shared() -> None:
    scopes = tuple(s for s in DEFAULT_SCOPES if s != "files:write")
    with SlackSimulator(scopes=scopes) as sim:
        slack = Slack(WebClient(token=sim.bot_token, base_url=sim.base_url))
        with pytest.raises(SlackApiError) as refused:
            slack.upload("C0COSTS", b"png", filename="c.png", title="t", comment="c", alt_text="a")
        assert refused.value.response["error"] == "missing_scope" and refused.value.response["needed"] == "files:write"
        assert sim.files() == [] and sim.messages() == []


def test_completing_an_upload_whose_bytes_never_arrived_is_refused() -> None:
    with SlackSimulator() as sim:
        client = WebClient(token=sim.bot_token, base_url=sim.base_url)
        started = client.files_getUploadURLExternal(filename="c.png", length=3)
        with pytest.raises(SlackApiError) as refused:
            client.files_completeUploadExternal(files=[{"id": started["file_id"]}], channel_id="C0COSTS")
        assert refused.value.response["error"] == "file_not_found" and sim.messages() == []
