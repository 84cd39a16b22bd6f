"""Is CoordConv better? Compare two variants over the runs of a sweep.

``python -m coordrl.compare SWEEP_DIR [SWEEP_DIR ...] [--baseline conv] [--treatment coordconv]
[--by variant] [--out DIR]``

Reads every run directory under every ``SWEEP_DIR`` (``result.json`` of complete runs; failed,
interrupted and missing runs are listed and excluded), computes per-game statistics
(:mod:`coordrl.analysis.stats`) and rliable aggregates (:mod:`coordrl.analysis.aggregate`),
writes a report directory (``report.md``, CSV tables, PNG plots; default ``SWEEP_DIR/report``,
with several sweeps their common parent's ``report``) and prints
the main table. Exit codes: 0 done, 2 bad input (no results, unknown variant, corrupt file).
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import warnings
from pathlib import Path

from coordrl._cli import (
    OneLineArgumentParser,
    UsageError,
    check_output_dir,
    count_type,
    fail,
    run_cli,
)
from coordrl.runs import CorruptRunError
from coordrl.sweeps.results import GROUP_BY


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineArgumentParser(
        prog="python -m coordrl.compare",
        description="Statistical comparison of a treatment variant against a baseline variant "
        "over the runs of a sweep directory.",
    )
    parser.add_argument(
        "sweep_dirs",
        type=Path,
        nargs="+",
        metavar="sweep_dir",
        help="sweep directory (or any tree of run dirs); several are read as one",
    )
    parser.add_argument("--baseline", default="conv", help="baseline group (default: conv)")
    parser.add_argument(
        "--treatment", default="coordconv", help="treatment group (default: coordconv)"
    )
    parser.add_argument(
        "--by",
        choices=GROUP_BY,
        default="variant",
        help="what the groups are: the runs' variant (default) or their env backend",
    )
    parser.add_argument(
        "--out",
        type=Path,
        help="report directory (default: SWEEP_DIR/report, or the sweep "
        "dirs' common parent/report)",
    )
    parser.add_argument("--alpha", type=float, default=0.05, help="significance level (0.05)")
    parser.add_argument(
        "--bootstrap",
        type=count_type(100),
        default=5000,
        metavar="N",
        help="bootstrap resamples, >= 100 (5000)",
    )
    parser.add_argument("--seed", type=count_type(0), default=0, help="bootstrap random seed (0)")
    return parser


def _parse_args(argv: list[str]) -> argparse.Namespace:
    args = build_parser().parse_args(argv)
    if not 0 < args.alpha < 1:
        raise UsageError(f"--alpha must be between 0 and 1, got {args.alpha}")
    return args


def _main(argv: list[str]) -> int:
    args = _parse_args(argv)
    sweep_dirs: list[Path] = args.sweep_dirs
    for sweep_dir in sweep_dirs:
        if not sweep_dir.is_dir():
            return fail(f"sweep directory {sweep_dir} does not exist")
    if len({d.resolve() for d in sweep_dirs}) < len(sweep_dirs):
        return fail("a sweep directory is given twice")
    common = Path(os.path.commonpath([d.resolve() for d in sweep_dirs]))
    out_dir: Path = args.out if args.out is not None else common / "report"
    if len(sweep_dirs) == 1 and args.out is None:
        out_dir = sweep_dirs[0] / "report"
    if any(out_dir.resolve() == d.resolve() for d in sweep_dirs):
        return fail("--out must be a directory of its own, not the sweep directory itself")
    sweep_dir = sweep_dirs[0] if len(sweep_dirs) == 1 else common
    check_output_dir(out_dir, "--out")

    # Heavy imports (matplotlib, rliable) only once the arguments are known to be sane.
    import matplotlib

    matplotlib.use("Agg")
    from coordrl.analysis.comparison import Settings, analyse
    from coordrl.analysis.report import terminal_table, write_report
    from coordrl.sweeps.results import collect_runs, merge_runs

    try:
        runs = merge_runs([collect_runs(d, out_dir, args.by) for d in sweep_dirs])
    except CorruptRunError as e:
        return fail(str(e))
    if not runs.complete:
        found = len(runs.not_usable)
        return fail(
            f"no complete run (no result.json) under {sweep_dir}"
            + (f"; {found} failed/interrupted/missing run(s) found" if found else "")
        )
    settings = Settings(
        args.baseline, args.treatment, args.alpha, args.bootstrap, args.seed, group_by=args.by
    )
    try:
        with warnings.catch_warnings():
            # rliable/arch and seaborn emit deprecation chatter that is not the user's concern.
            warnings.simplefilter("ignore", FutureWarning)
            warnings.simplefilter("ignore", DeprecationWarning)
            analysis = analyse(runs, settings)
            command = "python -m coordrl.compare " + shlex.join(argv)
            files = write_report(analysis, out_dir, command)
    except ValueError as e:
        return fail(str(e))
    except OSError as e:
        return fail(f"cannot write the report to {out_dir}: {e}")
    print(terminal_table(analysis))
    for note in analysis.notes:
        print(f"note: {note}")
    excluded = len(runs.not_usable)
    if excluded:
        print(
            f"{excluded} run(s) excluded (failed/interrupted/missing): see {out_dir / 'report.md'}"
        )
    print(f"report: {out_dir / 'report.md'} ({len(files)} files)")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m coordrl.compare``; returns the exit code."""
    return run_cli(_main, argv)


if __name__ == "__main__":
    sys.exit(main())
