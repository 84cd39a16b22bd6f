"""Train one SB3 agent (PPO, A2C or DQN), with or without CoordConv: ``python -m coordrl.train``.

    python -m coordrl.train --game Pong --coordconv            # PPO, 10M steps, seed 0
    python -m coordrl.train --game Breakout --algo dqn --seed 3 --timesteps 2e6
    python -m coordrl.train --resume runs/Pong_ppo_coordconv_s0

One run writes one run directory ``LOGDIR/<game>_<algo>_<variant>_s<seed>`` (the layout is
:mod:`coordrl.runs`): ``config.yaml`` first, then ``checkpoints/``, ``tb/``, ``progress.json``
and ``evaluations.json`` while it trains, and ``model.zip`` plus ``result.json`` (atomically,
last) when it is done. Exit codes: 0 done, 1 failure, 2 bad input (one ``error: ...`` line,
nothing written or overwritten), 130 interrupted (Ctrl-C / SIGTERM: a checkpoint is saved
first; continue with ``--resume RUN_DIR``).

This module is the command line only: it parses and checks the options, then calls
:func:`coordrl.training.run_training`. torch is imported after the options are checked (and
after ``OMP_WAIT_POLICY`` is set), so ``--help`` and bad input answer at once.
"""

from __future__ import annotations

import argparse
import os
import shlex
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from coordrl import runs
from coordrl._cli import (
    MAX_SEED,
    MAX_STEPS_TEXT,
    OneLineArgumentParser,
    UsageError,
    add_set_option,
    check_output_dir,
    count_type,
    prefer_passive_openmp,
    run_cli,
    steps_type,
)
from coordrl.hardware import DEVICES
from coordrl.runs import ALGOS, ENV_BACKENDS, RunConfig
from coordrl.variant import Variant

__all__ = ["DEFAULTS", "build_parser", "main"]

#: Defaults of the options whose absence matters (``--resume`` checks only the given ones).
DEFAULTS: dict[str, Any] = {
    "algo": "ppo",
    "seed": 0,
    "env_backend": "native",
    "device": "auto",
    "eval_episodes": 10,
    "eval_freq": 250_000,
    "eval_deterministic": False,
    "checkpoint_freq": 200_000,
    "keep_checkpoints": 3,
    "logdir": "runs",
}


def build_parser() -> argparse.ArgumentParser:
    d = DEFAULTS
    p = OneLineArgumentParser(
        prog="python -m coordrl.train",
        description="Train an SB3 agent (PPO/A2C/DQN) with or without CoordConv on an Atari game, "
        "a MinAtar game or a gymnasium pixel env. Hyperparameters: coordrl.configs "
        "(rl-baselines3-zoo's for Atari).",
    )
    what = p.add_argument_group("what to train")
    env = what.add_mutually_exclusive_group()
    env.add_argument("--game", help="Atari game (Pong, pong, ms_pacman, ALE/Pong-v5...)")
    env.add_argument(
        "--env", help="gymnasium id (MinAtar/Breakout-v1, coordrl/PointAtDot-v0) or Atari game"
    )
    what.add_argument("--algo", choices=ALGOS, help=f"algorithm (default {d['algo']})")
    what.add_argument(
        "--seed", type=count_type(0, MAX_SEED), help=f"seed, 0..2^32-1 (default {d['seed']})"
    )
    what.add_argument(
        "--timesteps",
        type=steps_type(1),
        help=f"env steps: 1e7, 10M; at most {MAX_STEPS_TEXT} (default: config n_timesteps)",
    )
    what.add_argument("--n-envs", type=count_type(1), help="parallel envs (default: config n_envs)")
    what.add_argument(
        "--env-backend",
        choices=ENV_BACKENDS,
        help=f"Atari backend: ale-py's C++ vector env or SB3's wrappers "
        f"(default {d['env_backend']})",
    )
    what.add_argument("--config", help="hyperparameter YAML instead of the shipped one")
    add_set_option(
        what, "override hyperparameters: --set n_steps=64 n_epochs=4 (repeatable)", "overrides"
    )
    cc = p.add_argument_group("CoordConv variant")
    cc.add_argument(
        "--coordconv", action="store_true", help="CoordConv in the first conv layer (default: conv)"
    )
    cc.add_argument(
        "--coord-layers", help="conv layers with coordinates: none, first, all, or indices '0,2'"
    )
    cc.add_argument("--with-r", action="store_true", default=None, help="add the radius channel")
    cc.add_argument(
        "--variant", help="variant by name instead (conv, coordconv, coordconv-all-r, ...)"
    )
    ev = p.add_argument_group("evaluation and checkpoints")
    ev.add_argument(
        "--eval-episodes",
        type=count_type(1),
        help=f"full games per evaluation (default {d['eval_episodes']})",
    )
    ev.add_argument(
        "--eval-freq",
        type=steps_type(0),
        help=f"evaluate every N env steps; 0: final only (default {d['eval_freq']})",
    )
    ev.add_argument(
        "--eval-deterministic",
        action="store_true",
        default=None,
        help="greedy evaluation actions (default: sampled, as rl-zoo3 for Atari)",
    )
    ev.add_argument(
        "--checkpoint-freq",
        type=steps_type(0),
        help=f"checkpoint every N env steps; 0: only on interrupt (default {d['checkpoint_freq']})",
    )
    ev.add_argument(
        "--keep-checkpoints",
        type=count_type(0),
        help=f"keep the newest N periodic checkpoints; 0: all (default {d['keep_checkpoints']})",
    )
    rt = p.add_argument_group("where and how")
    rt.add_argument(
        "--logdir",
        default=d["logdir"],
        help=f"parent of the run directory (default {d['logdir']})",
    )
    rt.add_argument(
        "--resume", metavar="RUN_DIR", help="continue an interrupted run from its latest checkpoint"
    )
    rt.add_argument(
        "--device", choices=DEVICES, help=f"auto: CUDA if available (default {d['device']})"
    )
    rt.add_argument(
        "--threads",
        type=count_type(1),
        help="torch CPU threads (default: 1 for MinAtar on the CPU, else all cores)",
    )
    rt.add_argument(
        "--no-progress", action="store_true", help="no progress bar; a status line every 10%%"
    )
    return p


# ----------------------------------------------------------------------------- the variant
def _variant_from_args(args: argparse.Namespace) -> Variant | None:
    """The variant the flags ask for, or ``None`` if no variant flag was given."""
    given = args.coordconv or args.coord_layers is not None or args.with_r
    if args.variant is not None:
        if given:
            raise UsageError(
                "--variant cannot be combined with --coordconv/--coord-layers/--with-r"
            )
        try:
            variant = Variant.from_name(args.variant)
        except ValueError as e:
            raise UsageError(str(e)) from None
        try:
            return variant.canonical()
        except ValueError as e:
            raise UsageError(f"--coord-layers: {e}") from None
    if not given:
        return None
    layers = args.coord_layers if args.coord_layers is not None else "first"
    try:
        variant = Variant(coord_layers=layers, with_r=bool(args.with_r)).canonical()
    except ValueError as e:
        raise UsageError(f"--coord-layers: {e}") from None
    if not variant.coordconv and (args.coordconv or args.with_r):
        raise UsageError("--coord-layers none means no CoordConv; drop --coordconv/--with-r")
    return variant


# ----------------------------------------------------------------------------- the config
def _resolve_env_name(name: str):
    from coordrl.envs import UnknownEnvError, resolve_env

    try:
        return resolve_env(name)
    except UnknownEnvError as e:
        raise UsageError(str(e)) from None


def _hyperparams(algo: str, args: argparse.Namespace, family: str):
    from coordrl.agents.config import ConfigError, apply_overrides, load_config, parse_overrides

    try:
        cfg = load_config(algo, args.config, family=family)
        if args.overrides:
            cfg = apply_overrides(cfg, parse_overrides(args.overrides))
    except ConfigError as e:
        raise UsageError(str(e)) from None
    return cfg


def _check(config: RunConfig, source: str) -> RunConfig:
    from coordrl.training import check_config

    try:
        check_config(config, source)
    except ValueError as e:
        raise UsageError(str(e)) from None
    return config


def _new_run_config(args: argparse.Namespace, argv: list[str]) -> RunConfig:
    name = args.game or args.env
    if name is None:
        raise UsageError("say what to train: --game NAME (or --env ID), or --resume RUN_DIR")
    algo = args.algo or DEFAULTS["algo"]
    spec = _resolve_env_name(name)
    cfg = _hyperparams(algo, args, spec.family)
    variant = _variant_from_args(args) or Variant()

    def opt(key: str) -> Any:
        value = getattr(args, key)
        return DEFAULTS[key] if value is None else value

    config = RunConfig(
        game=spec.game,
        env_id=spec.env_id,
        is_atari=spec.is_atari,
        algo=algo,
        variant=variant.name,
        coord_layers=variant.coord_layers,
        with_r=variant.with_r,
        seed=opt("seed"),
        timesteps=args.timesteps if args.timesteps is not None else cfg.n_timesteps,
        n_envs=args.n_envs if args.n_envs is not None else cfg.n_envs,
        env_backend=opt("env_backend"),
        device=opt("device"),
        eval_episodes=opt("eval_episodes"),
        eval_freq=opt("eval_freq"),
        eval_deterministic=opt("eval_deterministic"),
        checkpoint_freq=opt("checkpoint_freq"),
        keep_checkpoints=opt("keep_checkpoints"),
        hyperparams=cfg.hyperparams,
        command=shlex.join([sys.executable, "-m", "coordrl.train", *argv]),
    )
    return _check(config, "options")


def _resume_run_config(args: argparse.Namespace) -> RunConfig:
    """The saved config of ``--resume RUN_DIR``, checked as a new one would be; flags given with
    it must agree with it."""
    run_dir = Path(args.resume)
    if not run_dir.is_dir():
        raise UsageError(f"--resume {run_dir}: no such run directory")
    if not os.access(run_dir, os.R_OK | os.X_OK):
        raise UsageError(f"--resume {run_dir}: cannot be read (permission denied)")
    if (run_dir / runs.RESULT_FILE).exists():
        raise UsageError(f"--resume {run_dir}: the run is already complete (result.json exists)")
    try:
        config = runs.read_config(run_dir)
    except FileNotFoundError:
        raise UsageError(f"--resume {run_dir}: not a run directory (no config.yaml)") from None
    except runs.CorruptRunError as e:
        raise UsageError(f"--resume: {e}") from None
    _check(config, str(run_dir / runs.CONFIG_FILE))
    try:
        runs.read_evaluations(run_dir)  # read again when training resumes: check it now
    except runs.CorruptRunError as e:
        raise UsageError(f"--resume: {e}; fix or delete it to resume") from None
    name = args.game or args.env
    given: dict[str, Any] = {
        "game": _resolve_env_name(name).game if name else None,
        **{
            key: getattr(args, key)
            for key in (
                "algo",
                "seed",
                "timesteps",
                "n_envs",
                "env_backend",
                "eval_episodes",
                "eval_freq",
                "eval_deterministic",
                "checkpoint_freq",
                "keep_checkpoints",
            )
        },
    }
    variant = _variant_from_args(args)
    if variant is not None:
        given["variant"] = variant.name
    if args.overrides or args.config:
        family = _resolve_env_name(config.game).family
        if _hyperparams(config.algo, args, family).hyperparams != config.hyperparams:
            raise UsageError(
                f"--resume {run_dir}: --set/--config differ from the run's saved hyperparameters; "
                "resume without them"
            )
    for key, value in given.items():
        if value is not None and value != getattr(config, key):
            raise UsageError(
                f"--resume {run_dir}: {key}={value!r} differs from the run's saved "
                f"{key}={getattr(config, key)!r}; resume without it"
            )
    if args.device is not None:
        config.device = args.device
    return config


def _prepare(args: argparse.Namespace, argv: list[str]) -> tuple[Path, RunConfig, list[Path]]:
    """Check everything that can be checked without side effects.

    :return: run directory, configuration, checkpoints to resume from (oldest first; training
        uses the newest that loads)
    """
    if args.resume is not None:
        config = _resume_run_config(args)
        run_dir = Path(args.resume)
        check_output_dir(run_dir, "--resume")
        return run_dir, config, runs.checkpoints(run_dir)
    config = _new_run_config(args, argv)
    logdir = Path(args.logdir)
    check_output_dir(logdir, "--logdir")
    run_dir = logdir / runs.run_name(config.game, config.algo, config.variant, config.seed)
    if run_dir.exists() and (not run_dir.is_dir() or any(run_dir.iterdir())):
        raise UsageError(
            f"run directory {run_dir} already exists; continue it with --resume {run_dir}, "
            "or choose another --seed / --logdir"
        )
    return run_dir, config, []


def _main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    prefer_passive_openmp()  # before anything imports torch
    run_dir, config, checkpoints = _prepare(args, argv)
    from coordrl.training import StopFlag, run_training

    stop = StopFlag()
    old_handlers: dict[int, Any] = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            old_handlers[sig] = signal.signal(sig, stop.handler)
    try:
        return run_training(
            run_dir,
            config,
            checkpoints,
            resumed=args.resume is not None,
            threads=args.threads,
            progress_bar=not args.no_progress,
            stop=stop,
        )
    finally:
        for sig, handler in old_handlers.items():
            signal.signal(sig, handler)


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m coordrl.train``; returns the exit code.

    :param argv: arguments (default ``sys.argv[1:]``)
    """
    return run_cli(_main, argv)


if __name__ == "__main__":
    sys.exit(main())
