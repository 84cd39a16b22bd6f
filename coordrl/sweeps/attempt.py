"""One attempt at one run (:class:`RunAttempt`: start, watch, interrupt, kill and record one
``python -m coordrl.train`` process; :class:`RunOutcome`: how it ended) and the one stop
sequence both backends follow (:class:`Stopper`).

Every result is written by the training process itself (atomically), so killing the sweep,
even with SIGKILL, loses no completed run: the process holds the run's lock for as long as it
lives and, on Linux, gets SIGTERM when the sweep dies and saves a checkpoint.
"""

from __future__ import annotations

import ctypes
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from coordrl import runs
from coordrl._cli import EXIT_INTERRUPTED
from coordrl.sweeps.definition import TRAIN_OPTIONS, RunSpec, SweepDefinition, overrides_for
from coordrl.sweeps.layout import RunLock, SweepDir, now_iso
from coordrl.sweeps.results import mean_final_return

__all__ = [
    "DEFAULT_GRACE_S",
    "TRAIN_MODULE",
    "RunAttempt",
    "RunOutcome",
    "Stopper",
    "describe_failure",
]

TRAIN_MODULE = "coordrl.train"
#: Seconds the children get to checkpoint after the sweep is interrupted, before SIGKILL.
DEFAULT_GRACE_S = 120.0
#: Lines of a failed attempt's output kept in ``error.json`` (``tail``).
TAIL_LINES = 30


# ----------------------------------------------------------------------------- stop sequence
class Stoppable(Protocol):
    def interrupt(self) -> None: ...
    def kill(self) -> None: ...


class Stopper:
    """The stop sequence of a sweep, written once for both backends: the first stop request
    (SIGINT/SIGTERM, or a stop file for a Ray task) asks every running attempt to checkpoint
    and exit (SIGINT); a second request, or ``grace_s`` seconds without the attempts ending,
    kills them.

    A backend calls :meth:`step` in its polling loop with what is running; it returns the
    action taken (``"interrupt"`` or ``"kill"``, each once) so that the caller can drop its
    queue or print a line.

    :param grace_s: seconds from the first request to the kill.
    :param clock: monotonic time source (tests pass a fake one).
    """

    def __init__(self, grace_s: float = DEFAULT_GRACE_S, clock: Callable[[], float] | None = None):
        self.grace_s = grace_s
        self.clock = clock or time.monotonic
        self.requests = 0
        self.since: float | None = None
        self.interrupted = self.killed = False
        self._previous: dict[int, Any] = {}

    @property
    def requested(self) -> bool:
        """Whether a stop was asked for (the sweep then starts nothing new)."""
        return self.requests > 0

    def request(self) -> None:
        """A stop request: the first starts the grace period, the second means kill now."""
        self.requests += 1
        if self.since is None:
            self.since = self.clock()

    def due(self) -> str | None:
        """The action now due (``"interrupt"``, ``"kill"``) or ``None``; does not act."""
        if not self.requested:
            return None
        assert self.since is not None
        expired = self.clock() - self.since >= self.grace_s
        if not self.killed and (self.requests >= 2 or expired):
            return "kill"
        if not self.interrupted:
            return "interrupt"
        return None

    def step(self, running: Iterable[Stoppable]) -> str | None:
        """Apply the due action to every running attempt; returns it (``None``: nothing)."""
        action = self.due()
        if action == "interrupt":
            self.interrupted = True
            for attempt in running:
                attempt.interrupt()
        elif action == "kill":
            self.interrupted = self.killed = True
            for attempt in running:
                attempt.kill()
        return action

    # -------------------------------------------------------------------------- signals
    def _handler(self, signum: int, frame: Any) -> None:
        self.request()

    def install(self) -> None:
        """Make SIGINT and SIGTERM stop requests; call again after a library replaced the
        handlers (``ray.init``)."""
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous = signal.signal(sig, self._handler)
            self._previous.setdefault(sig, previous)

    def __enter__(self) -> Stopper:
        self.install()
        return self

    def __exit__(self, *exc: Any) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()


# ----------------------------------------------------------------------------- one attempt
@dataclass
class RunOutcome:
    """How an attempt ended.

    :param status: ``complete``, ``failed``, ``interrupted``, ``busy`` (another process holds
        the run, nothing was started) or ``not started`` (queued when the sweep stopped).
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
    :param retry_failed: set a failed attempt aside and run the run again, resuming from its
        newest checkpoint that loads (else leave it failed).
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
        self.tb_before: set[str] = set()

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
        self.lock = self.sweep.lock(self.spec)
        if not self.lock.acquire():
            self.lock = None
            return False
        try:
            self.sweep.fold_log(self.spec)  # left behind by a killed sweep
            status = runs.run_status(self.run_dir)
            if status == "failed" and self.retry_failed:
                self._set_failed_attempt_aside()
            elif status == "new" and self.run_dir.exists():
                # e.g. killed between mkdir and config.yaml: the train CLI would refuse it
                if any(self.run_dir.iterdir()):
                    self.sweep.move_aside(self.spec, "incomplete")
                else:
                    self.run_dir.rmdir()
            self.resumed = runs.run_status(self.run_dir) == "interrupted"
            self.tb_before = set(runs.tb_event_files(self.run_dir))
            cmd = self.command(resume=self.resumed)
            self.sweep.runs_dir.mkdir(parents=True, exist_ok=True)
            with self.sweep.open_log(self.spec) as log:
                self.log_offset = log.tell()
                header = f"=== coordrl.sweep {now_iso()} {'resume' if self.resumed else 'start'}"
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

    def _set_failed_attempt_aside(self) -> None:
        """Before a retry: a run with a readable ``config.yaml`` resumes (from its newest
        checkpoint that loads, or from step 0 if it has none) once the failed attempt's files
        are set aside; any other failed run directory is moved aside whole and starts afresh."""
        try:
            runs.read_config(self.run_dir)
            error = runs.read_error(self.run_dir)
        except (OSError, runs.CorruptRunError):
            self.sweep.move_aside(self.spec, "failed")
            return
        tb_files = error.get("tb_files")
        if not isinstance(tb_files, list) or not all(isinstance(f, str) for f in tb_files):
            tb_files = []  # an error.json of an older coordrl: its event files stay
        self.sweep.set_attempt_aside(self.spec, tb_files)

    def poll(self) -> int | None:
        assert self.proc is not None
        return self.proc.poll()

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
            if runs.run_status(self.run_dir) == "complete":
                outcome.status = "complete"
            elif returncode == 0:
                error = (
                    f"the train CLI exited 0 but {self.run_dir / runs.RESULT_FILE} does not "
                    "exist (did it name the run directory differently?)"
                )
            elif returncode == EXIT_INTERRUPTED or (returncode != 0 and self.stop_requested):
                # (stopped by the sweep, possibly before the train CLI could handle signals)
                outcome.status = "interrupted"
            tail: list[str] = []
            if outcome.status == "failed":
                text = self.sweep.read_log(self.spec, self.log_offset)
                described, tail = describe_failure(text, returncode)
                error = error or described
                self.run_dir.mkdir(parents=True, exist_ok=True)  # train may never have made it
            log = self.sweep.fold_log(self.spec)
            outcome.log = str(log) if log else ""
            if outcome.status == "failed":
                outcome.error = error
                runs.write_error(
                    self.run_dir,
                    {
                        "returncode": returncode,
                        "signal": _signal_name(returncode),
                        "error": error,
                        "tail": tail,
                        "log": outcome.log,
                        "command": self.command(resume=self.resumed),
                        "time": now_iso(),
                        "wall_time_s": round(wall, 3),
                        # this attempt's TensorBoard files: set aside with it on a retry
                        "tb_files": sorted(set(runs.tb_event_files(self.run_dir)) - self.tb_before),
                    },
                )
            elif outcome.status == "complete":
                outcome.mean_return = mean_final_return(self.run_dir)
            return outcome
        finally:
            if self.lock is not None:
                self.lock.release()
                self.lock = None


def _signal_name(returncode: int) -> str | None:
    """``"SIGKILL"`` for a process killed by signal 9 (``returncode`` -9), else ``None``."""
    if returncode >= 0:
        return None
    try:
        return signal.Signals(-returncode).name
    except ValueError:
        return f"signal {-returncode}"


def describe_failure(text: str, returncode: int) -> tuple[str, list[str]]:
    """What ``error.json`` says about a failed attempt, from its output ``text`` (after the
    sweep's header line) and exit code.

    :return: one line (the signal that killed the process; else the last ``error: ...`` line,
        else the exception line of the last traceback, else the exit code: never a progress
        line) and the last lines of the output, from the last traceback on if there is one
        (at most :data:`TAIL_LINES`)
    """
    lines = [ln.rstrip() for ln in text.splitlines()[1:]]  # skip our header
    starts = [i for i, ln in enumerate(lines) if ln.startswith("Traceback (most recent call")]
    tail = lines[starts[-1] :] if starts else [ln for ln in lines if ln.strip()]
    tail = tail[-TAIL_LINES:]
    name = _signal_name(returncode)
    if name is not None:
        hint = " (e.g. the OOM killer, or a lost node)" if name == "SIGKILL" else ""
        return f"killed by {name}{hint}", tail
    stripped = [ln.strip() for ln in lines]
    for pattern in (r"^error:", r"^[\w.]*(Error|Exception|Interrupt)\b"):
        for line in reversed(stripped):
            if re.match(pattern, line):
                return line, tail
    return f"exit code {returncode}", tail


def watch(
    attempt: RunAttempt,
    stopper: Stopper,
    stop_wanted: Callable[[], bool] = lambda: False,
    poll_s: float = 0.5,
) -> int:
    """Wait for one started attempt to end, following ``stopper``'s sequence (the Ray task's
    loop; the local backend watches all its attempts in one loop of its own).

    :param stop_wanted: polled; ``True`` is a stop request (e.g. the driver's stop file)
    :return: the process's exit code
    """
    while (rc := attempt.poll()) is None:
        if not stopper.requested and stop_wanted():
            stopper.request()
        stopper.step([attempt])
        time.sleep(poll_s)
    return rc
