"""One training run: build the envs and the agent, train with periodic evaluations and
checkpoints, write the run directory, stop cleanly on request.

The command line (``python -m coordrl.train``) lives in :mod:`coordrl.train`; this module is
what it calls, and what :mod:`coordrl.evaluate` uses to rebuild a run's evaluation env. Every
file of the run directory is written through :mod:`coordrl.runs`.

Resuming: a run continues from its newest checkpoint that loads (older ones are tried when
the newest is damaged) with the same configuration. Checkpoints of on-policy algorithms are
taken between rollouts, after the update, and the unfinished rollout is dropped at an interrupt
(it was never trained on), so a resumed run trains exactly as far as an uninterrupted one;
DQN's replay buffer is not checkpointed and refills for ``learning_starts`` steps after a
resume. The RNG states are restored (:class:`coordrl.checkpoint.RngState`); the envs restart
their episodes, seeded from the run's seed and the checkpoint's step. Loading never unpickles
anything from the file (:mod:`coordrl.checkpoint`).
"""

from __future__ import annotations

import math
import os
import signal
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback, CallbackList
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.logger import Logger, TensorBoardOutputFormat, configure
from stable_baselines3.common.on_policy_algorithm import OnPolicyAlgorithm
from stable_baselines3.common.preprocessing import is_image_space
from stable_baselines3.common.vec_env import VecEnv

from coordrl import __version__, runs
from coordrl._cli import (
    EXIT_FAILURE,
    EXIT_INTERRUPTED,
    EXIT_OK,
    MAX_SEED,
    MAX_STEPS,
    UsageError,
)
from coordrl.agents.config import ALGOS, AlgoConfig, ConfigError, config_from_dict
from coordrl.agents.factory import (
    build_model,
    check_extractor_kwargs,
    torch_threads,
)
from coordrl.checkpoint import (
    WALL_TIME_ATTR,
    CheckpointError,
    RngState,
    load_checkpoint,
    load_model,
    save_model,
)
from coordrl.coord_usage import CoordUsageCallback, coord_weight_ratios
from coordrl.envs import UnknownEnvError, make_env, resolve_env
from coordrl.envs.factory import BACKENDS as ENV_BACKENDS
from coordrl.runs import RunConfig, RunResult
from coordrl.variant import Variant

__all__ = [
    "EVAL_SEED_OFFSET",
    "MAX_EVAL_ENVS",
    "Interrupted",
    "StopFlag",
    "algo_config",
    "check_config",
    "env_description",
    "evaluate_returns",
    "load_model",
    "make_eval_env",
    "run_training",
    "save_checkpoint",
]

#: Env families whose vector env the run's ``env_backend`` chooses (``coordrl.envs.make_env``).
BACKEND_FAMILIES = ("atari", "minatar")
#: Evaluation envs are seeded apart from the training envs (seed + this offset).
EVAL_SEED_OFFSET = 10_000
#: At most this many evaluation envs play episodes in parallel.
MAX_EVAL_ENVS = 8
#: ``progress.json`` is rewritten at most this often (seconds).
PROGRESS_EVERY_S = 5.0


class Interrupted(Exception):
    """Raised inside an evaluation when a stop was requested."""


# ----------------------------------------------------------------------------- configuration
def algo_config(config: RunConfig) -> AlgoConfig:
    """The algorithm configuration a run's ``config.yaml`` describes."""
    return AlgoConfig(config.algo, config.n_envs, config.timesteps, dict(config.hyperparams))


def check_config(config: RunConfig, source: str = "config") -> None:
    """Check a run configuration the same way whether it is new or read back from
    ``config.yaml`` for ``--resume`` or evaluation, and before anything is built: value ranges,
    the game, the algorithm's hyperparameters (``policy_kwargs`` included) and the variant.

    :param config: the configuration
    :param source: where it came from, for the error message (``--timesteps``, a file...)
    :raises ValueError: the first problem found (``ConfigError`` is a ``ValueError``)
    """
    if config.algo not in ALGOS:
        raise ValueError(f"{source}: unknown algorithm {config.algo!r}")
    if not 1 <= config.timesteps <= MAX_STEPS:
        raise ValueError(
            f"{source}: timesteps must be in 1..{MAX_STEPS:.0e}, got {config.timesteps}"
        )
    if not 0 <= config.seed <= MAX_SEED:
        raise ValueError(f"{source}: seed must be in 0..{MAX_SEED}, got {config.seed}")
    for key in ("n_envs", "eval_episodes"):
        if getattr(config, key) < 1:
            raise ValueError(f"{source}: {key} must be positive, got {getattr(config, key)}")
    for key in ("eval_freq", "checkpoint_freq", "keep_checkpoints"):
        if getattr(config, key) < 0:
            raise ValueError(f"{source}: {key} must be >= 0, got {getattr(config, key)}")
    if config.env_backend not in ENV_BACKENDS:
        raise ValueError(
            f"{source}: env_backend must be one of {', '.join(ENV_BACKENDS)}, "
            f"got {config.env_backend!r}"
        )
    config_from_dict(
        config.algo,
        {"n_envs": config.n_envs, "n_timesteps": config.timesteps, **config.hyperparams},
        source=source,
    )
    check_extractor_kwargs(config.hyperparams, resolve_env(config.game).family, source)
    variant = Variant.from_name(config.variant).canonical()
    if variant.name != config.variant:
        raise ValueError(f"{source}: variant {config.variant!r} is not canonical")


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
            f"{config.game}: observations {space} are not images; coordrl trains CNN agents on "
            "image envs (Atari games, MinAtar, coordrl/PointAtDot-v0)"
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
        (raises :class:`Interrupted`)
    :return: per-episode returns and lengths
    """

    def poll(_locals: dict, _globals: dict) -> None:
        if should_stop is not None and should_stop():
            raise Interrupted()

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


# ----------------------------------------------------------------------------- models
def save_checkpoint(model: BaseAlgorithm, run_dir: Path, keep: int = 0) -> Path:
    """Save ``checkpoints/model_<steps>_steps.zip`` atomically (with the RNG states, see
    :func:`coordrl.checkpoint.save_model`); keep the newest ``keep`` checkpoints (0: all).

    :param model: the agent
    :param run_dir: the run directory
    :param keep: how many checkpoints to keep
    """
    path = runs.checkpoint_path(run_dir, model.num_timesteps)
    save_model(model, path)
    if keep > 0:
        for old in runs.checkpoints(run_dir)[:-keep]:
            old.unlink(missing_ok=True)
    return path


def _resume_seed(seed: int, steps: int) -> int:
    """The seed of the training envs of a session resumed at ``steps``: derived from both with
    numpy's ``SeedSequence``, so the envs do not replay the episodes the run started with, and
    every resume from the same checkpoint gets the same episodes.

    :param seed: the run's seed
    :param steps: the checkpoint's step count
    """
    return int(np.random.SeedSequence([seed, steps]).generate_state(1)[0]) % 2**30


def _resume_from(
    config: RunConfig, checkpoints: Sequence[Path], env: VecEnv, device: th.device
) -> tuple[BaseAlgorithm, Path, RngState | None]:
    """Load the newest of ``checkpoints`` (oldest first) that loads; each newer one that does
    not is skipped with a warning.

    :return: the model (ready to continue on ``env``), the checkpoint, its RNG states
    :raises UsageError: none loads
    """
    errors: list[str] = []
    for path in reversed(checkpoints):
        try:
            model, rng = load_checkpoint(config, path, device, env)
        except CheckpointError as e:
            errors.append(str(e))
            continue
        for error in errors:
            print(f"warning: skipping a checkpoint: {error}", file=sys.stderr, flush=True)
        break
    else:
        others = f" (and {len(errors) - 1} older that do not load either)" if errors[1:] else ""
        raise UsageError(
            f"--resume: {errors[0]}{others}; move {runs.CHECKPOINT_DIR}/ away to restart from "
            "step 0"
        )
    model._last_obs = None  # type: ignore[assignment]  # fresh envs: reset them in learn()
    model.get_env().seed(_resume_seed(config.seed, model.num_timesteps))  # type: ignore[union-attr]
    if config.algo == "dqn":
        # The replay buffer is not checkpointed: wait for learning_starts new transitions.
        learning_starts = int(config.hyperparams.get("learning_starts", 100))
        model.learning_starts = model.num_timesteps + learning_starts  # type: ignore[attr-defined]
    return model, path, rng


class _ResumedTensorBoard(TensorBoardOutputFormat):
    """SB3's TensorBoard output for a resumed session: its writer starts with ``purge_step``,
    so TensorBoard drops what earlier event files of the run logged from that step on (steps
    that are trained again), instead of drawing them twice.

    SB3's class takes no ``purge_step``; this sets the writer it would make, with one.
    """

    def __init__(self, folder: str, purge_step: int) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=folder, purge_step=purge_step)
        self._is_closed = False


def _tensorboard_logger(run_dir: Path, resumed_at: int | None) -> Logger:
    """The run's TensorBoard logger (``tb/``).

    :param run_dir: the run directory
    :param resumed_at: the step a resumed session starts from (``None``: a new run). What was
        logged at that step stays (it was logged before the checkpoint was taken, or describes
        it); everything later is dropped from the display.
    """
    folder = str(run_dir / runs.TB_DIR)
    if resumed_at is None:
        return configure(folder, ["tensorboard"])
    os.makedirs(folder, exist_ok=True)
    return Logger(folder=folder, output_formats=[_ResumedTensorBoard(folder, resumed_at + 1)])


# ----------------------------------------------------------------------------- callbacks
class StopFlag:
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


def _next_multiple(n: int, freq: int) -> float:
    """The first multiple of ``freq`` strictly above ``n`` (``inf`` when ``freq`` is 0)."""
    return math.inf if freq <= 0 else (n // freq + 1) * freq


def _hms(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def _summary(returns: list[float]) -> str:
    return f"{np.mean(returns):.2f} ± {np.std(returns):.2f} over {len(returns)} episodes"


class _RunCallback(BaseCallback):
    """Stops on request, saves periodic checkpoints, runs periodic evaluations and keeps
    ``progress.json`` fresh.

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
        stop: StopFlag,
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
        self._next_progress = 0.0
        self.rollout_start_steps = 0

    def _on_training_start(self) -> None:
        n = self.num_timesteps
        self._steps0 = n
        self._t0 = time.perf_counter()
        self._next_eval = _next_multiple(n, self.config.eval_freq)
        self._next_ckpt = _next_multiple(n, self.config.checkpoint_freq)
        self._next_status = _next_multiple(n, max(self.config.timesteps // 10, 1))
        self.write_progress()

    def _on_rollout_start(self) -> None:
        self.rollout_start_steps = self.model.num_timesteps
        if isinstance(self.model, OnPolicyAlgorithm):
            # Between rollouts, after the update: everything the checkpoint counts was trained
            # on (mid-rollout, its step count would include steps a resume never trains on).
            self._maybe_checkpoint()

    def _maybe_checkpoint(self) -> None:
        n = self.model.num_timesteps
        if n >= self._next_ckpt:
            self._next_ckpt = _next_multiple(n, self.config.checkpoint_freq)
            save_checkpoint(self.model, self.run_dir, self.config.keep_checkpoints)

    def fps(self) -> float:
        return (self.num_timesteps - self._steps0) / max(time.perf_counter() - self._t0, 1e-9)

    def write_progress(self) -> None:
        self._next_progress = time.perf_counter() + PROGRESS_EVERY_S
        runs.write_progress(self.run_dir, self.num_timesteps, self.config.timesteps, self.fps())

    def _on_step(self) -> bool:
        if self.stop.requested:
            return False
        n = self.num_timesteps
        if time.perf_counter() >= self._next_progress:
            self.write_progress()
        if not isinstance(self.model, OnPolicyAlgorithm):
            self._maybe_checkpoint()
        if n >= self._next_eval:
            self._next_eval = _next_multiple(n, self.config.eval_freq)
            # The final evaluation (after learn) covers the last step.
            if n < self.config.timesteps and not self._evaluate(n):
                return False
        if self.status_lines and self._next_status <= n <= self.config.timesteps:
            self._next_status = _next_multiple(n, max(self.config.timesteps // 10, 1))
            fps = self.fps()
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
        except Interrupted:
            return False
        _record_evaluation(self.run_dir, self.evaluations, step, returns, lengths, final=False)
        self.logger.record("eval/mean_return", float(np.mean(returns)))
        self.logger.record("eval/mean_ep_length", float(np.mean(lengths)))
        self.logger.record("eval/time_s", time.perf_counter() - start)
        print(f"step {step}: eval {_summary(returns)}", flush=True)
        return True


def _record_evaluation(
    run_dir: Path,
    evaluations: list[dict[str, Any]],
    step: int,
    returns: list[float],
    lengths: list[int],
    final: bool,
) -> None:
    """Append one evaluation and rewrite ``evaluations.json``."""
    evaluations.append(
        {"step": int(step), "returns": returns, "lengths": lengths, "final": bool(final)}
    )
    runs.write_evaluations(run_dir, evaluations)


# ----------------------------------------------------------------------------- the run
def run_training(
    run_dir: Path,
    config: RunConfig,
    checkpoints: Sequence[Path],
    resumed: bool,
    threads: int | None,
    progress_bar: bool,
    stop: StopFlag,
) -> int:
    """Train the run ``config`` describes into ``run_dir``; returns the exit code.

    :param run_dir: the run directory (new and absent or empty, or the one being resumed)
    :param config: the checked configuration (:func:`check_config`)
    :param checkpoints: the checkpoints to continue from, oldest first: the newest that loads is
        used, newer ones that do not are skipped with a warning (empty: from step 0)
    :param resumed: whether this continues an existing run directory
    :param threads: torch CPU threads (``None``: one for MinAtar on the CPU, else all cores)
    :param progress_bar: show SB3's progress bar (else a status line every 10%)
    :param stop: set by the caller's signal handlers; training checkpoints and stops
    :raises UsageError: the env or agent cannot be built from this configuration
    """
    from coordrl.hardware import available_cores, resolve_device

    try:
        device = th.device(resolve_device(config.device))
    except ValueError as e:
        raise UsageError(str(e)) from None
    try:
        env, spec = make_env(config.game, config.n_envs, config.seed, config.env_backend, True)
    except (UnknownEnvError, ValueError) as e:
        raise UsageError(str(e)) from None
    th.set_num_threads(threads or torch_threads(spec.family, device) or available_cores())
    model: BaseAlgorithm | None = None
    eval_env: VecEnv | None = None
    checkpoint: Path | None = None
    rng: RngState | None = None
    try:
        _check_image_env(env, config)
        if checkpoints:
            model, checkpoint, rng = _resume_from(config, checkpoints, env, device)
        else:
            try:
                model = build_model(
                    config.algo,
                    env,
                    config.hyperparams,
                    Variant.from_name(config.variant),
                    config.seed,
                    device,
                    family=spec.family,
                )
            except (ConfigError, ValueError, AssertionError) as e:
                raise UsageError(f"cannot build the {config.algo.upper()} agent: {e}") from None
        evaluations = runs.read_evaluations(run_dir) if resumed else []
        # Evaluations after the checkpoint belong to steps that will be trained again.
        evaluations = [
            e for e in evaluations if e["step"] <= model.num_timesteps and not e["final"]
        ]
        if not resumed:
            _write_new_config(run_dir, config)
        else:
            # keep evaluations.json consistent with the checkpoint we restart from
            runs.write_evaluations(run_dir, evaluations)
        eval_env = make_eval_env(config, config.eval_episodes)
        model.set_logger(_tensorboard_logger(run_dir, model.num_timesteps if resumed else None))
        _print_start(run_dir, config, env, spec.family, model, checkpoint, resumed, device)
        if rng is not None:  # last: building the envs may draw from the global generators
            print(f"restored RNG states: {', '.join(rng.restore(model))}", flush=True)
        return _learn_and_finish(run_dir, config, model, eval_env, evaluations, stop, progress_bar)
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


def _write_new_config(run_dir: Path, config: RunConfig) -> None:
    """The first file of a new run (creating its directory); a directory that cannot be made
    although the CLI's check passed (``os.access`` cannot tell, e.g. for root) is bad input."""
    try:
        runs.write_config(run_dir, config)
    except OSError as e:
        raise UsageError(
            f"cannot create the run directory {run_dir} ({e.strerror or e}); "
            "choose another --logdir"
        ) from None


def env_description(env: VecEnv, family: str, backend: str) -> str:
    """What a run trains on, for its first line: ``8 x MinAtarVecEnv, native backend``, or
    ``8 x DummyVecEnv`` for a gymnasium id (whose env the backend does not change).

    :param env: the training vector env (SB3 wrappers such as ``VecFrameStack`` are looked
        through: the innermost vector env is named)
    :param family: ``EnvSpec.family``
    :param backend: the run's ``env_backend``
    """
    inner = env
    while isinstance(getattr(inner, "venv", None), VecEnv):
        inner = inner.venv  # type: ignore[attr-defined]
    text = f"{env.num_envs} x {type(inner).__name__}"
    return f"{text}, {backend} backend" if family in BACKEND_FAMILIES else text


def _print_start(run_dir, config, env, family, model, checkpoint, resumed, device) -> None:
    if checkpoint is not None:
        how = f"resuming from {checkpoint.name} (step {model.num_timesteps})"
    elif resumed:
        how = "no checkpoint yet: restarting from step 0"
    else:
        how = "new run"
    print(
        f"{run_dir}: {config.algo.upper()} {config.variant} on {config.game} "
        f"({env_description(env, family, config.env_backend)}), seed {config.seed}, "
        f"{config.timesteps} steps, device {device}, {th.get_num_threads()} threads; {how}",
        flush=True,
    )


def _learn_and_finish(run_dir, config, model, eval_env, evaluations, stop, progress_bar) -> int:
    wall0 = float(getattr(model, WALL_TIME_ATTR, 0.0))
    t0 = time.perf_counter()
    remaining = config.timesteps - model.num_timesteps
    steps_before = model.num_timesteps
    callback = _RunCallback(run_dir, config, eval_env, stop, evaluations, not progress_bar)
    if remaining > 0:
        try:
            model.learn(
                total_timesteps=remaining,
                callback=CallbackList([callback, CoordUsageCallback()]),
                reset_num_timesteps=False,
                progress_bar=progress_bar,
            )
        finally:
            setattr(model, WALL_TIME_ATTR, wall0 + time.perf_counter() - t0)
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
    except Interrupted:
        return _interrupted(model, run_dir, config)
    _record_evaluation(run_dir, evaluations, model.num_timesteps, returns, lengths, final=True)
    model.logger.record("eval/mean_return", float(np.mean(returns)))
    model.logger.dump(model.num_timesteps)
    save_model(model, run_dir / runs.MODEL_FILE)
    curve = [e for e in evaluations if not e["final"]]
    if not curve or curve[-1]["step"] != model.num_timesteps:
        curve.append(evaluations[-1])
    trained = model.num_timesteps - steps_before
    fps = trained / train_time if train_time > 0 and trained > 0 else 0.0
    runs.write_progress(run_dir, model.num_timesteps, config.timesteps, fps)
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
        wall_time_s=float(getattr(model, WALL_TIME_ATTR, train_time)),
        fps=fps,
        device=str(model.device),
        extra={
            "coordrl_version": __version__,
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
    runs.write_progress(run_dir, model.num_timesteps, config.timesteps, 0.0)
    model.logger.close()
    print(
        f"interrupted at step {model.num_timesteps}/{config.timesteps}; checkpoint {path}; "
        f"continue with: python -m coordrl.train --resume {run_dir}",
        file=sys.stderr,
        flush=True,
    )
    return EXIT_INTERRUPTED
