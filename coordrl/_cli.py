"""What the command-line tools share: the one-line error convention, number and ``key=value``
parsing, and the OpenMP setting they make before torch is imported. No torch, no SB3.

Every CLI (``train``, ``evaluate``, ``sweep``, ``compare``, ``paper``) reports bad input as one
``error: ...`` line on stderr and exits with :data:`EXIT_USAGE`, never with a traceback.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import sys
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, NoReturn

__all__ = [
    "EXIT_FAILURE",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_USAGE",
    "MAX_SEED",
    "MAX_STEPS",
    "MAX_STEPS_TEXT",
    "OneLineArgumentParser",
    "UsageError",
    "add_set_option",
    "check_output_dir",
    "count_type",
    "fail",
    "parse_count",
    "parse_key_values",
    "parse_steps",
    "prefer_passive_openmp",
    "run_cli",
    "steps_type",
]

EXIT_OK, EXIT_FAILURE, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
#: The largest step count any option accepts (10^10 environment steps: 1000x the Atari budget).
MAX_STEPS = 10**10
#: :data:`MAX_STEPS` as the option help writes it.
MAX_STEPS_TEXT = f"{MAX_STEPS:.0e}".replace("+", "")  # "1e10"
#: The largest seed any option accepts (what numpy's and SB3's seeding take: 2^32 - 1).
MAX_SEED = 2**32 - 1

_SUFFIX = {"k": 10**3, "m": 10**6, "g": 10**9}
_STEPS_RE = re.compile(r"([-+]?[0-9][0-9_]*(?:\.[0-9_]*)?(?:[eE][-+]?[0-9]+)?)([kKmMgG]?)")


class UsageError(Exception):
    """Bad input: printed as one ``error: ...`` line, exit code :data:`EXIT_USAGE`."""


class OneLineArgumentParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors are :class:`UsageError` (one line, exit code 2)
    instead of argparse's usage block."""

    def error(self, message: str) -> NoReturn:  # type: ignore[override]
        raise UsageError(f"{message} (see {self.prog} --help)")


def parse_steps(value: Any, minimum: int = 1, what: str = "steps") -> int:
    """A whole number of steps: ``2000000``, ``2_000_000``, ``2e6``, ``2.5M``, ``100k``.

    :param value: a string or a number
    :param minimum: the smallest value allowed
    :param what: what the number is, for the error message
    :raises ValueError: not a whole number, below ``minimum`` or above :data:`MAX_STEPS`
    """
    if isinstance(value, bool):
        raise ValueError(f"expected a number of {what}, got {value!r}")
    if isinstance(value, (int, float)):
        number = float(value)
    else:
        m = _STEPS_RE.fullmatch(str(value).strip())
        if m is None:
            raise ValueError(f"expected a number of {what} (2e6, 2_000_000, 2M), got {value!r}")
        number = float(m.group(1).replace("_", "")) * _SUFFIX.get(m.group(2).lower(), 1)
    if not math.isfinite(number) or number != int(number):
        raise ValueError(f"expected a whole number of {what}, got {value!r}")
    if number > MAX_STEPS:
        raise ValueError(f"{value!r} {what} is above the maximum of {MAX_STEPS:.0e}")
    if number < minimum:
        bound = "positive" if minimum == 1 else f">= {minimum}"
        raise ValueError(f"must be {bound}, got {value!r}")
    return int(number)


def steps_type(minimum: int = 1) -> Callable[[str], int]:
    """An argparse ``type`` for step counts (see :func:`parse_steps`)."""

    def parse(text: str) -> int:
        try:
            return parse_steps(text, minimum)
        except ValueError as e:
            raise argparse.ArgumentTypeError(str(e)) from None

    return parse


def parse_count(value: Any, minimum: int = 1, maximum: int | None = None) -> int:
    """A plain integer of at least ``minimum`` (and at most ``maximum``): a seed, a number of
    envs, episodes, threads or workers, from the command line (a string) or a YAML file (an int).

    :param value: a string or an int (not a bool, not a float)
    :param minimum: the smallest value allowed
    :param maximum: the largest value allowed (``None``: no bound)
    :raises ValueError: not an integer, or out of bounds
    """
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise ValueError(f"expected an integer, got {value!r}")
    try:
        number = int(value)
    except ValueError:
        raise ValueError(f"expected an integer, got {value!r}") from None
    if number < minimum:
        bound = "positive" if minimum == 1 else f">= {minimum}"
        raise ValueError(f"must be {bound}, got {number}")
    if maximum is not None and number > maximum:
        raise ValueError(f"must be at most {maximum}, got {number}")
    return number


def count_type(minimum: int = 1, maximum: int | None = None) -> Callable[[str], int]:
    """An argparse ``type`` for a plain integer in ``minimum..maximum`` (see
    :func:`parse_count`)."""

    def parse(text: str) -> int:
        try:
            return parse_count(text, minimum, maximum)
        except ValueError as e:
            raise argparse.ArgumentTypeError(str(e)) from None

    return parse


def parse_key_values(items: Iterable[str] | None, flag: str = "--set") -> dict[str, str]:
    """``["a=1", "b=x=y"]`` -> ``{"a": "1", "b": "x=y"}``, in order (a later key wins). The one
    parser of ``--set`` for ``train`` and ``sweep``; values stay strings for the caller to parse.

    :raises UsageError: an item without ``=`` or with an empty key
    """
    out: dict[str, str] = {}
    for item in items or ():
        key, sep, value = str(item).partition("=")
        if not sep or not key.strip():
            raise UsageError(f"{flag} {item!r}: expected KEY=VALUE (e.g. {flag} n_epochs=4)")
        out[key.strip()] = value
    return out


def add_set_option(group: argparse._ActionsContainer, help: str, dest: str = "set") -> None:
    """The ``--set KEY=VALUE ...`` option of ``train`` and ``sweep``: several items after one
    flag, the flag repeatable; each item is split by :func:`parse_key_values`."""
    group.add_argument(
        "--set", dest=dest, nargs="+", action="extend", default=[], metavar="KEY=VALUE", help=help
    )


def prefer_passive_openmp() -> None:
    """Make idle OpenMP threads sleep instead of spin (``OMP_WAIT_POLICY=PASSIVE``, unless the
    user set it). libgomp's spinning threads fight ale-py's C++ env threads and other processes
    for the cores: on a shared 2-core box PPO ran 3-4x slower (scripts/bench_train_throughput.py).
    libgomp reads the variable once, when torch is first imported, so a CLI calls this in
    ``main`` before it imports anything that imports torch."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def check_output_dir(path: str | os.PathLike, flag: str) -> None:
    """Check, without creating anything, that ``path`` is or can be made a writable directory:
    its nearest existing ancestor must be a directory this process may write to.

    (``os.access``: exact for ordinary permissions; a root process passes it everywhere except on
    a read-only filesystem, and then finds out when it writes.)

    :param path: the output directory (``--logdir``, ``--out``)
    :param flag: the option that named it, for the message
    :raises UsageError: it cannot be written
    """
    path = Path(path)
    existing = path.absolute()
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise UsageError(f"{flag} {path}: {existing} is not a directory; choose another {flag}")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UsageError(f"{flag} {path}: {existing} is not writable; choose another {flag}")


def fail(message: str) -> int:
    """Print ``error: message`` on stderr, as one line (line breaks inside ``message``, e.g.
    from a YAML parser, become spaces); return :data:`EXIT_USAGE`."""
    one_line = " ".join(part.strip() for part in str(message).splitlines() if part.strip())
    print(f"error: {one_line}", file=sys.stderr, flush=True)
    return EXIT_USAGE


def run_cli(main: Callable[[list[str]], int], argv: Sequence[str] | None = None) -> int:
    """Run a CLI body with the shared conventions: :class:`UsageError` -> one error line and
    exit code 2; Ctrl-C outside the body's own handling -> ``interrupted`` and 130."""
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        return main(args)
    except UsageError as e:
        return fail(str(e))
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


def options_table(parser: argparse.ArgumentParser) -> str:
    """A Markdown table of a parser's options (flag, value, help), in declaration order: README's
    option tables are generated from the parsers by ``scripts/readme_options.py`` and checked
    against them by the tests, so each option is declared once, in its parser."""
    rows = ["| option | value | meaning |", "|---|---|---|"]
    for action in parser._actions:  # argparse has no public accessor for its actions
        if isinstance(action, argparse._HelpAction) or action.help == argparse.SUPPRESS:
            continue
        flag = (
            ", ".join(f"`{s}`" for s in action.option_strings)
            or f"`{action.metavar or action.dest}`"
        )
        if action.choices is not None:
            value = " \\| ".join(str(c) for c in action.choices)
        elif action.nargs == 0:
            value = ""
        else:
            value = action.metavar or action.dest.upper()
            if action.nargs in ("+", "*"):
                value += " ..."
        text = (action.help or "").replace("%%", "%").replace("|", "\\|")
        rows.append(f"| {flag} | {value} | {text} |")
    return "\n".join(rows)
