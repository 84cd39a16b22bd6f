"""Evaluate a trained agent on full games: ``python -m coordrl.evaluate RUN_DIR|MODEL.zip``.

    python -m coordrl.evaluate runs/Pong_ppo_coordconv_s0 --episodes 30
    python -m coordrl.evaluate runs/Pong_ppo_coordconv_s0/checkpoints/model_200000_steps.zip

Builds the run's evaluation env from its ``config.yaml`` (full games, unclipped rewards; found in
RUN_DIR, or beside MODEL.zip or in its parent directory), plays ``--episodes`` episodes spread
over up to 8 parallel envs and prints the mean ± standard deviation of the returns. A run
directory without ``model.zip`` (interrupted run) is evaluated from its latest checkpoint.
Exit codes: 0 done, 2 bad input (one ``error: ...`` line), 130 interrupted.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from pathlib import Path

from coordrl import runs
from coordrl._cli import (
    EXIT_OK,
    MAX_SEED,
    OneLineArgumentParser,
    UsageError,
    count_type,
    prefer_passive_openmp,
    run_cli,
)
from coordrl.hardware import DEVICES

__all__ = ["build_parser", "find_model_and_config", "main"]


def find_model_and_config(path: str | Path) -> tuple[Path, Path]:
    """The model file and the run directory (holding ``config.yaml``) for a CLI argument.

    :param path: a run directory, or a model ``.zip`` (``config.yaml`` beside it or one level up,
        as for ``RUN_DIR/checkpoints/*.zip``)
    :raises UsageError: nothing usable there
    """
    path = Path(path)
    if path.is_dir():
        if not os.access(path, os.R_OK | os.X_OK):
            raise UsageError(f"{path}: cannot be read (permission denied)")
        if not (path / runs.CONFIG_FILE).exists():
            raise UsageError(f"{path}: not a run directory (no {runs.CONFIG_FILE})")
        model = path / runs.MODEL_FILE
        if not model.exists():
            model = runs.latest_checkpoint(path)
            if model is None:
                raise UsageError(f"{path}: no {runs.MODEL_FILE} and no checkpoint to evaluate")
        return model, path
    if not path.exists():
        raise UsageError(f"{path}: no such run directory or model file")
    for run_dir in (path.parent, path.parent.parent):
        if (run_dir / runs.CONFIG_FILE).exists():
            return path, run_dir
    raise UsageError(
        f"{path}: no {runs.CONFIG_FILE} beside it or in its parent directory; evaluate a model "
        "inside its run directory"
    )


def build_parser() -> argparse.ArgumentParser:
    p = OneLineArgumentParser(
        prog="python -m coordrl.evaluate",
        description="Evaluate a trained agent on full games (unclipped returns).",
    )
    p.add_argument("path", metavar="RUN_DIR|MODEL.zip")
    p.add_argument(
        "--episodes", type=count_type(1), default=10, help="episodes to play (default 10)"
    )
    p.add_argument("--device", choices=DEVICES, default="auto", help="default auto")
    p.add_argument(
        "--seed",
        type=count_type(0, MAX_SEED),
        help="env seed, 0..2^32-1 (default: the run's eval seed)",
    )
    p.add_argument(
        "--deterministic",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="greedy actions (default: as the run's config, eval_deterministic)",
    )
    p.add_argument(
        "--env-backend",
        choices=runs.ENV_BACKENDS,
        help="Atari vector env backend to play on (default: the run's); e.g. a model trained on "
        "one backend evaluated on the other",
    )
    p.add_argument("--json", action="store_true", help="print the result as one JSON object")
    return p


def _main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    model_path, run_dir = find_model_and_config(args.path)
    try:
        config = runs.read_config(run_dir)
    except runs.CorruptRunError as e:
        raise UsageError(str(e)) from None
    prefer_passive_openmp()  # before torch is imported
    import numpy as np
    import torch as th

    from coordrl.hardware import resolve_device
    from coordrl.training import check_config, evaluate_returns, load_model, make_eval_env

    try:
        check_config(config, str(run_dir / runs.CONFIG_FILE))
        device = th.device(resolve_device(args.device))
    except ValueError as e:
        raise UsageError(str(e)) from None
    deterministic = config.eval_deterministic if args.deterministic is None else args.deterministic
    if args.env_backend is not None:
        config = dataclasses.replace(config, env_backend=args.env_backend)
    env = make_eval_env(config, args.episodes, seed=args.seed)
    try:
        # built from config.yaml on the env; nothing in the file is unpickled
        model = load_model(config, model_path, device, env)
        returns, lengths = evaluate_returns(model, env, args.episodes, deterministic)
    finally:
        env.close()
    mean, std = float(np.mean(returns)), float(np.std(returns))
    if args.json:
        print(
            json.dumps(
                {
                    "model": str(model_path),
                    "game": config.game,
                    "algo": config.algo,
                    "variant": config.variant,
                    "seed": config.seed,
                    "env_backend": config.env_backend,
                    "steps": int(model.num_timesteps),
                    "returns": returns,
                    "lengths": lengths,
                    "mean": mean,
                    "std": std,
                }
            )
        )
    else:
        print(
            f"{config.game} {config.algo} {config.variant} seed {config.seed} "
            f"[{config.env_backend} backend] "
            f"({model_path.name}, {model.num_timesteps} steps): {mean:.2f} ± {std:.2f} over "
            f"{len(returns)} episodes (min {min(returns):.1f}, max {max(returns):.1f})"
        )
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m coordrl.evaluate``; returns the exit code.

    :param argv: arguments (default ``sys.argv[1:]``)
    """
    return run_cli(_main, argv)


if __name__ == "__main__":
    sys.exit(main())
