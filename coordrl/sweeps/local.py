"""The local backend: at most ``workers`` training processes at a time on this machine.

A small polling process pool written here because the runs are subprocesses that must be
signalled, locked and logged individually (``concurrent.futures`` and ``multiprocessing``
manage Python callables, not long-lived child processes).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Sequence

from coordrl.sweeps.attempt import DEFAULT_GRACE_S, RunAttempt, RunOutcome, Stopper
from coordrl.sweeps.progress import Progress

__all__ = ["default_workers", "run_local"]

#: Seconds between two looks at the running processes.
POLL_S = 0.2


def default_workers(cpus: int, n_gpus: int) -> int:
    """Concurrent runs by default: one per two cores (one for the environments, one for torch),
    at least one per GPU, and at least 2 on a 2-3 core machine (measured faster in aggregate
    than one 2-thread run, see ``scripts/bench_sweep.py``)."""
    workers = max(1, cpus // 2)
    if cpus in (2, 3):
        workers = 2
    return max(workers, n_gpus)


def run_local(
    attempts: Sequence[RunAttempt],
    workers: int,
    gpus: Sequence[str],
    progress: Progress,
    grace_s: float = DEFAULT_GRACE_S,
    stopper: Stopper | None = None,
) -> tuple[list[RunOutcome], bool]:
    """Run the attempts with at most ``workers`` at a time; worker slot ``k`` uses GPU
    ``gpus[k % len(gpus)]`` when there are several GPUs. SIGINT/SIGTERM follow the
    :class:`~coordrl.sweeps.attempt.Stopper` sequence (checkpoint, then kill).

    :param stopper: the stop sequence (default: a new one with ``grace_s``)
    :return: the outcomes and whether the sweep was stopped by a signal.
    """
    pending = deque(attempts)
    running: dict[int, RunAttempt] = {}
    outcomes: list[RunOutcome] = []
    with stopper or Stopper(grace_s) as stop:
        while pending or running:
            if stop.requested:
                pending.clear()  # not started: they stay "new" for the next invocation
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
                    outcomes.append(RunOutcome(attempt.spec.name, "busy"))
                    progress.finished(outcomes[-1])
            action = stop.step(running.values())
            if action:
                progress.stopping(action, len(running))
            for slot, attempt in list(running.items()):
                rc = attempt.poll()
                if rc is not None:
                    del running[slot]
                    outcomes.append(attempt.finish(rc))
                    progress.finished(outcomes[-1])
            progress.tick()
            time.sleep(POLL_S)
        return outcomes, stop.requested
