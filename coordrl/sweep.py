"""Seed sweeps: games x algorithms x variants x seeds, each run its own ``coordrl.train`` process.

::

    python -m coordrl.sweep --games Pong Breakout --algos ppo a2c --variants conv coordconv \\
        --seeds 5 --timesteps 2e6 --out sweeps/atari
    python -m coordrl.sweep --config configs/sweeps/pixel.yaml          # same, from a YAML file
    python -m coordrl.sweep --out sweeps/atari                          # resume from its manifest
    python -m coordrl.sweep --config configs/sweeps/pixel.yaml --dry-run

Sweep directory layout::

    SWEEP/
      manifest.json           the sweep definition (what the runs are); checked on every rerun
      runs/<run_name>/        one run directory per (game, algo, variant, seed) (coordrl.runs)
      logs/<run_name>.log     output of a run *while it runs*; appended to runs/<run>/train.log
                              when the process ends (the train CLI refuses to start in an
                              existing directory, so the log cannot live there from the start)
      locks/<run_name>.lock   held (flock) by the run's training process for as long as it lives
      failed/<run>.failed-K   earlier failed attempts, moved out of runs/ when a run is retried

Every result is written by the training process itself (atomically), so killing the sweep,
even with SIGKILL, loses no completed run; on Linux its children get SIGTERM when the sweep
dies and save a checkpoint. Rerunning the same command skips complete runs, resumes interrupted
ones from their last checkpoint and retries failed ones (``--no-retry`` keeps them failed).

The local backend is a small polling process pool written here because the runs are
subprocesses that must be signalled, locked and logged individually (``concurrent.futures``
and ``multiprocessing`` manage Python callables, not long-lived child processes); the Ray
backend lives in :mod:`coordrl.sweep_ray` and is imported only when asked for.
"""

from __future__ import annotations

import argparse
import ctypes
import fcntl
import itertools
import json
import math
import os
import re
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import time
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import yaml

from coordrl import runs
from coordrl.variant import Variant

MANIFEST_FILE = "manifest.json"
MANIFEST_SCHEMA_VERSION = 1
RUNS_DIR = "runs"
LOGS_DIR = "logs"
LOCKS_DIR = "locks"
FAILED_DIR = "failed"

ALGOS = ("ppo", "a2c", "dqn")
TRAIN_MODULE = "coordrl.train"
#: Exit code of the train CLI (and of this CLI) when interrupted by SIGINT/SIGTERM.
EXIT_INTERRUPTED = 130
#: Seconds the children get to checkpoint after the sweep is interrupted, before SIGKILL.
DEFAULT_GRACE_S = 120.0

#: Sweep definition keys that pass through to every ``coordrl.train`` run (manifest key -> flag).
TRAIN_OPTIONS = {
    "env_backend": "--env-backend",
    "n_envs": "--n-envs",
    "eval_episodes": "--eval-episodes",
    "eval_freq": "--eval-freq",
}


class SweepError(ValueError):
    """Bad input to the sweep (reported as one ``error:`` line, exit code 2)."""


# ----------------------------------------------------------------------------------------------
# Parsing and validating the sweep definition
# ----------------------------------------------------------------------------------------------


def parse_seeds(value: int | str | Sequence[int | str], explicit: bool = False) -> list[int]:
    """Seeds of a sweep.

    A single integer ``N`` means the ``N`` seeds ``0..N-1``. Two or more values are an explicit
    list; each value is a seed or an inclusive range ``A..B`` (``5..9``). An explicit single
    seed is written as a range (``7..7``) or, in YAML, as a one-element list (``[7]``).

    :param value: an int, a string (split on whitespace/commas) or a sequence of ints/strings.
    :param explicit: treat even a single integer as a seed, not a count (YAML lists).
    :return: the seeds in the given order.
    """
    if isinstance(value, bool):
        raise SweepError(f"invalid seeds {value!r}: use a count (5) or a list (0 3 7)")
    if isinstance(value, int):
        tokens: list[str] = [str(value)]
    elif isinstance(value, str):
        tokens = [t for t in re.split(r"[\s,]+", value.strip()) if t]
    else:
        tokens = [str(v) for v in value]
    if not tokens:
        raise SweepError("no seeds given: use a count (--seeds 5 = seeds 0-4) or a list (0 3 7)")
    if len(tokens) == 1 and not explicit and re.fullmatch(r"-?\d+", tokens[0]):
        count = int(tokens[0])
        if count < 1:
            raise SweepError(f"--seeds {count}: the number of seeds must be at least 1")
        return list(range(count))
    seeds: list[int] = []
    for token in tokens:
        m = re.fullmatch(r"(\d+)(?:\.\.(\d+))?", token)
        if m is None:
            raise SweepError(
                f"invalid seed {token!r}: seeds are non-negative integers or ranges A..B (5..9)"
            )
        lo = int(m.group(1))
        hi = int(m.group(2)) if m.group(2) is not None else lo
        if hi < lo:
            raise SweepError(f"invalid seed range {token!r}: the end is smaller than the start")
        seeds.extend(range(lo, hi + 1))
    duplicates = sorted({s for s in seeds if seeds.count(s) > 1})
    if duplicates:
        raise SweepError(f"duplicate seeds {duplicates}: each seed may appear once")
    return seeds


def parse_timesteps(value: int | float | str) -> int:
    """``2e6``, ``2_000_000`` or ``2000000`` -> 2000000; must be a positive integer."""
    try:
        number = float(str(value).replace("_", ""))
    except ValueError:
        raise SweepError(
            f"invalid timesteps {value!r}: use a positive number such as 2e6"
        ) from None
    if not math.isfinite(number) or number <= 0 or number != int(number):
        raise SweepError(f"invalid timesteps {value!r}: must be a positive whole number of steps")
    return int(number)


def parse_overrides(items: Iterable[str] | dict[str, Any] | None) -> dict[str, str]:
    """``--set`` overrides as an ordered ``{key: value}`` dict of strings.

    A key ``ALGO:key`` (``ppo:n_epochs=4``) applies to that algorithm's runs only; in YAML
    either ``"ppo:n_epochs": 4`` or a nested ``ppo: {n_epochs: 4}``.

    :param items: ``key=value`` strings (command line) or a mapping (YAML); non-string YAML
        values are written as JSON, which the train CLI parses back as YAML.
    """
    if items is None:
        return {}
    overrides: dict[str, str] = {}
    if isinstance(items, dict):
        for k, v in items.items():
            if str(k) in ALGOS and isinstance(v, dict):
                overrides.update({f"{k}:{kk}": vv for kk, vv in parse_overrides(v).items()})
            else:
                overrides[str(k)] = (
                    v if isinstance(v, str) else json.dumps(v, separators=(",", ":"))
                )
        return overrides
    if isinstance(items, str):
        items = [items]
    for item in items:
        key, sep, val = str(item).partition("=")
        if not sep or not key.strip():
            raise SweepError(f"invalid --set {item!r}: use key=value (e.g. --set n_epochs=4)")
        overrides[key.strip()] = val
    return overrides


def overrides_for(algo: str, overrides: dict[str, str]) -> list[str]:
    """The ``key=value`` items of ``overrides`` that apply to ``algo`` (scope prefix removed)."""
    items = []
    for key, value in overrides.items():
        scope, sep, name = key.rpartition(":")
        if not sep or scope == algo:
            items.append(f"{name}={value}")
    return items


def check_overrides(algos: Sequence[str], overrides: dict[str, str]) -> None:
    """Validate the overrides against each algorithm's config now, not hours into a sweep."""
    for key in overrides:
        scope, sep, _ = key.rpartition(":")
        if sep and scope not in algos:
            raise SweepError(
                f"--set {key}: {scope!r} is not an algorithm of this sweep ({', '.join(algos)})"
            )
    from coordrl.agents.config import ConfigError, apply_overrides, load_config
    from coordrl.agents.config import parse_overrides as parse_train_overrides

    for algo in algos:
        items = overrides_for(algo, overrides)
        if items:
            try:
                apply_overrides(load_config(algo), parse_train_overrides(items))
            except ConfigError as e:
                raise SweepError(f"{algo}: {e} (prefix a key with ALGO: to scope it)") from None


def resolve_game(name: str) -> str:
    """The game label the train CLI uses for ``name`` (and so the run directory names):
    Atari games in any spelling become their canonical name (``pong`` -> ``Pong``), other
    registered gymnasium ids (``coordrl/PointAtDot-v0``) stay as they are."""
    from coordrl.envs import UnknownEnvError, resolve_env

    try:
        return resolve_env(name).game
    except UnknownEnvError as e:
        raise SweepError(str(e)) from None


def canonical_variant(name: str) -> str:
    """Check a variant name (``conv``, ``coordconv-L0-2``, ...) and return its canonical form."""
    try:
        variant = Variant.from_name(name)
    except ValueError as e:
        raise SweepError(str(e)) from None
    try:
        return variant.canonical().name
    except ValueError as e:
        raise SweepError(f"variant {name!r}: {e}") from None


def _unique(kind: str, values: Sequence[str]) -> list[str]:
    seen: list[str] = []
    for v in values:
        if v in seen:
            raise SweepError(f"duplicate {kind} {v!r} (after normalising the names)")
        seen.append(v)
    return seen


@dataclass
class SweepDefinition:
    """What the runs of a sweep are; stored in ``manifest.json`` and compared on every rerun.

    :param games: canonical game labels (Atari names or gymnasium ids).
    :param algos: algorithm names (``ppo``, ``a2c``, ``dqn``).
    :param variants: canonical :class:`~coordrl.variant.Variant` names.
    :param seeds: the seeds.
    :param timesteps: environment steps per run.
    :param overrides: ``--set`` overrides passed to every run.
    :param train_options: other result-relevant train CLI options (``n_envs``, ``env_backend``,
        ``eval_episodes``, ``eval_freq``); ``None``/absent means the train CLI's default.
    """

    games: list[str]
    algos: list[str]
    variants: list[str]
    seeds: list[int]
    timesteps: int
    overrides: dict[str, str] = field(default_factory=dict)
    train_options: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def build(
        cls,
        games: Sequence[str] | None,
        algos: Sequence[str] | None,
        variants: Sequence[str] | None,
        seeds: Any,
        timesteps: Any,
        overrides: dict[str, str] | None = None,
        train_options: dict[str, Any] | None = None,
        seeds_explicit: bool = False,
    ) -> SweepDefinition:
        """Validate and normalise raw values (from the command line and/or YAML)."""
        if not games:
            raise SweepError("no games: pass --games (e.g. --games Pong coordrl/PointAtDot-v0)")
        if not algos:
            raise SweepError(f"no algorithms: pass --algos (choices: {', '.join(ALGOS)})")
        if not variants:
            raise SweepError("no variants: pass --variants (e.g. --variants conv coordconv)")
        if seeds is None:
            raise SweepError("no seeds: pass --seeds (5 = seeds 0-4, or a list: 0 3 7)")
        if timesteps is None:
            raise SweepError("no timesteps: pass --timesteps (e.g. --timesteps 2e6)")
        bad_algos = [a for a in algos if a not in ALGOS]
        if bad_algos:
            raise SweepError(f"unknown algorithm {bad_algos[0]!r}: choose from {', '.join(ALGOS)}")
        options = {k: v for k, v in (train_options or {}).items() if v is not None}
        unknown = sorted(set(options) - set(TRAIN_OPTIONS))
        if unknown:
            raise SweepError(f"unknown train option(s) {unknown}: known: {sorted(TRAIN_OPTIONS)}")
        for key in ("n_envs", "eval_episodes"):
            if key in options and (not isinstance(options[key], int) or options[key] < 1):
                raise SweepError(f"{key} must be a positive integer, got {options[key]!r}")
        if "eval_freq" in options and (
            not isinstance(options["eval_freq"], int) or options["eval_freq"] < 0
        ):
            raise SweepError(f"eval_freq must be an integer >= 0, got {options['eval_freq']!r}")
        check_overrides(list(algos), dict(overrides or {}))
        return cls(
            games=_unique("game", [resolve_game(str(g)) for g in games]),
            algos=_unique("algorithm", [str(a) for a in algos]),
            variants=_unique("variant", [canonical_variant(str(v)) for v in variants]),
            seeds=parse_seeds(seeds, explicit=seeds_explicit),
            timesteps=parse_timesteps(timesteps),
            overrides=dict(overrides or {}),
            train_options=options,
        )

    def runs(self) -> list[RunSpec]:
        """All runs, game-major then algo, variant, seed (so early results cover all variants
        of a game)."""
        return [
            RunSpec(game, algo, variant, seed)
            for game, algo, seed, variant in itertools.product(
                self.games, self.algos, self.seeds, self.variants
            )
        ]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def differences(self, other: SweepDefinition) -> list[str]:
        """Human-readable ``key: old -> new`` lines for every key that differs."""
        a, b = self.to_dict(), other.to_dict()
        return [f"{k}: {a[k]!r} (manifest) != {b[k]!r} (command)" for k in a if a[k] != b[k]]


@dataclass(frozen=True)
class RunSpec:
    """One run of a sweep."""

    game: str
    algo: str
    variant: str
    seed: int

    @property
    def name(self) -> str:
        return runs.run_name(self.game, self.algo, self.variant, self.seed)


# ----------------------------------------------------------------------------------------------
# The sweep directory
# ----------------------------------------------------------------------------------------------


class SweepDir:
    """Paths and state of a sweep directory.

    :param path: the sweep directory (``--out``).
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path).absolute()

    @property
    def manifest_path(self) -> Path:
        return self.path / MANIFEST_FILE

    @property
    def runs_dir(self) -> Path:
        return self.path / RUNS_DIR

    def run_dir(self, spec: RunSpec) -> Path:
        return self.runs_dir / spec.name

    def log_path(self, spec: RunSpec) -> Path:
        return self.path / LOGS_DIR / f"{spec.name}.log"

    def lock_path(self, spec: RunSpec) -> Path:
        return self.path / LOCKS_DIR / f"{spec.name}.lock"

    def read_manifest(self) -> SweepDefinition | None:
        """The stored definition, ``None`` if there is no manifest yet."""
        if not self.manifest_path.exists():
            return None
        try:
            data = runs.read_json(self.manifest_path)
            return SweepDefinition(**data["definition"])
        except (runs.CorruptRunError, KeyError, TypeError) as e:
            raise SweepError(f"{self.manifest_path}: not a valid sweep manifest ({e})") from None

    def write_manifest(self, definition: SweepDefinition, argv: Sequence[str]) -> None:
        from coordrl import __version__

        runs.atomic_write_json(
            self.manifest_path,
            {
                "schema_version": MANIFEST_SCHEMA_VERSION,
                "definition": definition.to_dict(),
                "runs": [spec.name for spec in definition.runs()],
                "coordrl_version": __version__,
                "updated": _now_iso(),
                "command": ["python", "-m", "coordrl.sweep", *argv],
            },
        )

    def is_busy(self, spec: RunSpec) -> bool:
        """Whether a training process (of this or another sweep invocation) holds the run."""
        lock = RunLock(self.lock_path(spec))
        if not lock.path.exists():
            return False
        if lock.acquire(create=False):
            lock.release()
            return False
        return True

    def status(self, spec: RunSpec) -> str:
        """``complete``, ``failed``, ``interrupted``, ``new`` (see :func:`coordrl.runs.run_status`)
        or ``running`` (a live process holds the run)."""
        if self.is_busy(spec):
            return "running"
        return runs.run_status(self.run_dir(spec))

    def failed_attempts(self, spec: RunSpec) -> list[Path]:
        return sorted((self.path / FAILED_DIR).glob(f"{spec.name}.failed-*"))

    def move_aside(self, spec: RunSpec, kind: str = "failed") -> Path:
        """Move the run directory to ``failed/<run>.<kind>-K`` (never deleted)."""
        target_dir = self.path / FAILED_DIR
        target_dir.mkdir(parents=True, exist_ok=True)
        for k in itertools.count(1):
            target = target_dir / f"{spec.name}.{kind}-{k}"
            if not target.exists():
                os.replace(self.run_dir(spec), target)
                return target
        raise AssertionError("unreachable")

    def fold_log(self, spec: RunSpec) -> Path | None:
        """Append ``logs/<run>.log`` to ``runs/<run>/train.log`` (if the run directory exists)
        and remove it. Returns the log's final path (or where it still is)."""
        log = self.log_path(spec)
        run_log = self.run_dir(spec) / runs.LOG_FILE
        if not log.exists():
            return run_log if run_log.exists() else None
        if not self.run_dir(spec).is_dir():
            return log
        with open(log, "rb") as src, open(run_log, "ab") as dst:
            shutil.copyfileobj(src, dst)
            dst.flush()
            os.fsync(dst.fileno())
        log.unlink()
        return run_log

    def fold_stale_logs(self, specs: Iterable[RunSpec]) -> None:
        """Fold the logs a killed sweep left behind (those no live process writes to)."""
        for spec in specs:
            if self.log_path(spec).exists() and not self.is_busy(spec):
                self.fold_log(spec)


class RunLock:
    """An exclusive ``flock`` on ``locks/<run>.lock``, inherited by the training process so
    that the run stays locked for as long as that process lives, even if the sweep dies.

    :param path: the lock file.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fd: int | None = None

    def acquire(self, create: bool = True) -> bool:
        if create:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(self.path, os.O_RDWR | (os.O_CREAT if create else 0), 0o644)
        except FileNotFoundError:
            return True
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return False
        self.fd = fd
        return True

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)  # closing our copy; a still-living child keeps the lock
            self.fd = None


# ----------------------------------------------------------------------------------------------
# One attempt at one run (shared by the local and Ray backends)
# ----------------------------------------------------------------------------------------------


@dataclass
class RunOutcome:
    """How an attempt ended.

    :param status: ``complete``, ``failed``, ``interrupted`` or ``busy`` (another process holds
        the run, nothing was started).
    """

    name: str
    status: str
    returncode: int | None = None
    wall_s: float = 0.0
    error: str = ""
    log: str = ""
    mean_return: float | None = None


def _prepare_child() -> None:
    """Runs in the training process before ``exec``: unblock all signals (a Ray worker blocks
    SIGINT, and the mask is inherited, so the run could not be asked to checkpoint) and, on
    Linux, ask for SIGTERM when the sweep dies, even by SIGKILL, so that the run checkpoints
    instead of training on unsupervised."""
    signal.pthread_sigmask(signal.SIG_SETMASK, set())
    if sys.platform == "linux":
        try:
            libc = ctypes.CDLL("libc.so.6", use_errno=True)
            libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
        except OSError:
            pass


@dataclass
class RunAttempt:
    """Start, watch and record one ``coordrl.train`` process for one run.

    :param sweep_path: the sweep directory.
    :param spec: the run.
    :param definition: the sweep definition (for the train options).
    :param threads: torch threads of the run (``--threads``).
    :param device: ``--device`` for the run (``None``: the train CLI's default).
    :param checkpoint_freq: ``--checkpoint-freq`` (``None``: the train CLI's default).
    :param retry_failed: move a failed run aside and rerun it (else leave it failed).
    :param env: extra environment variables (e.g. ``CUDA_VISIBLE_DEVICES``).
    :param train_module: the module run with ``python -m`` (tests may point it elsewhere).
    """

    sweep_path: str
    spec: RunSpec
    definition: SweepDefinition
    threads: int = 1
    device: str | None = None
    checkpoint_freq: int | None = None
    retry_failed: bool = True
    env: dict[str, str] = field(default_factory=dict)
    train_module: str = TRAIN_MODULE

    def __post_init__(self) -> None:
        self.sweep = SweepDir(self.sweep_path)
        self.proc: subprocess.Popen[bytes] | None = None
        self.lock: RunLock | None = None
        self.started = 0.0
        self.log_offset = 0
        self.resumed = False
        self.stop_requested = False

    @property
    def run_dir(self) -> Path:
        return self.sweep.run_dir(self.spec)

    def command(self, resume: bool) -> list[str]:
        """The train command line of this attempt."""
        cmd = [sys.executable, "-m", self.train_module]
        if resume:
            cmd += ["--resume", str(self.run_dir)]
        else:
            # --variant NAME is the train CLI's spelling of --coordconv --coord-layers X
            # [--with-r]; by name, the run directory is named exactly as this sweep expects.
            cmd += ["--game", self.spec.game, "--algo", self.spec.algo]
            cmd += ["--variant", self.spec.variant, "--seed", str(self.spec.seed)]
            cmd += ["--timesteps", str(self.definition.timesteps)]
            cmd += ["--logdir", str(self.sweep.runs_dir)]
            for key, flag in TRAIN_OPTIONS.items():
                if key in self.definition.train_options:
                    cmd += [flag, str(self.definition.train_options[key])]
            for item in overrides_for(self.spec.algo, self.definition.overrides):
                cmd += ["--set", item]
            if self.checkpoint_freq is not None:
                cmd += ["--checkpoint-freq", str(self.checkpoint_freq)]
        cmd += ["--no-progress", "--threads", str(self.threads)]
        if self.device is not None:
            cmd += ["--device", self.device]
        return cmd

    def start(self) -> bool:
        """Prepare the run directory and start training; ``False`` if another process holds
        the run (nothing is started then)."""
        self.lock = RunLock(self.sweep.lock_path(self.spec))
        if not self.lock.acquire():
            self.lock = None
            return False
        try:
            self.sweep.fold_log(self.spec)  # left behind by a killed sweep
            status = runs.run_status(self.run_dir)
            if status == "failed" and self.retry_failed:
                self.sweep.move_aside(self.spec, "failed")
            elif status == "new" and self.run_dir.exists():
                # e.g. killed between mkdir and config.yaml: the train CLI would refuse it
                if any(self.run_dir.iterdir()):
                    self.sweep.move_aside(self.spec, "incomplete")
                else:
                    self.run_dir.rmdir()
            self.resumed = runs.run_status(self.run_dir) == "interrupted"
            cmd = self.command(resume=self.resumed)
            log_path = self.sweep.log_path(self.spec)
            log_path.parent.mkdir(parents=True, exist_ok=True)
            self.sweep.runs_dir.mkdir(parents=True, exist_ok=True)
            with open(log_path, "ab") as log:
                self.log_offset = log.tell()
                header = f"=== coordrl.sweep {_now_iso()} {'resume' if self.resumed else 'start'}"
                log.write(f"{header}: {shlex.join(cmd)}\n".encode())
                log.flush()
                env = {**os.environ, **self.env, "PYTHONUNBUFFERED": "1"}
                for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
                    env[var] = str(self.threads)
                self.started = time.monotonic()
                self.proc = subprocess.Popen(
                    cmd,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=env,
                    start_new_session=True,  # our own signals only; killpg reaches env workers
                    pass_fds=(self.lock.fd,),  # the child keeps the run locked while it lives
                    preexec_fn=_prepare_child,
                )
        except BaseException:
            self.lock.release()
            self.lock = None
            raise
        return True

    def poll(self) -> int | None:
        assert self.proc is not None
        return self.proc.poll()

    def wait(self, timeout: float | None = None) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout)

    def interrupt(self) -> None:
        """Ask the training process to checkpoint and stop (it exits with 130)."""
        self.stop_requested = True
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)

    def kill(self) -> None:
        """Kill the training process and everything it started."""
        self.stop_requested = True
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def finish(self, returncode: int) -> RunOutcome:
        """Record the attempt's end: fold its log into the run directory, write ``error.json``
        if it failed, release the lock."""
        wall = time.monotonic() - self.started
        try:
            outcome = RunOutcome(self.spec.name, "failed", returncode, wall)
            error = ""
            if (self.run_dir / runs.RESULT_FILE).exists():
                outcome.status = "complete"
            elif returncode == 0:
                error = (
                    f"the train CLI exited 0 but {self.run_dir / runs.RESULT_FILE} does not "
                    "exist (did it name the run directory differently?)"
                )
            elif returncode == EXIT_INTERRUPTED or (returncode != 0 and self.stop_requested):
                # (stopped by the sweep, possibly before the train CLI could handle signals)
                outcome.status = "interrupted"
            else:
                error = self._last_error_line() or f"exit code {returncode}"
            if outcome.status == "failed":
                self.run_dir.mkdir(parents=True, exist_ok=True)  # train may never have made it
            log = self.sweep.fold_log(self.spec)
            outcome.log = str(log) if log else ""
            if outcome.status == "failed":
                outcome.error = error
                runs.atomic_write_json(
                    self.run_dir / runs.ERROR_FILE,
                    {
                        "returncode": returncode,
                        "error": error,
                        "log": outcome.log,
                        "command": self.command(resume=self.resumed),
                        "time": _now_iso(),
                        "wall_time_s": round(wall, 3),
                    },
                )
            elif outcome.status == "complete":
                outcome.mean_return = _mean_final_return(self.run_dir)
            return outcome
        finally:
            if self.lock is not None:
                self.lock.release()
                self.lock = None

    def _last_error_line(self) -> str:
        """The most telling line of this attempt's output: the last ``error: ...`` line, else
        the last exception line of a traceback, else the last line."""
        path = self.sweep.log_path(self.spec)
        try:
            with open(path, "rb") as f:
                f.seek(self.log_offset)
                lines = [ln.strip() for ln in f.read().decode(errors="replace").splitlines()]
        except OSError:
            return ""
        lines = [ln for ln in lines[1:] if ln]  # skip our header
        for pattern in (r"^error:", r"^[\w.]*(Error|Exception|Interrupt)\b"):
            for line in reversed(lines):
                if re.match(pattern, line):
                    return line
        return lines[-1] if lines else ""


def _mean_final_return(run_dir: Path) -> float | None:
    try:
        result = runs.read_result(run_dir)
    except (OSError, runs.CorruptRunError):
        return None
    return statistics.fmean(result.final_returns) if result.final_returns else None


def _now_iso() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


# ----------------------------------------------------------------------------------------------
# Progress
# ----------------------------------------------------------------------------------------------


class Progress:
    """One line per event: ``[HH:MM:SS] event run  | done d/t running r failed f | ETA``.

    :param total: number of runs in the sweep.
    :param done: runs complete before this invocation.
    :param failed: runs failed before this invocation and not retried.
    :param workers: concurrent runs (for the ETA).
    :param stream: where to write.
    """

    def __init__(self, total: int, done: int, failed: int, workers: int, stream: Any = None):
        self.total, self.done, self.failed, self.running = total, done, failed, 0
        self.workers = max(1, workers)
        self.pending = 0
        self.durations: list[float] = []
        self.stream = stream if stream is not None else sys.stdout
        self.last_line = time.monotonic()

    def eta(self) -> str:
        if not self.durations:
            return "ETA ?"
        mean = statistics.fmean(self.durations)
        remaining = (self.pending + 0.5 * self.running) * mean / self.workers
        return f"ETA {_fmt_duration(remaining)}"

    def line(self, event: str, name: str = "", detail: str = "") -> None:
        stamp = datetime.now().strftime("%H:%M:%S")
        counts = (
            f"done {self.done}/{self.total} running {self.running} failed {self.failed}"
            f" | {self.eta()}"
        )
        text = f"[{stamp}] {event:<11} {name}"
        if detail:
            text += f" ({detail})"
        print(f"{text}  | {counts}", file=self.stream, flush=True)
        self.last_line = time.monotonic()

    def started(self, name: str, resumed: bool, where: str = "") -> None:
        self.pending -= 1
        self.running += 1
        self.line("resumed" if resumed else "started", name, where)

    def finished(self, outcome: RunOutcome) -> None:
        self.running -= 1
        if outcome.status == "complete":
            self.done += 1
            self.durations.append(outcome.wall_s)
            ret = "" if outcome.mean_return is None else f", mean return {outcome.mean_return:.3g}"
            self.line("complete", outcome.name, f"{_fmt_duration(outcome.wall_s)}{ret}")
        elif outcome.status == "failed":
            self.failed += 1
            self.line("FAILED", outcome.name, f"exit {outcome.returncode}: {outcome.error}")
            print(f"    log: {outcome.log}", file=self.stream, flush=True)
        elif outcome.status == "not started":
            self.line("not started", outcome.name, "the sweep was stopped")
        elif outcome.status == "busy":
            self.line("busy", outcome.name, "another process is running it; skipped")
        else:
            self.line("interrupted", outcome.name, "stopped; rerun the sweep to resume it")

    def heartbeat(self, every_s: float) -> None:
        if time.monotonic() - self.last_line >= every_s:
            self.line("...")


def _fmt_duration(seconds: float) -> str:
    seconds = int(round(seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else (f"{m}m{s:02d}s" if m else f"{s}s")


# ----------------------------------------------------------------------------------------------
# Local backend
# ----------------------------------------------------------------------------------------------


class StopRequest:
    """Counts SIGINT/SIGTERM received by the sweep (installed only while runs are active)."""

    def __init__(self) -> None:
        self.count = 0
        self.since = 0.0
        self._previous: dict[int, Any] = {}

    def _handler(self, signum: int, frame: Any) -> None:
        self.count += 1
        if self.count == 1:
            self.since = time.monotonic()

    def install(self) -> None:
        """(Re)install the handlers, e.g. after a library replaced them (``ray.init``)."""
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous = signal.signal(sig, self._handler)
            self._previous.setdefault(sig, previous)

    def __enter__(self) -> StopRequest:
        self.install()
        return self

    def __exit__(self, *exc: Any) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def default_workers(cpus: int, n_gpus: int) -> int:
    """Concurrent runs by default: one per two cores (one for the environments, one for torch),
    at least one per GPU, and at least 2 on a 2-3 core machine (measured faster in aggregate
    than one 2-thread run, see ``scripts/bench_sweep.py``)."""
    workers = max(1, cpus // 2)
    if cpus in (2, 3):
        workers = 2
    return max(workers, n_gpus)


def visible_gpus() -> list[str]:
    """GPU ids for ``CUDA_VISIBLE_DEVICES`` (honouring an existing setting)."""
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is not None:
        return [g for g in env.split(",") if g.strip() and g.strip() != "-1"]
    try:
        import torch
    except ImportError:
        return []
    return [str(i) for i in range(torch.cuda.device_count())] if torch.cuda.is_available() else []


def cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def run_local(
    attempts: Sequence[RunAttempt],
    workers: int,
    gpus: Sequence[str],
    progress: Progress,
    grace_s: float = DEFAULT_GRACE_S,
    heartbeat_s: float = 600.0,
) -> tuple[list[RunOutcome], bool]:
    """Run the attempts with at most ``workers`` at a time; worker slot ``k`` uses GPU
    ``gpus[k % len(gpus)]`` when there are several GPUs.

    :return: the outcomes and whether the sweep was stopped by a signal.
    """
    pending = deque(attempts)
    running: dict[int, RunAttempt] = {}
    outcomes: list[RunOutcome] = []
    interrupted_sent = killed = False
    with StopRequest() as stop:
        while pending or running:
            if stop.count == 0:
                for slot in range(workers):
                    if slot in running or not pending:
                        continue
                    attempt = pending.popleft()
                    where = ""
                    if len(gpus) > 1:
                        attempt.env["CUDA_VISIBLE_DEVICES"] = gpus[slot % len(gpus)]
                        where = f"GPU {gpus[slot % len(gpus)]}"
                    if attempt.start():
                        running[slot] = attempt
                        progress.started(attempt.spec.name, attempt.resumed, where)
                    else:
                        progress.pending -= 1
                        outcome = RunOutcome(attempt.spec.name, "busy")
                        outcomes.append(outcome)
                        progress.line("busy", outcome.name, "another process is running it")
            elif not interrupted_sent:
                interrupted_sent = True
                pending.clear()  # not started: they stay "new" for the next invocation
                progress.line(
                    "stopping",
                    detail=f"asking {len(running)} run(s) to checkpoint; "
                    "press Ctrl-C again to kill them",
                )
                for attempt in running.values():
                    attempt.interrupt()
            if (
                not killed
                and running
                and (stop.count >= 2 or (stop.count and time.monotonic() - stop.since > grace_s))
            ):
                killed = True
                for attempt in running.values():
                    attempt.kill()
            for slot, attempt in list(running.items()):
                rc = attempt.poll()
                if rc is not None:
                    del running[slot]
                    outcome = attempt.finish(rc)
                    outcomes.append(outcome)
                    progress.finished(outcome)
            progress.heartbeat(heartbeat_s)
            time.sleep(0.2)
        return outcomes, stop.count > 0


# ----------------------------------------------------------------------------------------------
# Summary
# ----------------------------------------------------------------------------------------------


def summary_rows(sweep: SweepDir, definition: SweepDefinition) -> list[dict[str, Any]]:
    """Per (game, algo, variant): final mean return over seeds (mean of each seed's final
    evaluation returns), with sample std and the number of complete seeds."""
    rows = []
    for game, algo, variant in itertools.product(
        definition.games, definition.algos, definition.variants
    ):
        values = []
        for seed in definition.seeds:
            run_dir = sweep.run_dir(RunSpec(game, algo, variant, seed))
            if runs.run_status(run_dir) == "complete":
                value = _mean_final_return(run_dir)
                if value is not None:
                    values.append(value)
        rows.append(
            {
                "game": game,
                "algo": algo,
                "variant": variant,
                "n": len(values),
                "seeds": len(definition.seeds),
                "mean": statistics.fmean(values) if values else None,
                "std": statistics.stdev(values) if len(values) > 1 else None,
            }
        )
    return rows


def format_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows, strict=True)]
    lines = [
        "  ".join(str(x).ljust(w) for x, w in zip(r, widths, strict=True)).rstrip()
        for r in [header, *rows]
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def summary_table(sweep: SweepDir, definition: SweepDefinition) -> str:
    rows = []
    for r in summary_rows(sweep, definition):
        if r["mean"] is None:
            value = "-"
        elif r["std"] is None:
            value = f"{r['mean']:.4g}"
        else:
            value = f"{r['mean']:.4g} ± {r['std']:.3g}"
        rows.append([r["game"], r["algo"], r["variant"], f"{r['n']}/{r['seeds']}", value])
    return format_table(["game", "algo", "variant", "seeds", "final mean return"], rows)


# ----------------------------------------------------------------------------------------------
# Command line
# ----------------------------------------------------------------------------------------------

#: YAML keys accepted by ``--config`` (command-line flags with ``-`` written as ``_``).
CONFIG_KEYS = {
    "games",
    "algos",
    "variants",
    "seeds",
    "timesteps",
    "out",
    "set",
    "env_backend",
    "n_envs",
    "eval_episodes",
    "eval_freq",
    "checkpoint_freq",
    "device",
    "workers",
    "threads",
    "backend",
    "address",
    "cpus_per_run",
    "gpus_per_run",
}


def _steps(text: str) -> int:
    """argparse type: a whole number of steps >= 0 (``2.5e5`` accepted)."""
    try:
        value = float(text.replace("_", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of steps, got {text!r}") from None
    if not math.isfinite(value) or value < 0 or value != int(value):
        raise argparse.ArgumentTypeError(f"expected a whole number of steps >= 0, got {text!r}")
    return int(value)


class _OneLineArgumentParser(argparse.ArgumentParser):
    """Bad flags are one ``error: ...`` line and exit code 2 (no usage block)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"error: {message} (see python -m coordrl.sweep --help)\n")


def build_parser() -> argparse.ArgumentParser:
    p = _OneLineArgumentParser(
        prog="python -m coordrl.sweep",
        description="Run games x algos x variants x seeds, each as a coordrl.train process.",
        epilog="Exit codes: 0 all runs complete, 1 a run failed or is not complete, "
        "2 bad input, 130 interrupted (rerun the same command to resume).",
    )
    g = p.add_argument_group("sweep definition (stored in SWEEP/manifest.json)")
    g.add_argument("--config", help="YAML file with any of these options (the flags override it)")
    g.add_argument("--games", nargs="+", help="Atari games (Pong, ALE/Pong-v5) or gymnasium ids")
    g.add_argument("--algos", nargs="+", help=f"algorithms ({', '.join(ALGOS)})")
    g.add_argument(
        "--variants", nargs="+", help="conv, coordconv, coordconv-all, coordconv-r, coordconv-L0-2"
    )
    g.add_argument(
        "--seeds",
        nargs="+",
        help="N = seeds 0..N-1; two or more values = explicit seeds; ranges A..B (e.g. 5..9)",
    )
    g.add_argument("--timesteps", help="environment steps per run (2e6, 2_000_000)")
    g.add_argument(
        "--set",
        nargs="+",
        action="extend",
        metavar="KEY=VALUE",
        help="hyperparameter override for every run (repeatable); ALGO:KEY=VALUE for one "
        "algorithm's runs only (ppo:n_epochs=4)",
    )
    g.add_argument("--env-backend", choices=["native", "sb3"], help="Atari vector env backend")
    g.add_argument("--n-envs", type=int, help="parallel environments per run")
    g.add_argument("--eval-episodes", type=int, help="episodes per evaluation")
    g.add_argument("--eval-freq", type=_steps, help="evaluate every N environment steps")

    e = p.add_argument_group("execution (may change between reruns)")
    e.add_argument("--out", help="sweep directory (e.g. sweeps/NAME)")
    e.add_argument("--backend", choices=["local", "ray"], help="where runs execute (default local)")
    e.add_argument("--address", help="Ray cluster address (e.g. auto, ray://head:10001)")
    e.add_argument("--workers", type=int, help="concurrent runs (default: from cores and GPUs)")
    e.add_argument("--threads", type=int, help="torch threads per run (default: cores / workers)")
    e.add_argument("--cpus-per-run", type=float, help="Ray: CPUs requested per run (default 1)")
    e.add_argument("--gpus-per-run", type=float, help="Ray: GPUs requested per run (default 0)")
    e.add_argument("--device", choices=["auto", "cpu", "cuda"], help="device of every run")
    e.add_argument("--checkpoint-freq", type=_steps, help="checkpoint every N environment steps")
    e.add_argument("--no-retry", action="store_true", help="leave failed runs failed")
    e.add_argument("--dry-run", action="store_true", help="list the runs and their status only")
    e.add_argument("--grace", type=float, default=DEFAULT_GRACE_S, help=argparse.SUPPRESS)
    e.add_argument("--train-module", default=TRAIN_MODULE, help=argparse.SUPPRESS)
    return p


def load_config(path: str) -> dict[str, Any]:
    """Read a sweep YAML file; unknown keys are an error."""
    try:
        with open(path) as f:
            data = yaml.safe_load(f)
    except FileNotFoundError:
        raise SweepError(f"config file {path!r} does not exist") from None
    except yaml.YAMLError as e:
        raise SweepError(f"{path}: not valid YAML ({str(e).splitlines()[0]})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise SweepError(f"{path}: expected a mapping of sweep options")
    unknown = sorted(set(data) - CONFIG_KEYS)
    if unknown:
        known = ", ".join(sorted(CONFIG_KEYS))
        raise SweepError(f"{path}: unknown key(s) {unknown}; known: {known}")
    for key in ("games", "algos", "variants"):
        if isinstance(data.get(key), str):
            data[key] = data[key].split()
    return data


def resolve_options(args: argparse.Namespace) -> tuple[dict[str, Any], bool]:
    """Merge ``--config`` and the flags (flags win). Returns the options and whether any
    option defining the sweep was given at all."""
    cfg = load_config(args.config) if args.config else {}
    opts: dict[str, Any] = dict(cfg)
    seeds_explicit = isinstance(cfg.get("seeds"), list)
    for key in CONFIG_KEYS - {"set"}:
        value = getattr(args, key, None)
        if value is not None:
            opts[key] = value
            if key == "seeds":
                seeds_explicit = False
    overrides = parse_overrides(cfg.get("set"))
    overrides.update(parse_overrides(args.set))
    opts["set"] = overrides
    opts["seeds_explicit"] = seeds_explicit
    defining = {"games", "algos", "variants", "seeds", "timesteps", *TRAIN_OPTIONS}
    given = bool(args.config or args.set) or any(getattr(args, k) is not None for k in defining)
    return opts, given


def _positive(opts: dict[str, Any], key: str, kind: type = int) -> None:
    value = opts.get(key)
    if value is not None and (not isinstance(value, (int, float)) or value <= 0):
        raise SweepError(f"--{key.replace('_', '-')} must be positive, got {value!r}")
    if value is not None and kind is int and value != int(value):
        raise SweepError(f"--{key.replace('_', '-')} must be a whole number, got {value!r}")


def _err(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 2


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    try:
        return _main(args, argv)
    except SweepError as e:
        return _err(str(e))


def _main(args: argparse.Namespace, argv: Sequence[str]) -> int:
    opts, defining_given = resolve_options(args)
    if not opts.get("out"):
        raise SweepError("no sweep directory: pass --out sweeps/NAME (or 'out:' in the config)")
    sweep = SweepDir(opts["out"])
    for key in ("workers", "threads"):
        _positive(opts, key)
    if opts.get("checkpoint_freq") is not None and opts["checkpoint_freq"] < 0:
        raise SweepError(f"--checkpoint-freq must be >= 0, got {opts['checkpoint_freq']}")
    for key in ("cpus_per_run", "gpus_per_run"):
        _positive(opts, key, float)
    backend = opts.get("backend") or "local"
    if backend not in ("local", "ray"):
        raise SweepError(f"unknown backend {backend!r}: use 'local' or 'ray'")
    if backend == "local" and (args.address or args.gpus_per_run or args.cpus_per_run):
        # (only flags: a config file written for Ray may be run locally as it is)
        raise SweepError("--address, --cpus-per-run and --gpus-per-run need --backend ray")
    if backend == "ray":
        from coordrl import sweep_ray

        sweep_ray.check_available()

    if sweep.path.exists() and not sweep.path.is_dir():
        raise SweepError(f"{sweep.path} exists and is not a directory")
    stored = sweep.read_manifest()
    if stored is None and sweep.path.is_dir() and any(sweep.path.iterdir()):
        raise SweepError(
            f"{sweep.path} is not empty and has no {MANIFEST_FILE}: not a sweep directory; "
            "choose another --out"
        )
    if stored is not None and not defining_given:
        definition = stored
    else:
        definition = SweepDefinition.build(
            opts.get("games"),
            opts.get("algos"),
            opts.get("variants"),
            opts.get("seeds"),
            opts.get("timesteps"),
            overrides=opts["set"],
            train_options={k: opts.get(k) for k in TRAIN_OPTIONS},
            seeds_explicit=opts["seeds_explicit"],
        )
        if stored is not None and stored != definition:
            diffs = "; ".join(stored.differences(definition))
            raise SweepError(
                f"{sweep.manifest_path} disagrees with this command ({diffs}); use another --out "
                "or the stored definition (rerun with only --out)"
            )

    specs = definition.runs()
    statuses = {spec: sweep.status(spec) for spec in specs}
    retry = not args.no_retry
    if args.dry_run:
        return _dry_run(sweep, definition, statuses, retry)

    sweep.path.mkdir(parents=True, exist_ok=True)
    sweep.write_manifest(definition, argv)
    sweep.fold_stale_logs(specs)

    todo = [
        s
        for s in specs
        if statuses[s] in ("new", "interrupted") or (statuses[s] == "failed" and retry)
    ]
    n_done = sum(st == "complete" for st in statuses.values())
    n_kept_failed = sum(st == "failed" for st in statuses.values()) if not retry else 0
    n_busy = sum(st == "running" for st in statuses.values())

    cpus = cpu_count()
    if backend == "local":
        gpus = visible_gpus() if opts.get("device") != "cpu" else []
        workers = int(opts.get("workers") or default_workers(cpus, len(gpus)))
        threads = int(opts.get("threads") or max(1, cpus // workers))
    else:
        gpus = []
        workers = int(opts.get("workers") or max(1, len(todo)))
        threads = int(opts.get("threads") or max(1, math.ceil(opts.get("cpus_per_run") or 1)))
    attempts = [
        RunAttempt(
            str(sweep.path),
            spec,
            definition,
            threads=threads,
            device=opts.get("device"),
            checkpoint_freq=opts.get("checkpoint_freq"),
            retry_failed=retry,
            train_module=args.train_module,
        )
        for spec in todo
    ]
    if backend == "local":
        where = f"local, {workers} worker(s) x {threads} thread(s)"
        where += f", GPUs {','.join(gpus)}" if len(gpus) > 1 else ""
    else:
        where = (
            f"Ray, <= {workers} run(s) in flight, {opts.get('cpus_per_run') or 1:g} CPU "
            f"+ {opts.get('gpus_per_run') or 0:g} GPU per run, {threads} thread(s)"
        )
    print(
        f"sweep {sweep.path}: {len(specs)} runs ({n_done} complete, "
        f"{len(todo)} to run, {n_kept_failed} failed kept, {n_busy} running elsewhere); {where}",
        flush=True,
    )
    progress = Progress(len(specs), n_done, n_kept_failed, workers)
    progress.pending = len(attempts)
    if backend == "local":
        outcomes, stopped = run_local(attempts, workers, gpus, progress, grace_s=args.grace)
    else:
        from coordrl import sweep_ray

        outcomes, stopped = sweep_ray.run_ray(
            attempts,
            progress,
            address=opts.get("address"),
            max_in_flight=workers,
            cpus_per_run=float(opts.get("cpus_per_run") or 1),
            gpus_per_run=float(opts.get("gpus_per_run") or 0),
            grace_s=args.grace,
        )
    return _finish(sweep, definition, specs, stopped)


def _dry_run(
    sweep: SweepDir, definition: SweepDefinition, statuses: dict[RunSpec, str], retry: bool
) -> int:
    action = {
        "complete": "skip",
        "interrupted": "resume",
        "failed": "retry" if retry else "keep failed",
        "new": "start",
        "running": "skip (running elsewhere)",
    }
    rows = [[s.name, st, action[st]] for s, st in statuses.items()]
    print(f"sweep {sweep.path} (dry run, nothing started)")
    print(format_table(["run", "status", "action"], rows))
    counts = {st: list(statuses.values()).count(st) for st in action}
    print(
        f"{len(statuses)} runs: "
        + ", ".join(f"{n} {st}" for st, n in counts.items() if n)
        + f"; {definition.timesteps} timesteps each"
    )
    return 0


def _finish(
    sweep: SweepDir, definition: SweepDefinition, specs: Sequence[RunSpec], stopped: bool
) -> int:
    statuses = {spec: sweep.status(spec) for spec in specs}
    print("\n" + summary_table(sweep, definition))
    failed = [s for s, st in statuses.items() if st == "failed"]
    if failed:
        print(f"\n{len(failed)} failed run(s):")
        for spec in failed:
            run_dir = sweep.run_dir(spec)
            try:
                err = runs.read_json(run_dir / runs.ERROR_FILE)
                print(f"  {spec.name}: exit {err.get('returncode')}: {err.get('error')}")
                print(f"    log: {err.get('log')}")
            except (OSError, runs.CorruptRunError):
                print(f"  {spec.name}: see {run_dir}")
    counts = {st: list(statuses.values()).count(st) for st in ("complete", "failed")}
    others = len(specs) - counts["complete"] - counts["failed"]
    print(
        f"\n{counts['complete']}/{len(specs)} runs complete, {counts['failed']} failed, "
        f"{others} not complete"
        + (" (interrupted: rerun the same command to resume)" if stopped else "")
    )
    if stopped:
        return EXIT_INTERRUPTED
    return 0 if counts["complete"] == len(specs) else 1


if __name__ == "__main__":
    sys.exit(main())
