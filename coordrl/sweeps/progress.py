"""The live progress of a sweep: one status line (runs done/running/failed, environment steps
done of the sweep's total, aggregate steps/s and ETA) plus one line per event (a run started,
completed, FAILED...).

On a terminal the status line is redrawn in place (``rich.live``) and the events scroll above
it; otherwise (a log file, CI, tests) the events are printed as lines ending with the status
line, and the status line alone every ``status_every_s`` seconds. The counters are refreshed
from the runs' ``progress.json`` (:func:`coordrl.runs.read_progress`, written by the train CLI
every few seconds) every ``refresh_s`` seconds; :func:`render_status` turns them into the line
and is a pure function of them.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from coordrl import runs

__all__ = ["FRESH_S", "Progress", "StatusCounts", "format_duration", "render_status"]

#: A ``progress.json`` older than this (seconds) does not count towards the current rate.
FRESH_S = 30.0


@dataclass(frozen=True)
class StatusCounts:
    """What the status line shows.

    :param runs: runs in the sweep.
    :param done: complete runs.
    :param running: runs this invocation is running now.
    :param failed: failed runs (kept, or failed in this invocation).
    :param steps_done: environment steps done over all runs: a complete run counts its
        timesteps, any other run the ``steps`` of its ``progress.json`` (a failed run 0).
    :param steps_total: runs x timesteps.
    :param steps_left: steps still to train by the runs this invocation runs or will run.
    :param rate: aggregate training steps/s now, ``None`` when unknown.
    """

    runs: int
    done: int
    running: int
    failed: int
    steps_done: int
    steps_total: int
    steps_left: int
    rate: float | None


def format_duration(seconds: float) -> str:
    """``141`` -> ``2m21s``; ``3723`` -> ``1h02m03s``; ``5`` -> ``5s``."""
    seconds = int(round(seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else (f"{m}m{s:02d}s" if m else f"{s}s")


def _stamp() -> str:
    return datetime.now().strftime("%H:%M:%S")


def render_status(c: StatusCounts) -> str:
    """``done 3/10 running 2 failed 0 | 1,234,567/2,000,000 steps | 5,432 steps/s | ETA 2m21s``"""
    if c.steps_left <= 0:
        eta = "ETA 0s"
    elif c.rate:
        eta = f"ETA {format_duration(c.steps_left / c.rate)}"
    else:
        eta = "ETA ?"
    rate = f"{c.rate:,.0f} steps/s" if c.rate is not None else "? steps/s"
    return (
        f"done {c.done}/{c.runs} running {c.running} failed {c.failed}"
        f" | {c.steps_done:,}/{c.steps_total:,} steps | {rate} | {eta}"
    )


class Progress:
    """Counts and shows the progress of one sweep invocation.

    Run states: ``complete``, ``failed``, ``pending`` (to run in this invocation), ``running``
    (here), ``idle`` (not run here: running elsewhere, interrupted after a stop...).

    :param timesteps: environment steps per run.
    :param run_dirs: every run of the sweep, name -> run directory.
    :param statuses: every run's status when the invocation began (name -> ``complete``,
        ``failed``, ``interrupted``, ``new``, ``running``).
    :param todo: the names of the runs this invocation will run.
    :param stream: where to write (default ``sys.stdout``).
    :param live: redraw the status line in place (default: whether ``stream`` is a terminal).
    :param status_every_s: without ``live``, print the status line this often.
    :param refresh_s: re-read the running runs' ``progress.json`` this often.
    :param clock: monotonic time (intervals); ``wall``: epoch time (``progress.json`` ages).
    """

    def __init__(
        self,
        timesteps: int,
        run_dirs: Mapping[str, Path],
        statuses: Mapping[str, str],
        todo: Iterable[str] = (),
        stream: Any = None,
        live: bool | None = None,
        status_every_s: float = 60.0,
        refresh_s: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.timesteps = timesteps
        self.run_dirs = dict(run_dirs)
        to_run = set(todo)
        self.state: dict[str, str] = {}
        for name in self.run_dirs:
            status = statuses.get(name, "new")
            if name in to_run:
                self.state[name] = "pending"
            else:
                self.state[name] = status if status in ("complete", "failed") else "idle"
        # steps done per run; a failed run's count until a retry starts (it may resume)
        self.steps = {n: self._read_steps(n, statuses.get(n, "new")) for n in self.run_dirs}
        self.fps: dict[str, float] = {}
        self.stream = stream if stream is not None else sys.stdout
        if live is None:
            isatty = getattr(self.stream, "isatty", None)
            live = bool(isatty and isatty())
        self.status_every_s = status_every_s
        self.refresh_s = refresh_s
        self.clock, self.wall = clock, wall
        self.last_refresh = self.last_status = clock()
        self._live: Any = None
        if live:
            from rich.console import Console
            from rich.live import Live

            console = Console(file=self.stream, highlight=False)
            self._live = Live(console=console, auto_refresh=False, transient=False)
            self._live.start()
            self._redraw()

    # -------------------------------------------------------------------------- counters
    def _read_steps(self, name: str, status: str) -> int:
        if status == "complete":
            return self.timesteps
        if status == "failed":
            return 0
        progress = runs.read_progress(self.run_dirs[name])
        return min(int(progress["steps"]), self.timesteps) if progress else 0

    def refresh(self) -> None:
        """Re-read the ``progress.json`` of the runs running now (a few small files)."""
        now = self.wall()
        for name, state in self.state.items():
            if state != "running":
                continue
            progress = runs.read_progress(self.run_dirs[name])
            if progress is None:
                self.fps.pop(name, None)
                continue
            self.steps[name] = min(int(progress["steps"]), self.timesteps)
            if now - progress["time"] <= FRESH_S:
                self.fps[name] = float(progress["fps"])
            else:
                self.fps.pop(name, None)  # stalled or between sessions: not training now
        self.last_refresh = self.clock()

    def counts(self) -> StatusCounts:
        states = list(self.state.values())
        left = sum(
            self.timesteps - self.steps[n]
            for n, st in self.state.items()
            if st in ("pending", "running")
        )
        # The rate is the sum of the fps the running runs report in fresh progress.json files
        # (each run's training rate of its current session), not a steps delta over wall time:
        # a delta jumps whenever a run completes (its steps become its timesteps) or a failed
        # run is retried (its steps drop to 0). It leaves out process start-up and
        # evaluations, so the ETA is a little optimistic. A run that has just started reports
        # fps 0 (nothing trained yet): it is counted at the mean rate of the runs that have one,
        # so that the rate does not halve every time a run starts.
        running = [n for n, st in self.state.items() if st == "running" and n in self.fps]
        known = [self.fps[n] for n in running if self.fps[n] > 0]
        typical = sum(known) / len(known) if known else 0.0
        fps = [self.fps[n] if self.fps[n] > 0 else typical for n in running]
        return StatusCounts(
            runs=len(states),
            done=states.count("complete"),
            running=states.count("running"),
            failed=states.count("failed"),
            steps_done=sum(self.steps[n] for n, st in self.state.items() if st != "failed"),
            steps_total=len(states) * self.timesteps,
            steps_left=left,
            rate=sum(fps) if fps and sum(fps) > 0 else None,
        )

    def status_line(self) -> str:
        return render_status(self.counts())

    # -------------------------------------------------------------------------- output
    def _print(self, text: str) -> None:
        if self._live is not None:
            self._live.console.print(text, markup=False, highlight=False, soft_wrap=True)
            self._redraw()
        else:
            print(text, file=self.stream, flush=True)

    def _redraw(self) -> None:
        from rich.text import Text

        self._live.update(Text(self.status_line()), refresh=True)

    def line(self, event: str, name: str = "", detail: str = "") -> None:
        """An event line: ``[HH:MM:SS] event run (detail)``, with the status line appended
        when the status is not shown live."""
        text = f"[{_stamp()}] {event:<11} {name}"
        if detail:
            text += f" ({detail})"
        if self._live is None:
            text += f"  | {self.status_line()}"
            self.last_status = self.clock()
        self._print(text)

    def tick(self) -> None:
        """Called by the backends' polling loops: refresh the counters every ``refresh_s`` and
        show them (redrawn, or a plain line every ``status_every_s``)."""
        if self.clock() - self.last_refresh < self.refresh_s:
            return
        self.refresh()
        if self._live is not None:
            self._redraw()
        elif self.clock() - self.last_status >= self.status_every_s:
            print(f"[{_stamp()}] {self.status_line()}", file=self.stream, flush=True)
            self.last_status = self.clock()

    def close(self) -> None:
        """Stop redrawing (the last status line stays on the terminal)."""
        if self._live is not None:
            self.refresh()
            self._redraw()
            self._live.stop()
            self._live = None

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -------------------------------------------------------------------------- events
    def started(self, name: str, resumed: bool, where: str = "") -> None:
        self.state[name] = "running"
        self.steps[name] = self._read_steps(name, "running")  # a retried run starts at 0
        self.line("resumed" if resumed else "started", name, where)

    def finished(self, outcome: Any) -> None:
        """Record a :class:`~coordrl.sweeps.attempt.RunOutcome`."""
        name = outcome.name
        self.fps.pop(name, None)
        if outcome.status == "complete":
            self.state[name], self.steps[name] = "complete", self.timesteps
            ret = "" if outcome.mean_return is None else f", mean return {outcome.mean_return:.3g}"
            self.line("complete", name, f"{format_duration(outcome.wall_s)}{ret}")
            return
        if outcome.status == "failed":
            self.state[name] = "failed"
            self.line("FAILED", name, f"exit {outcome.returncode}: {outcome.error}")
            self._print(f"    log: {outcome.log}")
            return
        self.state[name] = "idle"
        self.steps[name] = self._read_steps(name, "interrupted")
        if outcome.status == "not started":
            self.line("not started", name, "the sweep was stopped")
        elif outcome.status == "busy":
            self.line("busy", name, "another process is running it; skipped")
        else:
            self.line("interrupted", name, "stopped; rerun the sweep to resume it")

    def stopping(self, action: str, running: int) -> None:
        """A line for a step of the stop sequence (``"interrupt"`` or ``"kill"``); runs not
        started by now will not be started by this invocation."""
        for name, state in self.state.items():
            if state == "pending":
                self.state[name] = "idle"
        if action == "interrupt":
            detail = f"asking {running} run(s) to checkpoint; press Ctrl-C again to kill them"
            self.line("stopping", detail=detail)
        else:
            self.line("killing", detail=f"{running} run(s) still running")
