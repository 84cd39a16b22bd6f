"""Evaluate a trained agent on full games: ``python -m coordrl.evaluate RUN_DIR|MODEL.zip``.

    python -m coordrl.evaluate runs/Pong_ppo_coordconv_s0 --episodes 30
    python -m coordrl.evaluate runs/Pong_ppo_coordconv_s0/checkpoints/model_200000_steps.zip

Builds the run's evaluation env from its ``config.yaml`` (full games, unclipped rewards; found in
RUN_DIR, or beside MODEL.zip or in its parent directory), plays ``--episodes`` episodes spread
over up to 8 parallel envs and prints the mean ± standard deviation of the returns. A run
directory without ``model.zip`` (interrupted run) is evaluated from its latest checkpoint.
Exit codes: 0 done, 2 bad input (one ``error: ...`` line), 130 interrupted.
"""

# ruff: noqa: E402  (OMP_WAIT_POLICY must be set before torch is imported)
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

# OpenMP threads that spin while idle (libgomp's default) fight with ale-py's C++ env threads and
# with other processes for the cores: on a shared 2-core box PPO ran 3-4x slower (see
# scripts/bench_train_throughput.py). libgomp reads this once, when torch is first imported, so
# it is set here, before the imports below; an explicit OMP_WAIT_POLICY wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np
import torch as th

from coordrl import runs
from coordrl.agents.config import ALGOS
from coordrl.agents.factory import set_channels_last, use_channels_last
from coordrl.train import (
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    OneLineArgumentParser,
    RunConfig,
    UsageError,
    evaluate_returns,
    load_run_config,
    make_eval_env,
)

__all__ = ["find_model_and_config", "main"]


def find_model_and_config(path: str | Path) -> tuple[Path, Path]:
    """The model file and the run directory (holding ``config.yaml``) for a CLI argument.

    :param path: a run directory, or a model ``.zip`` (``config.yaml`` beside it or one level up,
        as for ``RUN_DIR/checkpoints/*.zip``)
    :raises UsageError: nothing usable there
    """
    path = Path(path)
    if path.is_dir():
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
    p.add_argument("--episodes", type=int, default=10, help="episodes to play (default 10)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.add_argument("--seed", type=int, default=None, help="env seed (default: the run's eval seed)")
    p.add_argument(
        "--deterministic",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="greedy actions (default: as the run's config, eval_deterministic)",
    )
    p.add_argument("--json", action="store_true", help="print the result as one JSON object")
    return p


def _load_model(config: RunConfig, model_path: Path, device: th.device):
    # DQN: no replay buffer needed to act; do not allocate the configured one.
    custom = {"buffer_size": 1} if config.algo == "dqn" else None
    try:
        model = ALGOS[config.algo].load(model_path, device=device, custom_objects=custom)
    except Exception as e:
        raise UsageError(f"cannot load {model_path} ({type(e).__name__}: {e})") from None
    set_channels_last(model, use_channels_last(device))
    return model


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m coordrl.evaluate``; returns the exit code.

    :param argv: arguments (default ``sys.argv[1:]``)
    """
    try:
        args = build_parser().parse_args(argv)
        if args.episodes < 1:
            raise UsageError(f"--episodes must be positive, got {args.episodes}")
        if args.device == "cuda" and not th.cuda.is_available():
            raise UsageError("--device cuda: CUDA is not available here")
        device = th.device("cuda" if args.device != "cpu" and th.cuda.is_available() else "cpu")
        model_path, run_dir = find_model_and_config(args.path)
        try:
            config = load_run_config(run_dir)
        except runs.CorruptRunError as e:
            raise UsageError(str(e)) from None
        model = _load_model(config, model_path, device)
        deterministic = (
            config.eval_deterministic if args.deterministic is None else args.deterministic
        )
        env = make_eval_env(config, args.episodes, seed=args.seed)
        try:
            returns, lengths = evaluate_returns(model, env, args.episodes, deterministic)
        finally:
            env.close()
    except UsageError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
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
            f"({model_path.name}, {model.num_timesteps} steps): {mean:.2f} ± {std:.2f} over "
            f"{len(returns)} episodes (min {min(returns):.1f}, max {max(returns):.1f})"
        )
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
