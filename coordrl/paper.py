"""Reproduce the CoordConv paper's supervised coordinate classification (Liu et al., 2018, sec. 4).

Usage::

    python -m coordrl.paper classification --split uniform
    python -m coordrl.paper classification --split quadrant --epochs 5 --seed 1 --device auto

Trains the plain transposed-convolution model ("deconv") and the CoordConv model of
:mod:`coordrl.notsoclevr` on the same Not-so-Clevr split and prints one table row per model:
trainable parameters, epochs, training wall time, train and test accuracy (accuracy = the
arg-max pixel is the square's centre). Bad input prints one ``error: ...`` line and exits 2.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import torch as th

from coordrl._cli import OneLineArgumentParser, UsageError, count_type, run_cli
from coordrl.hardware import resolve_device
from coordrl.notsoclevr import (
    MODELS,
    SPLITS,
    ClassificationResult,
    TrainConfig,
    make_dataset,
    split_dataset,
    train_classifier,
)

#: Per-model Adam learning rates used when ``--lr`` is not given. The CoordConv model has a few
#: hundred parameters and tolerates a large step; the deconv model diverges above ~1e-3.
DEFAULT_LR = {"coordconv": 3e-2, "deconv": 1e-3}


def build_parser() -> argparse.ArgumentParser:
    """The ``python -m coordrl.paper`` argument parser."""
    parser = OneLineArgumentParser(
        prog="python -m coordrl.paper", description=__doc__.split("\n\n")[0]
    )
    sub = parser.add_subparsers(
        dest="experiment", required=True, parser_class=OneLineArgumentParser
    )
    cls = sub.add_parser(
        "classification",
        help="supervised coordinate classification: (x, y) -> one-hot 64x64 pixel",
    )
    cls.add_argument("--split", choices=SPLITS, required=True, help="train/test split")
    cls.add_argument(
        "--epochs", type=count_type(1), default=10, help="epochs for every model (default 10)"
    )
    cls.add_argument(
        "--batch-size", type=count_type(1), default=32, help="minibatch size (default 32)"
    )
    cls.add_argument(
        "--lr",
        type=float,
        default=None,
        help="Adam learning rate for every model (default: "
        + ", ".join(f"{k} {v:g}" for k, v in DEFAULT_LR.items())
        + ")",
    )
    cls.add_argument(
        "--seed", type=count_type(0), default=0, help="seed of the split, init and batches"
    )
    cls.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default auto)")
    cls.add_argument(
        "--models",
        default=",".join(MODELS),
        help=f"comma-separated subset of {','.join(MODELS)} (default both)",
    )
    cls.add_argument("--threads", type=count_type(1), default=None, help="torch CPU threads")
    return parser


def _parse_models(spec: str) -> list[str]:
    models = [m.strip() for m in spec.split(",") if m.strip()]
    bad = [m for m in models if m not in MODELS]
    if not models or bad:
        raise ValueError(f"--models must be a comma-separated subset of {MODELS}, got {spec!r}")
    return models


def format_table(
    results: Sequence[ClassificationResult], split: str, n_train: int, n_test: int
) -> str:
    """Render results as a Markdown table.

    :param results: One result per model.
    :param split: Split name, shown in the header line.
    :param n_train: Training examples, shown in the header line.
    :param n_test: Test examples, shown in the header line.
    """
    lines = [
        f"coordinate classification, split={split} ({n_train} train / {n_test} test examples)",
        "",
        "| model | params | epochs | wall time (s) | train acc | test acc |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        lines.append(
            f"| {r.model} | {r.params:,} | {r.epochs} | {r.wall_s:.1f} | "
            f"{100 * r.train_acc:.1f}% | {100 * r.test_acc:.1f}% |"
        )
    return "\n".join(lines)


def run_classification(
    args: argparse.Namespace,
) -> tuple[list[ClassificationResult], int, int]:
    """Train every requested model on the requested split.

    :param args: Parsed ``classification`` arguments.
    :return: The results, the number of training and of test examples.
    """
    if args.lr is not None and not args.lr > 0:
        raise ValueError(f"--lr must be > 0, got {args.lr}")
    if args.threads is not None:
        th.set_num_threads(args.threads)
    models = _parse_models(args.models)
    device = resolve_device(args.device)
    train, test = split_dataset(make_dataset(), args.split, seed=args.seed)
    results = []
    for name in models:
        config = TrainConfig(
            epochs=args.epochs,
            batch_size=args.batch_size,
            lr=args.lr if args.lr is not None else DEFAULT_LR[name],
            seed=args.seed,
            device=device,
        )
        results.append(train_classifier(name, train, test, config))
    return results, len(train), len(test)


def _main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    try:
        results, n_train, n_test = run_classification(args)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    print(format_table(results, args.split, n_train, n_test))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m coordrl.paper``.

    :param argv: Arguments (default ``sys.argv[1:]``).
    :return: Exit code: 0 done, 2 bad input, 130 interrupted.
    """
    return run_cli(_main, argv)


if __name__ == "__main__":
    sys.exit(main())
