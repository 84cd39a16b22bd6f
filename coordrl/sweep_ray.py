"""Ray backend of :mod:`coordrl.sweep`: every run is a Ray task that runs the same
``python -m coordrl.train`` subprocess on whichever node Ray picks.

Assumptions (documented in the README): every node has coordrl installed in the Python that
runs its Ray workers, and sees the sweep directory at the same absolute path (a shared
filesystem such as NFS). The task writes the run directory, log and ``error.json`` there
exactly as the local backend does; the driver only schedules tasks and prints progress.

Ray is optional (``pip install 'coordrl[ray]'``); this module is imported only for
``--backend ray``.
"""

from __future__ import annotations

import os
import time
from collections import deque
from collections.abc import Sequence
from typing import Any

from coordrl.sweep import (
    DEFAULT_GRACE_S,
    LOCKS_DIR,
    Progress,
    RunAttempt,
    RunOutcome,
    StopRequest,
    SweepError,
)


def check_available() -> None:
    """Raise :class:`SweepError` with install instructions if Ray cannot be imported."""
    try:
        import ray  # noqa: F401
    except ImportError:
        raise SweepError(
            "--backend ray needs Ray, which is not installed: pip install 'coordrl[ray]'"
        ) from None


def execute_attempt(
    attempt: RunAttempt, grace_s: float = DEFAULT_GRACE_S, stop_file: str | None = None
) -> RunOutcome:
    """Body of the Ray task: run one attempt to its end on this node.

    The driver asks running tasks to stop by creating ``stop_file`` (on the shared sweep
    directory): ``ray.cancel`` without ``force`` does not reliably interrupt a task that waits
    (ray-project/ray#32954), and with ``force`` it would kill the worker before the training
    process could checkpoint. On a stop request the training process gets SIGINT (it
    checkpoints and exits 130) and ``grace_s`` seconds before it is killed.
    """
    if stop_file is not None and os.path.exists(stop_file):
        return RunOutcome(attempt.spec.name, "not started")  # queued when the sweep stopped
    if not attempt.start():
        return RunOutcome(attempt.spec.name, "busy")
    deadline = None
    try:
        while (rc := attempt.poll()) is None:
            if deadline is None and stop_file is not None and os.path.exists(stop_file):
                attempt.interrupt()
                deadline = time.monotonic() + grace_s
            if deadline is not None and time.monotonic() > deadline:
                attempt.kill()
            time.sleep(0.5)
    except BaseException:  # e.g. a cancellation delivered as an exception
        attempt.interrupt()
        try:
            rc = attempt.wait(timeout=grace_s)
        except Exception:  # subprocess.TimeoutExpired
            attempt.kill()
            rc = attempt.wait()
    return attempt.finish(rc)


def run_ray(
    attempts: Sequence[RunAttempt],
    progress: Progress,
    address: str | None = None,
    max_in_flight: int | None = None,
    cpus_per_run: float = 1.0,
    gpus_per_run: float = 0.0,
    grace_s: float = DEFAULT_GRACE_S,
    init_kwargs: dict[str, Any] | None = None,
) -> tuple[list[RunOutcome], bool]:
    """Run the attempts as Ray tasks requesting ``cpus_per_run`` CPUs and ``gpus_per_run``
    GPUs each, with at most ``max_in_flight`` submitted at a time.

    :param address: Ray cluster address (``auto``, ``ray://host:10001``); ``None`` starts a
        local Ray instance for this sweep (and stops it at the end).
    :return: the outcomes and whether the sweep was stopped by a signal.
    """
    import ray

    kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": True}
    kwargs.update(init_kwargs or {})
    if address:
        kwargs["address"] = address
    stop_file = attempts[0].sweep.path / LOCKS_DIR / f"stop-{os.getpid()}-{time.time_ns()}"
    outcomes: list[RunOutcome] = []
    with StopRequest() as stop:  # before ray.init: a Ctrl-C during a slow start counts too
        try:
            ray.init(**kwargs)
        except (ConnectionError, RuntimeError, ValueError) as e:
            raise SweepError(f"cannot start/connect to Ray ({address or 'local'}): {e}") from None
        stop.install()  # ray.init replaces the SIGTERM handler
        try:
            _check_resources(ray.cluster_resources(), cpus_per_run, gpus_per_run)
            task = ray.remote(execute_attempt).options(
                num_cpus=cpus_per_run, num_gpus=gpus_per_run, max_retries=0
            )
            limit = max_in_flight or len(attempts) or 1
            pending = deque(attempts)
            in_flight: dict[Any, RunAttempt] = {}
            stopping = killed = False
            while pending or in_flight:
                while stop.count == 0 and pending and len(in_flight) < limit:
                    attempt = pending.popleft()
                    in_flight[task.remote(attempt, grace_s, str(stop_file))] = attempt
                    progress.started(attempt.spec.name, resumed=False, where="submitted to Ray")
                if stop.count and not stopping:
                    stopping = True
                    pending.clear()  # not submitted: they stay "new" for the next invocation
                    progress.line(
                        "stopping",
                        detail=f"asking {len(in_flight)} run(s) to checkpoint; "
                        "press Ctrl-C again to kill them",
                    )
                    stop_file.parent.mkdir(parents=True, exist_ok=True)
                    stop_file.touch()
                if stop.count >= 2 and not killed:
                    killed = True
                    for ref in in_flight:
                        ray.cancel(ref, force=True)  # the children get SIGTERM (parent death)
                if not in_flight:
                    break
                ready, _ = ray.wait(list(in_flight), num_returns=1, timeout=0.5)
                for ref in ready:
                    attempt = in_flight.pop(ref)
                    try:
                        outcome = ray.get(ref)
                    except (ray.exceptions.TaskCancelledError, ray.exceptions.WorkerCrashedError):
                        outcome = RunOutcome(attempt.spec.name, "interrupted")
                    except ray.exceptions.RayError as e:
                        outcome = RunOutcome(
                            attempt.spec.name, "failed", error=str(e).splitlines()[0]
                        )
                    outcomes.append(outcome)
                    progress.finished(outcome)
                progress.heartbeat(600.0)
                if stop.count and time.monotonic() - stop.since > grace_s + 30:
                    break  # tasks that ignore the stop request: Ray kills them at shutdown
        finally:
            stop_file.unlink(missing_ok=True)
            ray.shutdown()
    return outcomes, stop.count > 0


def _check_resources(resources: dict[str, float], cpus_per_run: float, gpus_per_run: float) -> None:
    for name, need in (("CPU", cpus_per_run), ("GPU", gpus_per_run)):
        if need > resources.get(name, 0):
            raise SweepError(
                f"each run requests {need:g} {name}(s) but the Ray cluster has "
                f"{resources.get(name, 0):g}; lower --{name.lower()}s-per-run"
            )
