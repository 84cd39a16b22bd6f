"""Train one SB3 agent (PPO, A2C or DQN), with or without CoordConv: ``python -m coordrl.train``.

    python -m coordrl.train --game Pong --coordconv            # PPO, 10M steps, seed 0
    python -m coordrl.train --game Breakout --algo dqn --seed 3 --timesteps 2e6
    python -m coordrl.train --resume runs/Pong_ppo_coordconv_s0

One run writes one run directory ``LOGDIR/<game>_<algo>_<variant>_s<seed>`` (the layout is
:mod:`coordrl.runs`): ``config.yaml`` first, then ``checkpoints/``, ``tb/`` and
``evaluations.json`` while it trains, and ``model.zip`` plus ``result.json`` (atomically, last)
when it is done. Exit codes: 0 done, 1 failure, 2 bad input (one ``error: ...`` line, nothing
written or overwritten), 130 interrupted (Ctrl-C / SIGTERM: a checkpoint is saved first; continue
with ``--resume RUN_DIR``).
"""

# ruff: noqa: E402  (OMP_WAIT_POLICY must be set before torch is imported)
from __future__ import annotations

import argparse
import math
import os
import shlex
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

# OpenMP threads that spin while idle (libgomp's default) fight with ale-py's C++ env threads and
# with other processes for the cores: on a shared 2-core box PPO ran 3-4x slower (see
# scripts/bench_train_throughput.py). libgomp reads this once, when torch is first imported, so
# it is set here, before the imports below; an explicit OMP_WAIT_POLICY wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np
import torch as th
import yaml
from gymnasium import spaces
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback, CallbackList
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.logger import configure
from stable_baselines3.common.on_policy_algorithm import OnPolicyAlgorithm
from stable_baselines3.common.preprocessing import is_image_space
from stable_baselines3.common.vec_env import VecEnv

import coordrl
from coordrl import runs
from coordrl.agents.config import (
    ALGOS,
    AlgoConfig,
    ConfigError,
    apply_overrides,
    config_from_dict,
    load_config,
    parse_overrides,
)
from coordrl.agents.factory import build_model, set_channels_last, use_channels_last
from coordrl.coord_usage import CoordUsageCallback, coord_weight_ratios
from coordrl.envs import EnvSpec, UnknownEnvError, make_env, resolve_env
from coordrl.runs import RunResult
from coordrl.variant import Variant

__all__ = ["RunConfig", "main", "evaluate_returns", "load_run_config", "make_eval_env"]

EXIT_OK, EXIT_FAILURE, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
#: Evaluation envs are seeded apart from the training envs (seed + this offset).
EVAL_SEED_OFFSET = 10_000
#: At most this many evaluation envs play episodes in parallel.
MAX_EVAL_ENVS = 8
CHECKPOINT_PREFIX = "model"
#: Attribute carried inside SB3 checkpoints: training wall time summed over resumed sessions.
_WALL_TIME_ATTR = "coordrl_wall_time_s"


class UsageError(Exception):
    """Bad command-line input: printed as one ``error: ...`` line, exit code 2."""


class _Interrupted(Exception):
    """Raised inside an evaluation when a stop was requested."""


@dataclass
class RunConfig:
    """Everything that defines a run; saved as ``RUN_DIR/config.yaml`` and reloaded by
    ``--resume`` and ``python -m coordrl.evaluate``.

    :param game: canonical Atari name or gymnasium id (``EnvSpec.game``)
    :param env_id: the gymnasium id the env follows (``EnvSpec.env_id``)
    :param is_atari: whether ``game`` is an Atari game
    :param algo: ``ppo``, ``a2c`` or ``dqn``
    :param variant: variant name (``conv``, ``coordconv``, ``coordconv-all-r``...)
    :param coord_layers: CoordConv layers (``none``, ``first``, ``all``, ``0,2``...)
    :param with_r: radius channel
    :param seed: seed of agent and envs
    :param timesteps: training target in environment steps
    :param n_envs: parallel training envs
    :param env_backend: ``native`` or ``sb3``
    :param device: the device asked for (``auto``, ``cpu``, ``cuda``)
    :param eval_episodes: full games per evaluation
    :param eval_freq: evaluate every this many env steps (0: final evaluation only)
    :param eval_deterministic: greedy actions in evaluations (default: sample, as rl-zoo3 does
        for Atari)
    :param checkpoint_freq: checkpoint every this many env steps (0: only on interrupt)
    :param keep_checkpoints: keep the newest this many periodic checkpoints (0: all)
    :param hyperparams: raw algorithm arguments (``lin_X`` / ``policy_kwargs`` strings as written)
    :param coordrl_version: version that created the run
    :param command: the command line that created the run
    """

    game: str
    env_id: str
    is_atari: bool
    algo: str
    variant: str
    coord_layers: str
    with_r: bool
    seed: int
    timesteps: int
    n_envs: int
    env_backend: str
    device: str
    eval_episodes: int
    eval_freq: int
    eval_deterministic: bool
    checkpoint_freq: int
    keep_checkpoints: int
    hyperparams: dict[str, Any] = field(default_factory=dict)
    coordrl_version: str = coordrl.__version__
    command: str = ""

    @property
    def variant_obj(self) -> Variant:
        return Variant(coord_layers=self.coord_layers, with_r=self.with_r)

    def algo_config(self) -> AlgoConfig:
        return AlgoConfig(self.algo, self.n_envs, self.timesteps, dict(self.hyperparams))


# ------------------------------------------------------------------------------------ parser
class OneLineArgumentParser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit code 2 (argparse prints usage too)
        raise UsageError(message)


def _count(text: str) -> int:
    """A step count: ``1000000``, ``1_000_000``, ``1e6`` or ``2.5e6``."""
    try:
        value = float(text.replace("_", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of steps, got {text!r}") from None
    if not math.isfinite(value) or value != int(value):
        raise argparse.ArgumentTypeError(f"expected a whole number of steps, got {text!r}")
    return int(value)


def build_parser() -> argparse.ArgumentParser:
    p = OneLineArgumentParser(
        prog="python -m coordrl.train",
        description="Train an SB3 agent (PPO/A2C/DQN) with or without CoordConv on an Atari game "
        "or a gymnasium pixel env. Hyperparameters: configs/<algo>.yaml (rl-baselines3-zoo's).",
    )
    what = p.add_argument_group("what to train")
    env = what.add_mutually_exclusive_group()
    env.add_argument("--game", help="Atari game (Pong, pong, ms_pacman, ALE/Pong-v5...)")
    env.add_argument("--env", help="gymnasium id (e.g. coordrl/PointAtDot-v0) or Atari game")
    what.add_argument("--algo", choices=sorted(ALGOS), default=None, help="default: ppo")
    what.add_argument("--seed", type=int, default=None, help="default: 0")
    what.add_argument("--timesteps", type=_count, default=None, help="default: config n_timesteps")
    what.add_argument("--n-envs", type=int, default=None, help="default: config n_envs")
    what.add_argument(
        "--env-backend",
        choices=("native", "sb3"),
        default=None,
        help="Atari backend: ale-py's C++ vector env (default) or SB3's wrappers",
    )
    what.add_argument("--config", default=None, help="YAML instead of configs/<algo>.yaml")
    what.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a hyperparameter (repeatable), e.g. --set n_steps=64",
    )
    cc = p.add_argument_group("CoordConv variant")
    cc.add_argument(
        "--coordconv",
        action="store_true",
        help="CoordConv in the first conv layer (default: plain conv)",
    )
    cc.add_argument(
        "--coord-layers",
        default=None,
        help="which conv layers get coordinates: none, first, all, or indices '0,2'",
    )
    cc.add_argument("--with-r", action="store_true", default=None, help="add the radius channel")
    cc.add_argument(
        "--variant",
        default=None,
        help="variant by name instead (conv, coordconv, coordconv-all-r, ...)",
    )
    ev = p.add_argument_group("evaluation and checkpoints")
    ev.add_argument(
        "--eval-episodes", type=int, default=None, help="full games per evaluation (default 10)"
    )
    ev.add_argument(
        "--eval-freq",
        type=_count,
        default=None,
        help="evaluate every N env steps (default 250000; 0: final evaluation only)",
    )
    ev.add_argument(
        "--eval-deterministic",
        action="store_true",
        default=None,
        help="greedy evaluation actions (default: sampled, as rl-zoo3 for Atari)",
    )
    ev.add_argument(
        "--checkpoint-freq",
        type=_count,
        default=None,
        help="checkpoint every N env steps (default 200000; 0: only on interrupt)",
    )
    ev.add_argument(
        "--keep-checkpoints",
        type=int,
        default=None,
        help="keep the newest N periodic checkpoints (default 3; 0: all)",
    )
    rt = p.add_argument_group("where and how")
    rt.add_argument("--logdir", default="runs", help="parent of the run directory (default runs)")
    rt.add_argument(
        "--resume",
        metavar="RUN_DIR",
        default=None,
        help="continue an interrupted run from its latest checkpoint",
    )
    rt.add_argument(
        "--device",
        choices=("auto", "cpu", "cuda"),
        default=None,
        help="default auto (CUDA if available)",
    )
    rt.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch CPU threads (default: all cores of this process)",
    )
    rt.add_argument(
        "--no-progress",
        action="store_true",
        help="no progress bar; print a status line every 10%% instead",
    )
    return p


_DEFAULTS = {
    "algo": "ppo",
    "seed": 0,
    "env_backend": "native",
    "device": "auto",
    "eval_episodes": 10,
    "eval_freq": 250_000,
    "eval_deterministic": False,
    "checkpoint_freq": 200_000,
    "keep_checkpoints": 3,
}


# ----------------------------------------------------------------------------- config set-up
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


def _resolve_env_name(name: str) -> EnvSpec:
    try:
        return resolve_env(name)
    except UnknownEnvError as e:
        raise UsageError(str(e)) from None


def _new_run_config(args: argparse.Namespace, argv: list[str]) -> RunConfig:
    name = args.game or args.env
    if name is None:
        raise UsageError("say what to train: --game NAME (or --env ID), or --resume RUN_DIR")
    algo = args.algo or _DEFAULTS["algo"]
    spec = _resolve_env_name(name)
    try:
        cfg = load_config(algo, args.config)
        cfg = apply_overrides(cfg, parse_overrides(args.overrides)) if args.overrides else cfg
    except ConfigError as e:
        raise UsageError(str(e)) from None
    timesteps = args.timesteps if args.timesteps is not None else cfg.n_timesteps
    n_envs = args.n_envs if args.n_envs is not None else cfg.n_envs
    variant = _variant_from_args(args) or Variant()
    opts = {
        k: getattr(args, k) if getattr(args, k) is not None else v for k, v in _DEFAULTS.items()
    }
    config = RunConfig(
        game=spec.game,
        env_id=spec.env_id,
        is_atari=spec.is_atari,
        algo=algo,
        variant=variant.name,
        coord_layers=variant.coord_layers,
        with_r=variant.with_r,
        seed=opts["seed"],
        timesteps=timesteps,
        n_envs=n_envs,
        env_backend=opts["env_backend"],
        device=opts["device"],
        eval_episodes=opts["eval_episodes"],
        eval_freq=opts["eval_freq"],
        eval_deterministic=opts["eval_deterministic"],
        checkpoint_freq=opts["checkpoint_freq"],
        keep_checkpoints=opts["keep_checkpoints"],
        hyperparams=cfg.hyperparams,
        command=shlex.join([sys.executable, "-m", "coordrl.train", *argv]),
    )
    _check_values(config)
    return config


def _check_values(config: RunConfig) -> None:
    if config.timesteps < 1:
        raise UsageError(f"--timesteps must be positive, got {config.timesteps}")
    if config.n_envs < 1:
        raise UsageError(f"--n-envs must be positive, got {config.n_envs}")
    if config.eval_episodes < 1:
        raise UsageError(f"--eval-episodes must be positive, got {config.eval_episodes}")
    for key in ("eval_freq", "checkpoint_freq", "keep_checkpoints"):
        if getattr(config, key) < 0:
            flag = "--" + key.replace("_", "-")
            raise UsageError(f"{flag} must be >= 0, got {getattr(config, key)}")


def load_run_config(run_dir: str | os.PathLike) -> RunConfig:
    """Read ``RUN_DIR/config.yaml``.

    :raises runs.CorruptRunError: missing keys, bad values or not YAML (names the file)
    :raises FileNotFoundError: no config.yaml
    """
    path = Path(run_dir) / runs.CONFIG_FILE
    try:
        with open(path) as f:
            data = yaml.safe_load(f)
    except yaml.YAMLError as e:
        raise runs.CorruptRunError(f"{path}: not valid YAML ({e})".replace("\n", " ")) from e
    if not isinstance(data, dict):
        raise runs.CorruptRunError(f"{path}: expected a mapping")
    try:
        config = RunConfig(**data)
        # Validate the saved hyperparameters and variant as a new run would.
        config_from_dict(
            config.algo,
            {"n_envs": config.n_envs, "n_timesteps": config.timesteps, **config.hyperparams},
            source=str(path),
        )
        Variant.from_name(config.variant)
    except (TypeError, ValueError) as e:  # ConfigError is a ValueError
        raise runs.CorruptRunError(f"{path}: does not describe a run ({e})") from e
    return config


def _save_run_config(run_dir: Path, config: RunConfig) -> None:
    runs.atomic_write_text(
        run_dir / runs.CONFIG_FILE, yaml.safe_dump(asdict(config), sort_keys=False)
    )


def _resume_run_config(args: argparse.Namespace) -> RunConfig:
    """The saved config of ``--resume RUN_DIR``; flags given with it must agree with it."""
    run_dir = Path(args.resume)
    if not run_dir.is_dir():
        raise UsageError(f"--resume {run_dir}: no such run directory")
    if (run_dir / runs.RESULT_FILE).exists():
        raise UsageError(f"--resume {run_dir}: the run is already complete (result.json exists)")
    try:
        config = load_run_config(run_dir)
    except FileNotFoundError:
        raise UsageError(f"--resume {run_dir}: not a run directory (no config.yaml)") from None
    except runs.CorruptRunError as e:
        raise UsageError(f"--resume: {e}") from None
    name = args.game or args.env
    given: dict[str, Any] = {
        "game": _resolve_env_name(name).game if name else None,
        "algo": args.algo,
        "seed": args.seed,
        "timesteps": args.timesteps,
        "n_envs": args.n_envs,
        "env_backend": args.env_backend,
        "eval_episodes": args.eval_episodes,
        "eval_freq": args.eval_freq,
        "eval_deterministic": args.eval_deterministic,
        "checkpoint_freq": args.checkpoint_freq,
        "keep_checkpoints": args.keep_checkpoints,
    }
    variant = _variant_from_args(args)
    if variant is not None:
        given["variant"] = variant.name
    if args.overrides or args.config:
        try:
            cfg = load_config(config.algo, args.config)
            cfg = apply_overrides(cfg, parse_overrides(args.overrides))
        except ConfigError as e:
            raise UsageError(str(e)) from None
        if cfg.hyperparams != config.hyperparams:
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


def _check_device(device: str) -> th.device:
    if device == "cuda" and not th.cuda.is_available():
        raise UsageError("--device cuda: CUDA is not available here (use --device cpu or auto)")
    if device == "auto":
        return th.device("cuda" if th.cuda.is_available() else "cpu")
    return th.device(device)


def _available_cores() -> int:
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


# ----------------------------------------------------------------------------- environments
def make_eval_env(config: RunConfig, n_episodes: int, seed: int | None = None) -> VecEnv:
    """The evaluation env of a run: full games, unclipped rewards, up to :data:`MAX_EVAL_ENVS`
    envs in parallel.

    :param config: the run's configuration
    :param n_episodes: episodes the evaluations will play (caps the number of envs)
    :param seed: env seed (default: the run's seed + :data:`EVAL_SEED_OFFSET`)
    """
    seed = config.seed + EVAL_SEED_OFFSET if seed is None else seed
    n = max(1, min(n_episodes, MAX_EVAL_ENVS))
    env, _ = make_env(config.game, n, seed, backend=config.env_backend, training=False)
    return env


def _check_image_env(env: VecEnv, config: RunConfig) -> None:
    space = env.observation_space
    if not (isinstance(space, spaces.Box) and is_image_space(space, check_channels=False)):
        raise UsageError(
            f"{config.game}: observations {space} are not images; coordrl trains Nature-CNN "
            "agents on image envs (Atari games, coordrl/PointAtDot-v0)"
        )


def evaluate_returns(
    model: BaseAlgorithm,
    env: VecEnv,
    n_episodes: int,
    deterministic: bool = False,
    should_stop: Callable[[], bool] | None = None,
) -> tuple[list[float], list[int]]:
    """Play ``n_episodes`` full episodes over the envs of ``env`` (SB3's ``evaluate_policy``,
    which spreads the episodes evenly over the envs so short episodes are not over-counted).

    :param model: the agent
    :param env: an evaluation vector env (full games, unclipped rewards)
    :param n_episodes: number of episodes
    :param deterministic: greedy instead of sampled actions
    :param should_stop: polled every step; when it returns True the evaluation is abandoned
        (raises :class:`_Interrupted`)
    :return: per-episode returns and lengths
    """

    def poll(_locals: dict, _globals: dict) -> None:
        if should_stop is not None and should_stop():
            raise _Interrupted()

    returns, lengths = evaluate_policy(
        model,
        env,
        n_eval_episodes=n_episodes,
        deterministic=deterministic,
        return_episode_rewards=True,
        warn=False,
        callback=poll,
    )
    return [float(r) for r in returns], [int(n) for n in lengths]  # type: ignore[union-attr]


# ----------------------------------------------------------------------------- callbacks
class _StopFlag:
    """Set by SIGINT/SIGTERM; a second SIGINT raises KeyboardInterrupt at once."""

    def __init__(self) -> None:
        self.requested = False
        self.signal_name = ""

    def handler(self, signum: int, _frame: Any) -> None:
        if self.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        if not self.requested:
            self.signal_name = signal.Signals(signum).name
            print(
                f"\n{self.signal_name}: stopping after the current step and saving a checkpoint "
                "(Ctrl-C again to stop at once)",
                file=sys.stderr,
                flush=True,
            )
        self.requested = True


class _RunCallback(BaseCallback):
    """Stops on request, saves periodic checkpoints and runs periodic evaluations.

    :param run_dir: the run directory
    :param config: the run's configuration
    :param eval_env: the evaluation env
    :param stop: the stop flag
    :param evaluations: evaluations so far (appended to, rewritten atomically)
    :param status_lines: print a status line every 10% of training (when there is no bar)
    """

    def __init__(
        self,
        run_dir: Path,
        config: RunConfig,
        eval_env: VecEnv,
        stop: _StopFlag,
        evaluations: list[dict[str, Any]],
        status_lines: bool,
    ) -> None:
        super().__init__()
        self.run_dir = run_dir
        self.config = config
        self.eval_env = eval_env
        self.stop = stop
        self.evaluations = evaluations
        self.status_lines = status_lines
        self._t0 = time.perf_counter()
        self._steps0 = 0
        self.rollout_start_steps = 0

    def _on_training_start(self) -> None:
        n = self.num_timesteps
        self._steps0 = n
        self._t0 = time.perf_counter()
        self._next_eval = _next_multiple(n, self.config.eval_freq)
        self._next_ckpt = _next_multiple(n, self.config.checkpoint_freq)
        self._next_status = _next_multiple(n, max(self.config.timesteps // 10, 1))

    def _on_rollout_start(self) -> None:
        self.rollout_start_steps = self.model.num_timesteps

    def _on_step(self) -> bool:
        if self.stop.requested:
            return False
        n = self.num_timesteps
        if n >= self._next_ckpt:
            self._next_ckpt = _next_multiple(n, self.config.checkpoint_freq)
            save_checkpoint(self.model, self.run_dir, self.config.keep_checkpoints)
        if n >= self._next_eval:
            self._next_eval = _next_multiple(n, self.config.eval_freq)
            # The final evaluation (after learn) covers the last step.
            if n < self.config.timesteps and not self._evaluate(n):
                return False
        if self.status_lines and n >= self._next_status:
            self._next_status = _next_multiple(n, max(self.config.timesteps // 10, 1))
            elapsed = time.perf_counter() - self._t0
            fps = (n - self._steps0) / max(elapsed, 1e-9)
            eta = (self.config.timesteps - n) / max(fps, 1e-9)
            print(
                f"step {n}/{self.config.timesteps} ({100 * n / self.config.timesteps:.0f}%), "
                f"{fps:.0f} steps/s, ETA {_hms(eta)}",
                flush=True,
            )
        return True

    def _evaluate(self, step: int) -> bool:
        start = time.perf_counter()
        try:
            returns, lengths = evaluate_returns(
                self.model,
                self.eval_env,
                self.config.eval_episodes,
                self.config.eval_deterministic,
                should_stop=lambda: self.stop.requested,
            )
        except _Interrupted:
            return False
        record_evaluation(self.run_dir, self.evaluations, step, returns, lengths, final=False)
        self.logger.record("eval/mean_return", float(np.mean(returns)))
        self.logger.record("eval/mean_ep_length", float(np.mean(lengths)))
        self.logger.record("eval/time_s", time.perf_counter() - start)
        print(f"step {step}: eval {_summary(returns)}", flush=True)
        return True


def _next_multiple(n: int, freq: int) -> float:
    """The first multiple of ``freq`` strictly above ``n`` (``inf`` when ``freq`` is 0)."""
    return math.inf if freq <= 0 else (n // freq + 1) * freq


def _hms(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def _summary(returns: list[float]) -> str:
    return f"{np.mean(returns):.2f} ± {np.std(returns):.2f} over {len(returns)} episodes"


# ----------------------------------------------------------------------------- run files
def save_checkpoint(model: BaseAlgorithm, run_dir: Path, keep: int = 0) -> Path:
    """Save ``checkpoints/model_<steps>_steps.zip`` atomically (SB3's CheckpointCallback
    naming); keep the newest ``keep`` checkpoints (0: all).

    :param model: the agent
    :param run_dir: the run directory
    :param keep: how many checkpoints to keep
    """
    ckpt_dir = run_dir / runs.CHECKPOINT_DIR
    path = ckpt_dir / f"{CHECKPOINT_PREFIX}_{model.num_timesteps}_steps.zip"
    _atomic_save(model, path)
    if keep > 0:
        for old in runs.checkpoints(run_dir)[:-keep]:
            old.unlink(missing_ok=True)
    return path


def _atomic_save(model: BaseAlgorithm, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with open(tmp, "wb") as f:
            model.save(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def read_evaluations(run_dir: Path) -> list[dict[str, Any]]:
    """The evaluations recorded in ``RUN_DIR/evaluations.json`` (empty if there is none)."""
    path = run_dir / runs.EVALS_FILE
    if not path.exists():
        return []
    data = runs.read_json(path)
    if not isinstance(data, dict) or not isinstance(data.get("evaluations"), list):
        raise runs.CorruptRunError(f"{path}: expected {{'evaluations': [...]}}")
    return data["evaluations"]


def record_evaluation(
    run_dir: Path,
    evaluations: list[dict[str, Any]],
    step: int,
    returns: list[float],
    lengths: list[int],
    final: bool,
) -> None:
    """Append one evaluation and rewrite ``evaluations.json`` atomically."""
    evaluations.append(
        {"step": int(step), "returns": returns, "lengths": lengths, "final": bool(final)}
    )
    runs.atomic_write_json(run_dir / runs.EVALS_FILE, {"evaluations": evaluations})


# ----------------------------------------------------------------------------- main
def _prepare(args: argparse.Namespace, argv: list[str]) -> tuple[Path, RunConfig, Path | None]:
    """Validate everything that can be validated without side effects.

    :return: run directory, configuration, checkpoint to resume from (or None)
    """
    if args.resume is not None:
        config = _resume_run_config(args)
        run_dir = Path(args.resume)
        checkpoint = runs.latest_checkpoint(run_dir)
    else:
        config = _new_run_config(args, argv)
        run_dir = Path(args.logdir) / runs.run_name(
            config.game, config.algo, config.variant, config.seed
        )
        if run_dir.exists() and any(run_dir.iterdir()):
            raise UsageError(
                f"run directory {run_dir} already exists; continue it with --resume {run_dir}, "
                "or choose another --seed / --logdir"
            )
        checkpoint = None
    if args.threads is not None and args.threads < 1:
        raise UsageError(f"--threads must be positive, got {args.threads}")
    _check_device(config.device)
    return run_dir, config, checkpoint


def _load_checkpoint(
    config: RunConfig, path: Path, env: VecEnv, device: th.device
) -> BaseAlgorithm:
    cls = ALGOS[config.algo]
    try:
        model = cls.load(path, env=env, device=device)
    except Exception as e:  # a zip that SB3 cannot read: name it, do not touch anything
        raise UsageError(
            f"--resume: cannot load checkpoint {path} ({type(e).__name__}: {e}); delete it to "
            "resume from the previous one"
        ) from None
    set_channels_last(model, use_channels_last(device))
    model._last_obs = None  # type: ignore[assignment]  # fresh envs: reset them in learn()
    if config.algo == "dqn":
        # The replay buffer is not checkpointed: wait for learning_starts new transitions.
        learning_starts = int(config.hyperparams.get("learning_starts", 100))
        model.learning_starts = model.num_timesteps + learning_starts  # type: ignore[attr-defined]
    return model


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m coordrl.train``; returns the exit code.

    :param argv: arguments (default ``sys.argv[1:]``)
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    stop = _StopFlag()
    handlers_installed = False
    old_handlers: dict[int, Any] = {}
    try:
        args = build_parser().parse_args(argv)
        run_dir, config, checkpoint = _prepare(args, argv)
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                old_handlers[sig] = signal.signal(sig, stop.handler)
            handlers_installed = True
        return _train(args, run_dir, config, checkpoint, stop)
    except UsageError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    finally:
        if handlers_installed:
            for sig, handler in old_handlers.items():
                signal.signal(sig, handler)


def _train(
    args: argparse.Namespace,
    run_dir: Path,
    config: RunConfig,
    checkpoint: Path | None,
    stop: _StopFlag,
) -> int:
    device = _check_device(config.device)
    th.set_num_threads(args.threads or _available_cores())
    try:
        env, _ = make_env(config.game, config.n_envs, config.seed, config.env_backend, True)
    except (UnknownEnvError, ValueError) as e:
        raise UsageError(str(e)) from None
    model: BaseAlgorithm | None = None
    eval_env: VecEnv | None = None
    try:
        _check_image_env(env, config)
        resumed = args.resume is not None
        if checkpoint is not None:
            model = _load_checkpoint(config, checkpoint, env, device)
        else:
            try:
                model = build_model(
                    config.algo, env, config.hyperparams, config.variant_obj, config.seed, device
                )
            except (ConfigError, ValueError, AssertionError) as e:
                raise UsageError(f"cannot build the {config.algo.upper()} agent: {e}") from None
        evaluations = read_evaluations(run_dir) if resumed else []
        # Evaluations after the checkpoint belong to steps that will be trained again.
        evaluations = [
            e for e in evaluations if e["step"] <= model.num_timesteps and not e["final"]
        ]
        if not resumed:
            run_dir.mkdir(parents=True, exist_ok=True)
            _save_run_config(run_dir, config)
        else:
            # keep evaluations.json consistent with the checkpoint we restart from
            runs.atomic_write_json(run_dir / runs.EVALS_FILE, {"evaluations": evaluations})
        eval_env = make_eval_env(config, config.eval_episodes)
        model.set_logger(configure(str(run_dir / runs.TB_DIR), ["tensorboard"]))
        _print_start(run_dir, config, model, checkpoint, resumed, device)
        return _learn_and_finish(args, run_dir, config, model, eval_env, evaluations, stop)
    except runs.CorruptRunError as e:
        raise UsageError(f"--resume: {e}") from None
    except KeyboardInterrupt:
        return _interrupted(model, run_dir, config)
    except UsageError:
        raise
    except Exception as e:
        traceback.print_exc()
        print(f"error: training failed: {type(e).__name__}: {e}", file=sys.stderr)
        return EXIT_FAILURE
    finally:
        env.close()
        if eval_env is not None:
            eval_env.close()


def _print_start(run_dir, config, model, checkpoint, resumed, device) -> None:
    if checkpoint is not None:
        how = f"resuming from {checkpoint.name} (step {model.num_timesteps})"
    elif resumed:
        how = "no checkpoint yet: restarting from step 0"
    else:
        how = "new run"
    print(
        f"{run_dir}: {config.algo.upper()} {config.variant} on {config.game} "
        f"({config.env_backend} env x{config.n_envs}), seed {config.seed}, "
        f"{config.timesteps} steps, device {device}, {th.get_num_threads()} threads; {how}",
        flush=True,
    )


def _learn_and_finish(args, run_dir, config, model, eval_env, evaluations, stop) -> int:
    wall0 = float(getattr(model, _WALL_TIME_ATTR, 0.0))
    t0 = time.perf_counter()
    remaining = config.timesteps - model.num_timesteps
    steps_before = model.num_timesteps
    callback = _RunCallback(run_dir, config, eval_env, stop, evaluations, args.no_progress)
    if remaining > 0:
        try:
            model.learn(
                total_timesteps=remaining,
                callback=CallbackList([callback, CoordUsageCallback()]),
                reset_num_timesteps=False,
                progress_bar=not args.no_progress,
            )
        finally:
            setattr(model, _WALL_TIME_ATTR, wall0 + time.perf_counter() - t0)
    train_time = time.perf_counter() - t0
    if stop.requested:
        if isinstance(model, OnPolicyAlgorithm):
            # The unfinished rollout was never trained on and is dropped; count only the
            # steps the model learned from (the resumed run then trains exactly as far as an
            # uninterrupted one).
            model.num_timesteps = callback.rollout_start_steps
        return _interrupted(model, run_dir, config)

    # Final evaluation, model, result (last, atomically).
    try:
        returns, lengths = evaluate_returns(
            model,
            eval_env,
            config.eval_episodes,
            config.eval_deterministic,
            should_stop=lambda: stop.requested,
        )
    except _Interrupted:
        return _interrupted(model, run_dir, config)
    record_evaluation(run_dir, evaluations, model.num_timesteps, returns, lengths, final=True)
    model.logger.record("eval/mean_return", float(np.mean(returns)))
    model.logger.dump(model.num_timesteps)
    _atomic_save(model, run_dir / runs.MODEL_FILE)
    curve = [e for e in evaluations if not e["final"]]
    if not curve or curve[-1]["step"] != model.num_timesteps:
        curve.append(evaluations[-1])
    trained = model.num_timesteps - steps_before
    result = RunResult(
        game=config.game,
        env_id=config.env_id,
        is_atari=config.is_atari,
        algo=config.algo,
        variant=config.variant,
        seed=config.seed,
        timesteps=config.timesteps,
        steps_done=int(model.num_timesteps),
        final_returns=returns,
        final_lengths=lengths,
        curve_steps=[int(e["step"]) for e in curve],
        curve_returns=[list(e["returns"]) for e in curve],
        wall_time_s=float(getattr(model, _WALL_TIME_ATTR, train_time)),
        fps=trained / train_time if train_time > 0 and trained > 0 else 0.0,
        device=str(model.device),
        extra={
            "coordrl_version": coordrl.__version__,
            "env_backend": config.env_backend,
            "n_envs": config.n_envs,
            "coord_layers": config.coord_layers,
            "with_r": config.with_r,
            "eval_deterministic": config.eval_deterministic,
            "coord_ratios": coord_weight_ratios(model),
        },
    )
    runs.write_result(run_dir, result)
    model.logger.close()
    print(
        f"{run_dir}: done, {model.num_timesteps} steps; final eval {_summary(returns)}", flush=True
    )
    return EXIT_OK


def _interrupted(model: BaseAlgorithm | None, run_dir: Path, config: RunConfig) -> int:
    if model is None or not (run_dir / runs.CONFIG_FILE).exists():
        print("interrupted before training started; nothing saved", file=sys.stderr)
        return EXIT_INTERRUPTED
    path = save_checkpoint(model, run_dir, keep=0)
    model.logger.close()
    print(
        f"interrupted at step {model.num_timesteps}/{config.timesteps}; checkpoint {path}; "
        f"continue with: python -m coordrl.train --resume {run_dir}",
        file=sys.stderr,
        flush=True,
    )
    return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
