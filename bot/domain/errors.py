"""Errors a person can act on: each carries the words Slack shows them."""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Iterable


@dataclasses.dataclass
class UserError(Exception):
    """Something the user asked for that cannot be done as asked; nothing was changed.

    `field` names the part of the request at fault (a command key or a modal block), `offer` is a
    corrected command the user can launch with one click, and `link` a notebook's JupyterLab URL
    when what they asked for is already there (starting a running notebook).
    """

    message: str
    field: str | None = None
    offer: str | None = None
    offer_label: str | None = None
    choices: list[str] = dataclasses.field(default_factory=list)
    link: str | None = None

    def __str__(self) -> str:
        return self.message


class NotAllowed(UserError):
    """The caller may not do this (not the owner, not an approver, over quota)."""


ECHO_LIMIT = 60  # characters of a person's input quoted back in a refusal


def clip(text: str, limit: int) -> str:
    """`text` cut to at most `limit` characters, with a visible ellipsis when it was cut."""
    return text if len(text) <= limit else text[: max(limit - 1, 0)] + "…"


def quoted(value: str, limit: int = ECHO_LIMIT) -> str:
    """A person's input as a refusal quotes it: short enough to read, and marked when cut."""
    return clip(value, limit)


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """' Did you mean `x`?' when a choice is close to `word`, else ''."""
    if len(word) > ECHO_LIMIT:  # nothing in a catalog is that long; difflib is quadratic in it
        return ""
    close = difflib.get_close_matches(word.lower(), list(choices), n=1, cutoff=0.5)
    return f" Did you mean `{close[0]}`?" if close else ""


def one_of(choices: Iterable[str]) -> str:
    return ", ".join(f"`{c}`" for c in choices)


def unknown(what: str, name: str, choices: Iterable[str], *, field: str, also: Iterable[str] = (), where: str = ""):
    """'I don't know the GPU `l5`. Did you mean `l4`? Choices: …' — `also` are aliases to suggest from."""
    options = list(choices)
    hint = f" (`{where}` lists them)" if where else ""
    return UserError(
        f"I don't know the {what} `{quoted(name)}`.{did_you_mean(name, [*options, *also])} "
        f"Choices: {one_of(options)}{hint}.",
        field=field,
        choices=options,
    )
