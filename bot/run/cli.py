"""`notebook-bot VERB`: serve, socket, reconcile, sandbox."""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING

from bot.run.settings import ConfigError, Settings

if TYPE_CHECKING:
    from bot.run.services import Services


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="notebook-bot", description="Self-service Jupyter on Google Cloud, from Slack."
    )
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")
    verbs.add_parser("serve", help="HTTP mode on $PORT: /slack/events, /healthz, /tasks/reconcile")
    verbs.add_parser("socket", help="Socket Mode (needs SLACK_APP_TOKEN)")
    verbs.add_parser("reconcile", help="run one reconcile + reminder pass and exit")
    verbs.add_parser("check", help="check config, Google permissions and the Slack token; exit 1 if anything fails")
    catalog = verbs.add_parser("catalog", help="the catalog of environments, GPUs and machine types")
    catalog_verbs = catalog.add_subparsers(dest="catalog_verb", required=True, metavar="ACTION")
    catalog_check = catalog_verbs.add_parser(
        "check", help="check the shipped catalog plus the config's [catalog]; problems as file:line, exit 2"
    )
    catalog_check.add_argument("--config", help="the config file (default: $NOTEBOOK_BOT_CONFIG)")
    config = verbs.add_parser("config", help="the configuration file")
    config_verbs = config.add_subparsers(dest="config_verb", required=True, metavar="ACTION")
    config_verbs.add_parser("reference", help="print config.example.toml: every key, its default and meaning")
    verbs.add_parser("sweep", help="look at every notebook now: reminders, escalation, auto-stop; then exit")
    sandbox = verbs.add_parser(
        "sandbox",
        help="try the bot in this terminal: real app, embedded store, simulated Slack and Workbench",
    )
    sandbox.add_argument("--demo", action="store_true", help="run a scripted demo instead of reading commands")
    sandbox.add_argument(
        "--as", "--user", dest="user", default="alice", help="who you are at first: alice, bob or carol (default alice)"
    )
    sandbox.add_argument(
        "--state", metavar="DIR", help="keep the store, the simulated cloud and the log here, across runs"
    )
    sandbox.add_argument("--config", help="the config file (default: $NOTEBOOK_BOT_CONFIG, else the sandbox's own)")
    args = parser.parse_args(argv)

    from bot.run.logs import configure_logging

    configure_logging()
    if args.verb == "config":
        from bot.run.config_reference import reference

        print(reference(), end="")
        return 0
    if args.verb == "check":
        from bot.run.doctor import run_checks

        return run_checks()
    try:
        settings = Settings.from_env()
        if args.verb == "catalog":
            from bot.domain.catalog_check import run_check

            return run_check(args.config or settings.config_path)
        if args.verb == "sandbox":
            from bot.run.sandbox import run_sandbox, sandbox_lines

            lines = None if args.demo else sandbox_lines(sys.stdin)  # piped commands, one a line
            demo = args.demo or (lines is None and not sys.stdin.isatty())
            return run_sandbox(demo=demo, user=args.user, state=args.state, config=args.config, lines=lines)
        from bot.run.services import Services

        services = Services(settings)
        if args.verb == "serve":  # the config is checked beside the first worker, not before it
            from bot.run.server import serve_gunicorn

            required(services, "SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET")
            serve_gunicorn(services)
            return 0
        services.check_config()
        if args.verb == "socket":
            from bot.run.server import run_socket_mode

            run_socket_mode(services)
        elif args.verb == "reconcile":
            print(json.dumps(services.reconcile()))
        elif args.verb == "sweep":
            print(json.dumps(services.lifecycle.sweep().__dict__))
    except ConfigError as exc:  # said once, in plain words with the fix (a log line would say it twice)
        print(f"notebook-bot: {exc}", file=sys.stderr)
        return 2
    return 0


def required(services: Services, *names: str) -> None:
    """Settings.require, after the config: a broken config file is what to fix first, as for every verb."""
    try:
        services.settings.require(*names)
    except ConfigError:
        services.check_config()
        raise


if __name__ == "__main__":
    sys.exit(main())
