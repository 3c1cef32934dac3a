"""The words of `/notebook VERB …`: which verb, and its arguments, checked before anything happens."""

from __future__ import annotations

import html
import re
from dataclasses import dataclass

from bot.domain.errors import UserError, did_you_mean

# What phones, word processors and chat formatting put where a person typed '-': hyphen, non-breaking
# hyphen, figure dash, en and em dash, horizontal bar, minus sign, small and fullwidth hyphen-minus;
# invisible soft hyphens and zero-width spaces go. `tf‑2‑8` (U+2011) is `tf-2-8`, not a near miss.
LOOK_ALIKES = str.maketrans(
    {
        **dict.fromkeys("\u2010\u2011\u2012\u2013\u2014\u2015\u2212\ufe58\ufe63\uff0d", "-"),
        "\u00ad": None,
        "\u200b": None,
    }
)

USAGE = (
    "`/notebook new [ENV] [gpu=TYPE | gpu=TYPExN] [machine=TYPE] [disk=GB] [boot-disk=GB] "
    "[disk-type=balanced|ssd|standard] [name=NAME] [zone=ZONE] [idle=DURATION] [bucket=NAME[/DIR]] "
    "[schedule=HH:MM|off|default[+weekends]]`"
)

MANAGE_VERBS = ("list", "envs", "costs", "stop", "start", "delete", "cancel", "transfer", "adopt")
VERBS = ("new", "help", *MANAGE_VERBS)
MENTION = re.compile(r"^<@([UW][A-Z0-9]+)(?:\|[^>]*)?>$")


@dataclass(frozen=True)
class Command:
    verb: str
    rest: str

    @property
    def words(self) -> list[str]:
        return self.rest.split()


def as_typed(text: str) -> str:
    """What a person meant to type: look-alike dashes as '-', invisible characters gone."""
    return text.translate(LOOK_ALIKES)


def parse_command(text: str | None) -> Command:
    """The verb and the rest. Slack escapes &, < and > in what people type (mentions, <@U…>, arrive
    unescaped); look-alike dashes become '-' (as_typed)."""
    verb, _, rest = as_typed(html.unescape(text or "")).strip().partition(" ")
    verb = verb.lower() or "help"
    if verb not in VERBS:
        raise UserError(f"I don't know `/notebook {verb}`.{did_you_mean(verb, VERBS)} Try `/notebook help`.")
    return Command(verb, rest.strip())


def one_name(command: Command) -> str:
    if len(command.words) != 1:
        raise UserError(f"Usage: `/notebook {command.verb} NAME` (`/notebook list` shows your notebooks).")
    return command.words[0]


def mentioned_user(word: str) -> str:
    match = MENTION.match(word.strip())
    if match is None:
        raise UserError(f"`{word}` is not a person: mention them with @ (e.g. `@alice`) so Slack sends who they are.")
    return match.group(1)


def transfer_args(command: Command) -> tuple[str, str]:
    if len(command.words) != 2:
        raise UserError("Usage: `/notebook transfer NAME @person`")
    return command.words[0], mentioned_user(command.words[1])


def adopt_args(command: Command) -> tuple[str, str, str | None]:
    words = command.words
    if len(words) < 2:
        raise UserError("Usage: `/notebook adopt NAME @person [zone=ZONE]`")
    zone = next((w.split("=", 1)[1] for w in words[2:] if w.startswith("zone=")), None)
    return words[0], mentioned_user(words[1]), zone


def list_everyone(command: Command) -> bool:
    return command.words[:1] == ["all"]


def costs_for_team(command: Command) -> bool:
    """`/notebook costs` (yours) or `/notebook costs team` (everyone's, for admins)."""
    words = [w.lower() for w in command.words]
    if words not in ([], ["team"]):
        raise UserError("Usage: `/notebook costs` for yours, or `/notebook costs team` (admins) for everyone's.")
    return words == ["team"]
