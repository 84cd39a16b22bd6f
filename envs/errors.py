"""Errors raised by the environment factories (one definition, shared by all of ``envs``)."""

from __future__ import annotations

from collections.abc import Sequence


class UnknownEnvError(ValueError):
    """An environment or Atari game name that no factory knows.

    The message names the input and, when there are any, the closest known names, so the
    CLIs can print it as a single ``error: ...`` line.

    :param name: the name the user typed.
    :param suggestions: close known names (best first); may be empty.
    :param hint: an extra sentence telling the user where to find the valid names.
    """

    def __init__(self, name: str, suggestions: Sequence[str] = (), hint: str = "") -> None:
        self.name = name
        self.suggestions = list(suggestions)
        message = f"unknown environment or Atari game {name!r}"
        if self.suggestions:
            message += "; did you mean " + ", ".join(repr(s) for s in self.suggestions) + "?"
        if hint:
            message += f" ({hint})"
        super().__init__(message)
