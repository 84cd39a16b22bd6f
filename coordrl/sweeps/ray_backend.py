"""The Ray backend: every run is a Ray task that runs the same ``python -m coordrl.train``
subprocess (:class:`~coordrl.sweeps.attempt.RunAttempt`) on whichever node Ray picks.

Assumptions (documented in the README): every node has coordrl installed in the Python that
runs its Ray workers, and sees the sweep directory at the same absolute path (a shared
filesystem such as NFS). The task writes the run directory, log and ``error.json`` there
exactly as the local backend does; the driver only schedules tasks and shows progress.

Ray is optional (``pip install 'coordrl[ray]'``): it is imported inside the functions, and
this module only for ``--backend ray``.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Sequence
from typing import Any

from coordrl.sweeps.attempt import DEFAULT_GRACE_S, RunAttempt, RunOutcome, Stopper, watch
from coordrl.sweeps.definition import SweepError
from coordrl.sweeps.layout import StopFile, SweepDir
from coordrl.sweeps.progress import Progress

__all__ = ["check_available", "execute_attempt", "run_ray"]

#: The driver kills tasks this long after the tasks' own grace period (each task kills its
#: training process at ``grace_s`` and reports; the driver's kill is for tasks that do not).
TASK_MARGIN_S = 30.0
#: After killing, how long the driver waits for the cancelled tasks before it gives up on them
#: (Ray kills whatever is left at shutdown).
KILL_WAIT_S = 30.0


def check_available() -> None:
    """Raise :class:`SweepError` with install instructions if Ray cannot be imported."""
    try:
        import ray  # noqa: F401
    except ImportError:
        raise SweepError(
            "--backend ray needs Ray, which is not installed: pip install 'coordrl[ray]'"
        ) from None


def execute_attempt(
    attempt: RunAttempt, grace_s: float = DEFAULT_GRACE_S, stop_file: StopFile | None = None
) -> RunOutcome:
    """Body of the Ray task: run one attempt to its end on this node.

    The driver asks running tasks to stop by creating ``stop_file`` (on the shared sweep
    directory): ``ray.cancel`` without ``force`` does not reliably interrupt a task that waits
    (ray-project/ray#32954), and with ``force`` it would kill the worker before the training
    process could checkpoint. The stop file is a stop request of the task's
    :class:`~coordrl.sweeps.attempt.Stopper`: SIGINT (checkpoint and exit 130), then
    ``grace_s`` seconds before the kill.
    """

    def stop_wanted() -> bool:
        return stop_file is not None and stop_file.requested()

    if stop_wanted():
        return RunOutcome(attempt.spec.name, "not started")  # queued when the sweep stopped
    if not attempt.start():
        return RunOutcome(attempt.spec.name, "busy")
    stopper = Stopper(grace_s)
    try:
        rc = watch(attempt, stopper, stop_wanted)
    except BaseException:  # e.g. a cancellation delivered as an exception: stop the same way
        if not stopper.requested:
            stopper.request()
        rc = watch(attempt, stopper)
    return attempt.finish(rc)


class _Task:
    """A submitted task as the stop sequence sees it."""

    def __init__(self, ref: Any, attempt: RunAttempt, stop_file: StopFile) -> None:
        self.ref, self.attempt, self.stop_file = ref, attempt, stop_file

    def interrupt(self) -> None:
        self.stop_file.request()  # one file for all tasks: each one polls it

    def kill(self) -> None:
        import ray

        ray.cancel(self.ref, force=True)  # the training process gets SIGTERM (parent death)


def run_ray(
    sweep: SweepDir,
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
    GPUs each, with at most ``max_in_flight`` submitted at a time. Nothing to run: Ray is not
    started.

    :param address: Ray cluster address (``auto``, ``ray://host:10001``); ``None`` starts a
        local Ray instance for this sweep (and stops it at the end).
    :return: the outcomes and whether the sweep was stopped by a signal.
    """
    if not attempts:
        return [], False
    import ray

    kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": True}
    kwargs.update(init_kwargs or {})
    if address:
        kwargs["address"] = address
    stop_file = sweep.stop_file()
    outcomes: list[RunOutcome] = []
    # (installed before ray.init: a Ctrl-C during a slow start counts too)
    with Stopper(grace_s + TASK_MARGIN_S) as stop:
        try:
            ray.init(**kwargs)
        except (ConnectionError, RuntimeError, ValueError) as e:
            raise SweepError(f"cannot start/connect to Ray ({address or 'local'}): {e}") from None
        stop.install()  # ray.init replaces the SIGTERM handler
        try:
            _check_resources(ray.cluster_resources(), cpus_per_run, gpus_per_run)
            remote = ray.remote(execute_attempt).options(
                num_cpus=cpus_per_run, num_gpus=gpus_per_run, max_retries=0
            )
            limit = max_in_flight or len(attempts)
            pending = deque(attempts)
            in_flight: dict[Any, _Task] = {}
            killed_at = None
            while pending or in_flight:
                if stop.requested:
                    pending.clear()  # not submitted: they stay "new" for the next invocation
                while pending and len(in_flight) < limit:
                    attempt = pending.popleft()
                    ref = remote.remote(attempt, grace_s, stop_file)
                    in_flight[ref] = _Task(ref, attempt, stop_file)
                    progress.started(attempt.spec.name, resumed=False, where="submitted to Ray")
                action = stop.step(list(in_flight.values()))
                if action:
                    progress.stopping(action, len(in_flight))
                if action == "kill":
                    killed_at = time.monotonic()
                if killed_at is not None and time.monotonic() - killed_at > KILL_WAIT_S:
                    break  # tasks that ignore even the kill: Ray kills them at shutdown
                if not in_flight:
                    continue
                ready, _ = ray.wait(list(in_flight), num_returns=1, timeout=0.5)
                for ref in ready:
                    attempt = in_flight.pop(ref).attempt
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
                progress.tick()
        finally:
            stop_file.remove()
            ray.shutdown()
    return outcomes, stop.requested


def _check_resources(resources: dict[str, float], cpus_per_run: float, gpus_per_run: float) -> None:
    for name, need in (("CPU", cpus_per_run), ("GPU", gpus_per_run)):
        if need > resources.get(name, 0):
            raise SweepError(
                f"each run requests {need:g} {name}(s) but the Ray cluster has "
                f"{resources.get(name, 0):g}; lower --{name.lower()}s-per-run"
            )
