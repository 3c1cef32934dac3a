"""The baseline for cold_start.py: a bare Bolt app that acknowledges /notebook and nothing else."""

import os

from slack_bolt import App
from slack_bolt.adapter.wsgi import SlackRequestHandler
from slack_sdk import WebClient

app = App(
    client=WebClient(token=os.environ["SLACK_BOT_TOKEN"], base_url=os.environ["SLACK_API_URL"]),
    signing_secret=os.environ["SLACK_SIGNING_SECRET"],
)


@app.command("/notebook")
def notebook(ack):
    ack()


wsgi = SlackRequestHandler(app)
