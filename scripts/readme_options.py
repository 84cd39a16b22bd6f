"""Regenerate README.md's option tables from the CLIs' parsers (each option is declared once, in
its parser; ``tests/test_design.py`` fails when README and a parser disagree).

    python scripts/readme_options.py          # rewrite the tables in README.md
    python scripts/readme_options.py --check  # exit 1 if README.md is out of date

A table sits between ``<!-- options: NAME -->`` and ``<!-- /options -->``, NAME being one of
:data:`PARSERS`.
"""

from __future__ import annotations

import argparse
import importlib
import re
import sys
from pathlib import Path

from coordrl._cli import options_table

README = Path(__file__).resolve().parent.parent / "README.md"
#: Table name -> (module, subcommand or None).
PARSERS = {
    "train": ("coordrl.train", None),
    "evaluate": ("coordrl.evaluate", None),
    "sweep": ("coordrl.sweep", None),
    "compare": ("coordrl.compare", None),
    "paper classification": ("coordrl.paper", "classification"),
}
BLOCK_RE = re.compile(
    r"(<!-- options: (?P<name>[a-z ]+) -->\n)(?P<body>.*?)(<!-- /options -->)", re.S
)


def parser_for(name: str) -> argparse.ArgumentParser:
    module, sub = PARSERS[name]
    parser = importlib.import_module(module).build_parser()
    if sub is not None:
        subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        parser = subparsers.choices[sub]
    return parser


def render(text: str) -> str:
    """``text`` with every options block regenerated."""

    def block(m: re.Match[str]) -> str:
        return f"{m.group(1)}{options_table(parser_for(m['name']))}\n{m.group(4)}"

    return BLOCK_RE.sub(block, text)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--check", action="store_true", help="only check; exit 1 if out of date")
    args = p.parse_args()
    text = README.read_text()
    new = render(text)
    if args.check:
        print("README.md option tables are up to date" if new == text else "out of date")
        return 0 if new == text else 1
    README.write_text(new)
    return 0


if __name__ == "__main__":
    sys.exit(main())
