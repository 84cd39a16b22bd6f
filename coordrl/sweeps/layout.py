"""The sweep directory: the only code that knows its files (the run directories inside it
belong to :mod:`coordrl.runs`)::

    SWEEP/
      manifest.json           the sweep definition (what the runs are); checked on every rerun
      runs/<run_name>/        one run directory per (game, algo, variant, seed) (coordrl.runs)
      logs/<run_name>.log     output of a run *while it runs*; appended to runs/<run>/train.log
                              when the process ends (the train CLI refuses to start in an
                              existing directory, so the log cannot live there from the start)
      locks/<run_name>.lock   held (flock) by the run's training process for as long as it lives
      locks/driver.lock       held (flock) by the one sweep driver working on this directory
      locks/stop-*            the Ray backend's "stop now" signal to its tasks (shared FS)
      failed/<run>.failed-K   earlier failed attempts, set aside when a run is retried: its
                              error.json, train.log and TensorBoard files (the run resumes from
                              its checkpoints), or the whole run directory (one that cannot be
                              resumed: no readable config.yaml)
"""

from __future__ import annotations

import fcntl
import itertools
import json
import os
import socket
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any

from coordrl import runs
from coordrl.files import FileFormatError, atomic_write_json, read_json
from coordrl.sweeps.definition import (
    LAUNCH_OPTIONS,
    RunSpec,
    SweepDefinition,
    SweepError,
    check_option,
)

__all__ = [
    "DRIVER_LOCK",
    "FAILED_DIR",
    "LOCKS_DIR",
    "LOGS_DIR",
    "MANIFEST_FILE",
    "MANIFEST_SCHEMA_VERSION",
    "RUNS_DIR",
    "RunLock",
    "StopFile",
    "SweepDir",
    "now_iso",
    "read_manifest_data",
]

MANIFEST_FILE = "manifest.json"
MANIFEST_SCHEMA_VERSION = 1
RUNS_DIR = "runs"
LOGS_DIR = "logs"
LOCKS_DIR = "locks"
FAILED_DIR = "failed"
DRIVER_LOCK = "driver.lock"


def now_iso() -> str:
    """The current UTC time as ``2026-11-22T10:00:00Z`` (manifest, logs, ``error.json``)."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def read_manifest_data(sweep_path: str | os.PathLike) -> dict[str, Any] | None:
    """``SWEEP/manifest.json`` as a dict, ``None`` if there is none.

    :raises FileFormatError: not a JSON object (names the file)
    """
    path = Path(sweep_path) / MANIFEST_FILE
    try:
        data = read_json(path)
    except FileNotFoundError:
        return None
    if not isinstance(data, dict):
        raise FileFormatError(f"{path}: expected a JSON object")
    return data


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

    def stop_file(self) -> StopFile:
        """A fresh stop file (``locks/stop-<pid>-<ns>``), not yet created."""
        return StopFile(str(self.path / LOCKS_DIR / f"stop-{os.getpid()}-{time.time_ns()}"))

    # -------------------------------------------------------------------------- manifest
    def _manifest(self) -> dict[str, Any] | None:
        try:
            return read_manifest_data(self.path)
        except FileFormatError as e:
            raise SweepError(f"{e}; not a valid sweep manifest") from None

    def read_manifest(self) -> SweepDefinition | None:
        """The stored definition, ``None`` if there is no manifest yet.

        :raises SweepError: the manifest cannot be read, or its definition has missing keys or
            values of the wrong types (names the file)
        """
        data = self._manifest()
        if data is None:
            return None
        if "definition" not in data:
            raise SweepError(f"{self.manifest_path}: not a valid sweep manifest (no definition)")
        return SweepDefinition.from_dict(data["definition"], str(self.manifest_path))

    def launch_options(self) -> dict[str, Any]:
        """The :data:`~coordrl.sweeps.definition.LAUNCH_OPTIONS` the last launch used (``{}``
        without a manifest, or for one written before they were stored), checked as a sweep
        YAML's would be.

        :raises SweepError: unknown keys or values of the wrong types (names the file)
        """
        data = self._manifest() or {}
        stored = data.get("launch_options", {})
        where = str(self.manifest_path)
        if not isinstance(stored, dict) or not set(stored) <= set(LAUNCH_OPTIONS):
            raise SweepError(f"{where}: launch_options must be a mapping of {list(LAUNCH_OPTIONS)}")
        return {k: check_option(k, v, where) for k, v in stored.items() if v is not None}

    def stored_definition(self) -> SweepDefinition | None:
        """The stored definition of an existing sweep directory, ``None`` for a new one.

        :raises SweepError: the path is not a directory, or a non-empty directory that is not a
            sweep directory, or its manifest cannot be read
        """
        if self.path.exists() and not self.path.is_dir():
            raise SweepError(f"{self.path} exists and is not a directory")
        stored = self.read_manifest()
        if stored is None and self.path.is_dir() and self._has_files():
            raise SweepError(
                f"{self.path} is not empty and has no {MANIFEST_FILE}: not a sweep directory; "
                "choose another --out"
            )
        return stored

    def _has_files(self) -> bool:
        """Whether the directory holds anything but ``locks/`` (which a driver creates first)."""
        return any(p.name != LOCKS_DIR for p in self.path.iterdir())

    def write_manifest(
        self,
        definition: SweepDefinition,
        argv: Sequence[str],
        launch_options: dict[str, Any] | None = None,
    ) -> None:
        """Write ``manifest.json``: the definition, the runs, and how this launch executes them.

        :param definition: the sweep definition
        :param argv: the command line of this launch
        :param launch_options: the :data:`~coordrl.sweeps.definition.LAUNCH_OPTIONS` in effect
            (``None`` values are left out: the defaults)
        """
        from coordrl import __version__

        options = {k: v for k, v in (launch_options or {}).items() if v is not None}
        atomic_write_json(
            self.manifest_path,
            {
                "schema_version": MANIFEST_SCHEMA_VERSION,
                "definition": definition.to_dict(),
                "launch_options": options,
                "runs": [spec.name for spec in definition.runs()],
                "coordrl_version": __version__,
                "updated": now_iso(),
                "command": ["python", "-m", "coordrl.sweep", *argv],
            },
        )

    # -------------------------------------------------------------------------- the driver
    @property
    def driver_lock_path(self) -> Path:
        return self.path / LOCKS_DIR / DRIVER_LOCK

    def driver_holder(self) -> dict[str, Any] | None:
        """Who drives this sweep now (``{"pid", "host", "since"}``, or ``{}`` when the lock
        is held but its note cannot be read), ``None`` when no driver holds the lock."""
        lock = RunLock(self.driver_lock_path)
        if not lock.path.exists():
            return None
        if lock.acquire(create=False):
            lock.release()
            return None
        return lock.read_holder()

    @contextmanager
    def driver_lock(self) -> Iterator[RunLock]:
        """Hold ``locks/driver.lock`` while this process drives the sweep: one driver per sweep
        directory. The OS releases it when the process ends, however it ends (even SIGKILL), so
        a dead driver never blocks a restart; the training processes do not inherit it.

        Guaranteed on one host. Across hosts (a sweep directory on NFS) ``flock`` excludes two
        drivers only where the filesystem supports locks (NFSv4, or NFSv3 with lockd: Linux
        emulates ``flock`` with byte-range locks there); the message names the holder's host.

        :raises SweepError: another driver holds it (the message names its pid, host, start)
        """
        lock = RunLock(self.driver_lock_path)
        if not lock.acquire():
            holder = lock.read_holder()
            who = (
                f"pid {holder.get('pid')} on {holder.get('host')} since {holder.get('since')}"
                if holder
                else f"another process (it holds {lock.path})"
            )
            raise SweepError(
                f"{self.path} is already being run by {who}; wait for that sweep to end or stop "
                "it (Ctrl-C / kill -INT PID), then rerun"
            )
        try:
            me = {"pid": os.getpid(), "host": socket.gethostname(), "since": now_iso()}
            lock.write_holder(me)
            yield lock
        finally:
            lock.release()

    # -------------------------------------------------------------------------- run state
    def lock(self, spec: RunSpec) -> RunLock:
        return RunLock(self.lock_path(spec))

    def is_busy(self, spec: RunSpec) -> bool:
        """Whether a training process (of this or another sweep invocation) holds the run."""
        lock = self.lock(spec)
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

    def _aside_path(self, spec: RunSpec, kind: str) -> Path:
        """The first free ``failed/<run>.<kind>-K`` (its folder created)."""
        target_dir = self.path / FAILED_DIR
        target_dir.mkdir(parents=True, exist_ok=True)
        for k in itertools.count(1):
            target = target_dir / f"{spec.name}.{kind}-{k}"
            if not target.exists():
                return target
        raise AssertionError("unreachable")

    def move_aside(self, spec: RunSpec, kind: str = "failed") -> Path:
        """Move the run directory to ``failed/<run>.<kind>-K`` (never deleted)."""
        target = self._aside_path(spec, kind)
        os.replace(self.run_dir(spec), target)
        return target

    def set_attempt_aside(self, spec: RunSpec, tb_files: list[str]) -> Path:
        """Keep a failed attempt in ``failed/<run>.failed-K`` (its ``error.json``, a copy of
        ``train.log``, its TensorBoard files) and leave the run directory, with its
        configuration, checkpoints and evaluations, to be resumed
        (:func:`coordrl.runs.set_attempt_aside`)."""
        target = self._aside_path(spec, "failed")
        runs.set_attempt_aside(self.run_dir(spec), target, tb_files)
        return target

    # -------------------------------------------------------------------------- logs
    def open_log(self, spec: RunSpec) -> IO[bytes]:
        """``logs/<run>.log`` opened for appending (binary; created with its folder)."""
        path = self.log_path(spec)
        path.parent.mkdir(parents=True, exist_ok=True)
        return open(path, "ab")

    def read_log(self, spec: RunSpec, offset: int = 0) -> str:
        """``logs/<run>.log`` from byte ``offset`` on (``""`` if it cannot be read)."""
        try:
            with open(self.log_path(spec), "rb") as f:
                f.seek(offset)
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def fold_log(self, spec: RunSpec) -> Path | None:
        """Append ``logs/<run>.log`` to ``runs/<run>/train.log`` (if the run directory exists)
        and remove it. Returns the log's final path (or where it still is)."""
        log = self.log_path(spec)
        run_log = self.run_dir(spec) / runs.LOG_FILE
        if not log.exists():
            return run_log if run_log.exists() else None
        if not self.run_dir(spec).is_dir():
            return log
        run_log = runs.append_log(self.run_dir(spec), log)
        log.unlink()
        return run_log

    def fold_stale_logs(self, specs: Iterable[RunSpec]) -> None:
        """Fold the logs a killed sweep left behind (those no live process writes to)."""
        for spec in specs:
            if self.log_path(spec).exists() and not self.is_busy(spec):
                self.fold_log(spec)


@dataclass(frozen=True)
class StopFile:
    """``locks/stop-*``: how the Ray driver asks its tasks, on any node of the shared sweep
    directory, to stop (picklable: it travels with each task).

    :param path: the file.
    """

    path: str

    def request(self) -> None:
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        Path(self.path).touch()

    def requested(self) -> bool:
        return os.path.exists(self.path)

    def remove(self) -> None:
        Path(self.path).unlink(missing_ok=True)


class RunLock:
    """An exclusive ``flock`` on a lock file: ``locks/<run>.lock``, inherited by the training
    process so that the run stays locked for as long as that process lives, even if the sweep
    dies; and ``locks/driver.lock``, held by the sweep driver (:meth:`SweepDir.driver_lock`).

    The holder may leave a note in the file (:meth:`write_holder`): written in place, not
    atomically, since the lock belongs to the file's inode (a rename would replace it); a
    reader that finds it half-written gets ``{}``.

    :param path: the lock file.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fd: int | None = None

    def acquire(self, create: bool = True) -> bool:
        if create:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            # 0o666 less the umask: the mode of every other file coordrl writes
            fd = os.open(self.path, os.O_RDWR | (os.O_CREAT if create else 0), 0o666)
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

    def write_holder(self, note: dict[str, Any]) -> None:
        """Leave ``note`` (JSON) in the held lock file, for the message of whoever waits."""
        assert self.fd is not None, "write_holder needs the lock"
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, json.dumps(note).encode(), 0)

    def read_holder(self) -> dict[str, Any]:
        """The holder's note (``{}`` if there is none or it cannot be read)."""
        try:
            note = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}
        return note if isinstance(note, dict) else {}
