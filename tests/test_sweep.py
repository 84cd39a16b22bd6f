"""Tests of ``python -m coordrl.sweep`` and :mod:`coordrl.sweeps`: validation, planning, the
stop sequence, the progress line and, end to end with the real ``coordrl.train`` CLI on the
pixel env (or a fake train module), a local sweep, failure/retry, kill/resume and Ray."""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import yaml

from coordrl import runs, sweep
from coordrl.sweeps import definition, local, ray_backend
from coordrl.sweeps.attempt import RunOutcome, Stopper, describe_failure
from coordrl.sweeps.definition import RunSpec, SweepDefinition, SweepError
from coordrl.sweeps.layout import SweepDir
from coordrl.sweeps.progress import Progress, StatusCounts, render_status

ENV = "coordrl/PointAtDot-v0"
GAME = "coordrl-PointAtDot-v0"
# Two PPO rollouts of 2 envs x 64 steps: each run is mostly process start-up.
TINY_TRAIN = [
    "--algos", "ppo", "--n-envs", "2", "--set", "n_steps=64", "batch_size=64",
    "--eval-episodes", "2", "--eval-freq", "0",
]  # fmt: skip
TINY = ["--games", ENV, *TINY_TRAIN, "--variants", "conv", "coordconv", "--seeds", "2"]
TINY += ["--timesteps", "256", "--checkpoint-freq", "128", "--workers", "2", "--threads", "1"]


def run_main(argv: list[str]) -> tuple[int, str, str]:
    """``coordrl.sweep.main`` in this process: (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = sweep.main(argv)
    return rc, out.getvalue(), err.getvalue()


def run_cli(argv: list[str], **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "coordrl.sweep", *argv],
        capture_output=True,
        text=True,
        timeout=240,
        **kwargs,
    )


def spec(variant: str, seed: int) -> RunSpec:
    return RunSpec(ENV, "ppo", variant, seed)


def result_mtimes(sweep_dir: Path) -> dict[str, float]:
    return {p.parent.name: p.stat().st_mtime_ns for p in sweep_dir.glob("runs/*/result.json")}


# ------------------------------------------------------------------------------- parsing


@pytest.mark.parametrize(
    "value, explicit, seeds",
    [
        (["5"], False, [0, 1, 2, 3, 4]),
        (5, False, [0, 1, 2, 3, 4]),
        (["0", "3", "7"], False, [0, 3, 7]),
        (["10..12"], False, [10, 11, 12]),
        (["1", "5..6"], False, [1, 5, 6]),
        ([7], True, [7]),  # a one-element YAML list names a seed
        ("0,3 7", False, [0, 3, 7]),
    ],
)
def test_parse_seeds(value, explicit, seeds) -> None:
    assert definition.parse_seeds(value, explicit=explicit) == seeds


@pytest.mark.parametrize("value", [["0"], ["-2"], ["1", "1"], ["x"], ["5..3"], [], True])
def test_parse_seeds_rejects(value) -> None:
    with pytest.raises(SweepError):
        definition.parse_seeds(value)


def test_parse_timesteps() -> None:
    assert definition.parse_timesteps("2e6") == 2_000_000
    assert definition.parse_timesteps("2_000") == 2000
    assert definition.parse_timesteps(1e5) == 100_000
    for bad in ("0", "-5", "1.5", "many", "inf"):
        with pytest.raises(SweepError):
            definition.parse_timesteps(bad)


def test_overrides_scoped_to_an_algorithm() -> None:
    overrides = definition.parse_overrides(["n_steps=64", "ppo:n_epochs=2"])
    assert definition.overrides_for("ppo", overrides) == ["n_steps=64", "n_epochs=2"]
    assert definition.overrides_for("a2c", overrides) == ["n_steps=64"]
    nested = definition.parse_overrides({"gamma": 0.5, "ppo": {"n_epochs": 2}, "lr": "lin_1e-3"})
    assert nested == {"gamma": "0.5", "ppo:n_epochs": "2", "lr": "lin_1e-3"}


def test_default_workers() -> None:
    assert local.default_workers(1, 0) == 1
    assert local.default_workers(2, 0) == 2
    assert local.default_workers(16, 0) == 8
    assert local.default_workers(4, 4) == 4


class _StubAttempt:
    """Stands in for :class:`RunAttempt` (no process): ends after ``polls`` polls, or, once
    interrupted, at the next poll (130) unless ``stubborn``; killed, at the next poll (-9)."""

    def __init__(self, seed: int, polls: int = 2, stubborn: bool = False) -> None:
        self.spec = RunSpec(ENV, "ppo", "conv", seed)
        self.env: dict[str, str] = {}
        self.resumed = False
        self.polls, self.stubborn, self.limit = 0, stubborn, polls
        self.calls: list[str] = []
        self.on_poll = lambda: None

    def start(self) -> bool:
        self.calls.append("start")
        return True

    def poll(self) -> int | None:
        self.polls += 1
        self.on_poll()
        if "kill" in self.calls:
            return -9
        if "interrupt" in self.calls and not self.stubborn:
            return 130
        return 0 if self.polls >= self.limit else None

    def interrupt(self) -> None:
        self.calls.append("interrupt")

    def kill(self) -> None:
        self.calls.append("kill")

    def finish(self, rc: int) -> RunOutcome:
        return RunOutcome(self.spec.name, "complete" if rc == 0 else "interrupted", rc)


def _progress_for(attempts, tmp_path: Path, **kwargs) -> Progress:
    names = [a.spec.name for a in attempts]
    return Progress(
        1000, {n: tmp_path / n for n in names}, {n: "new" for n in names}, todo=names, **kwargs
    )


def test_local_runs_are_spread_over_gpus(tmp_path: Path) -> None:
    attempts = [_StubAttempt(i) for i in range(4)]
    progress = _progress_for(attempts, tmp_path, stream=io.StringIO())
    outcomes, stopped = local.run_local(attempts, 2, ["0", "1"], progress)
    assert not stopped and [o.status for o in outcomes] == ["complete"] * 4
    assert [a.env["CUDA_VISIBLE_DEVICES"] for a in attempts] == ["0", "1", "0", "1"]


# ------------------------------------------------------------------------------- stopping


def test_stopper_sequence() -> None:
    now = [0.0]
    stopper = Stopper(grace_s=10, clock=lambda: now[0])
    a, b = _StubAttempt(0), _StubAttempt(1)
    assert stopper.step([a, b]) is None and not stopper.requested
    stopper.request()
    now[0] = 1.0
    assert stopper.step([a, b]) == "interrupt" and a.calls == b.calls == ["interrupt"]
    now[0] = 9.5
    assert stopper.step([a, b]) is None  # still within the grace period (from the request)
    now[0] = 10.0
    assert stopper.step([a, b]) == "kill" and a.calls == ["interrupt", "kill"]
    assert stopper.step([a, b]) is None  # each action once

    again = Stopper(grace_s=100, clock=lambda: now[0])
    again.request()
    assert again.step([a]) == "interrupt"
    again.request()  # a second Ctrl-C: kill now
    assert again.step([a]) == "kill"


def _sigint_on_first_poll(attempt: _StubAttempt) -> None:
    def on_poll() -> None:
        if attempt.polls == 1:
            os.kill(os.getpid(), signal.SIGINT)

    attempt.on_poll = on_poll


def test_local_backend_interrupt_then_kill_after_grace(tmp_path: Path) -> None:
    polite, stubborn = _StubAttempt(0, polls=10**6), _StubAttempt(1, polls=10**6, stubborn=True)
    queued = _StubAttempt(2)
    _sigint_on_first_poll(polite)
    out = io.StringIO()
    progress = _progress_for([polite, stubborn, queued], tmp_path, stream=out)
    # (SIG_IGN, not default_int_handler, when pytest runs as a background job of a shell)
    handler = signal.getsignal(signal.SIGINT)
    start = time.monotonic()
    outcomes, stopped = local.run_local([polite, stubborn, queued], 2, [], progress, grace_s=0.5)
    assert stopped and time.monotonic() - start < 10
    assert polite.calls == ["start", "interrupt"]  # checkpointed and exited within the grace
    assert stubborn.calls == ["start", "interrupt", "kill"]  # killed when the grace ran out
    assert queued.calls == []  # never started: stays new for the next invocation
    assert sorted(o.returncode for o in outcomes) == [-9, 130]
    assert "stopping" in out.getvalue() and "killing" in out.getvalue()
    assert progress.counts().steps_left == 0  # the queued run is not in the ETA any more
    assert signal.getsignal(signal.SIGINT) is handler  # restored


def test_ray_task_follows_the_same_stop_sequence(tmp_path: Path) -> None:
    """The Ray task body stops its run as the local backend does: the driver's stop file is a
    stop request (interrupt), the grace period then kills."""
    stop_file = SweepDir(tmp_path).stop_file()
    stubborn = _StubAttempt(0, polls=10**6, stubborn=True)
    stubborn.on_poll = stop_file.request
    outcome = ray_backend.execute_attempt(stubborn, grace_s=0.2, stop_file=stop_file)
    assert stubborn.calls == ["start", "interrupt", "kill"] and outcome.returncode == -9
    queued = _StubAttempt(1)
    outcome = ray_backend.execute_attempt(queued, grace_s=0.2, stop_file=stop_file)
    assert outcome.status == "not started" and queued.calls == []


# ------------------------------------------------------------------------------- progress


def test_render_status_is_a_function_of_the_counts() -> None:
    counts = StatusCounts(10, 3, 2, 0, 1_234_567, 2_000_000, 765_433, 5432.0)
    line = "done 3/10 running 2 failed 0 | 1,234,567/2,000,000 steps | 5,432 steps/s | ETA 2m21s"
    assert render_status(counts) == line
    unknown = StatusCounts(2, 0, 0, 0, 0, 200, 200, None)
    assert render_status(unknown).endswith("| 0/200 steps | ? steps/s | ETA ?")
    finished = StatusCounts(2, 2, 0, 0, 200, 200, 0, None)
    assert render_status(finished).endswith("ETA 0s")


def test_progress_counts_steps_from_progress_files(tmp_path: Path) -> None:
    names = ["complete", "running", "interrupted", "failed", "new"]
    dirs = {n: tmp_path / n for n in names}
    wall = [1000.0]
    runs.write_progress(dirs["interrupted"], 300, 1000, 50.0)
    runs.write_progress(dirs["failed"], 900, 1000, 50.0)  # a failed run's steps do not count
    statuses = {n: n if n != "running" else "new" for n in names}
    out, clock = io.StringIO(), [0.0]
    progress = Progress(
        1000, dirs, statuses, todo=["running", "interrupted"], stream=out,
        status_every_s=60, refresh_s=2, clock=lambda: clock[0], wall=lambda: wall[0],
    )  # fmt: skip
    assert progress.status_line() == (
        "done 1/5 running 0 failed 1 | 1,300/5,000 steps | ? steps/s | ETA ?"
    )
    runs.write_progress(dirs["running"], 400, 1000, 100.0)  # the run has started
    wall[0] = runs.read_progress(dirs["running"])["time"] + 1
    progress.started("running", resumed=False)
    clock[0] = 1.0
    progress.tick()  # not yet time to refresh
    assert "? steps/s" in progress.status_line()
    clock[0] = 3.0
    progress.tick()  # refreshed: the running run's fresh progress.json gives the rate
    # left: running 600 + interrupted (to resume) 700 = 1300 steps at 100 steps/s
    assert progress.status_line() == (
        "done 1/5 running 1 failed 1 | 1,700/5,000 steps | 100 steps/s | ETA 13s"
    )
    assert out.getvalue().count("\n") == 1  # the "started" event line only
    clock[0] = 61.0
    progress.tick()  # a plain status line, every status_every_s
    assert out.getvalue().splitlines()[-1].endswith("| 100 steps/s | ETA 13s")
    assert out.getvalue().count("\n") == 2
    wall[0] += 3600  # progress.json stale: the run is not training now
    clock[0] = 64.0
    progress.tick()
    assert "? steps/s | ETA ?" in progress.status_line()
    progress.finished(RunOutcome("running", "complete", 0, wall_s=5.0))
    assert "done 2/5 running 0 failed 1 | 2,300/5,000 steps" in out.getvalue().splitlines()[-1]


# ------------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "change, message",
    [
        ({"--games": ["Pongg"]}, "did you mean 'Pong'"),
        ({"--algos": ["sac"]}, "unknown algorithm 'sac'"),
        ({"--variants": ["coordconv-first"]}, "unknown variant"),
        ({"--variants": ["coordconv-L7"]}, "coordconv-L7"),
        ({"--seeds": ["0"]}, "at least 1"),
        ({"--timesteps": ["-5"]}, "positive"),
        ({"--set": ["n_epochz=2"]}, "n_epochz"),
        ({"--set": ["a2c:n_steps=8"]}, "not an algorithm of this sweep"),
    ],
)
def test_bad_input_is_one_error_line_and_exit_2(tmp_path: Path, change, message) -> None:
    argv = {"--games": [ENV], "--algos": ["ppo"], "--variants": ["conv"], "--seeds": ["2"]}
    argv |= {"--timesteps": ["100"], **change}
    flat = [x for k, v in argv.items() for x in (k, *v)]
    rc, out, err = run_main([*flat, "--out", str(tmp_path / "s")])
    assert rc == 2
    assert err.startswith("error: ") and err.count("\n") == 1 and message in err
    assert not (tmp_path / "s").exists()


def test_config_file_and_flag_override(tmp_path: Path) -> None:
    cfg = tmp_path / "sweep.yaml"
    cfg.write_text(
        yaml.safe_dump(
            {"games": [ENV], "algos": ["ppo"], "variants": ["conv", "coordconv-r"], "seeds": [3]}
            | {"timesteps": "1e3", "set": {"n_steps": 64}, "out": str(tmp_path / "a")}
        )
    )
    rc, out, _ = run_main(["--config", str(cfg), "--dry-run"])
    assert rc == 0
    assert f"{GAME}_ppo_coordconv-r_s3" in out and "2 runs: 2 new" in out
    rc, out, _ = run_main(["--config", str(cfg), "--seeds", "2", "--dry-run"])
    assert rc == 0 and f"{GAME}_ppo_conv_s1" in out and "4 runs" in out
    assert not (tmp_path / "a").exists()  # a dry run creates nothing

    cfg.write_text(yaml.safe_dump({"games": [ENV], "sedes": 3}))
    rc, _, err = run_main(["--config", str(cfg), "--out", str(tmp_path / "b")])
    assert rc == 2 and "unknown key(s) ['sedes']" in err


def test_ray_backend_without_ray_is_a_clear_error(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    rc, _, err = run_main([*TINY, "--out", str(tmp_path / "s"), "--backend", "ray"])
    assert rc == 2 and "pip install 'coordrl[ray]'" in err
    assert not (tmp_path / "s").exists()


def test_set_takes_several_items_and_repeats(tmp_path: Path) -> None:
    argv = ["--set", "n_steps=64", "batch_size=64", "--set", "ppo:n_epochs=2", "gae_lambda=x=y"]
    opts, given = sweep.resolve_options(sweep.build_parser().parse_args([*argv, "--out", "x"]))
    assert given and opts["set"] == {
        "n_steps": "64", "batch_size": "64", "ppo:n_epochs": "2", "gae_lambda": "x=y",
    }  # fmt: skip
    rc, _, err = run_main(["--games", ENV, "--set", "n_steps", "--out", str(tmp_path / "s")])
    assert rc == 2 and err.count("\n") == 1
    assert err.startswith("error: --set 'n_steps': expected KEY=VALUE")  # _cli.parse_key_values
    assert not (tmp_path / "s").exists()


def _finished_sweep(path: Path, seeds: int = 2) -> SweepDir:
    """A sweep directory whose runs are all complete, written without training."""
    d = SweepDefinition(games=[ENV], algos=["ppo"], variants=["conv"], seeds=[*range(seeds)],
                        timesteps=128)  # fmt: skip
    sweep_dir = SweepDir(path)
    sweep_dir.write_manifest(d, ["--out", str(path)])
    for s in d.runs():
        result = runs.RunResult(game=s.game, env_id=s.game, is_atari=False, algo=s.algo,
                                variant=s.variant, seed=s.seed, timesteps=128, steps_done=128,
                                final_returns=[1.0, 2.0 + s.seed])  # fmt: skip
        runs.write_result(sweep_dir.run_dir(s), result)
    return sweep_dir


@pytest.mark.parametrize("backend", ["local", "ray"])
def test_rerun_of_a_finished_sweep_has_nothing_to_do(tmp_path: Path, monkeypatch, backend) -> None:
    if backend == "ray":
        ray = pytest.importorskip("ray")

        def no_ray(*args, **kwargs):
            raise AssertionError("Ray was started for a finished sweep")

        monkeypatch.setattr(ray, "init", no_ray)
    path = tmp_path / "done"
    sweep_dir = _finished_sweep(path)
    before = result_mtimes(path)
    rc, out, err = run_main(["--out", str(path), "--backend", backend])
    assert rc == 0, out + err
    assert f"sweep {path}: all 2 runs complete, nothing to do" in out
    assert "2/2 runs complete, 0 failed" in out and "ppo   conv     2/2" in out
    assert result_mtimes(path) == before

    failed = sweep_dir.run_dir(spec("conv", 1))  # a failed run kept by --no-retry: exit 1
    (failed / runs.RESULT_FILE).unlink()
    runs.write_error(failed, {"returncode": 1, "error": "boom"})
    rc, out, _ = run_main(["--out", str(path), "--backend", backend, "--no-retry"])
    assert rc == 1 and "2 runs (1 complete, 0 to run, 1 failed kept, 0 running elsewhere)" in out
    assert "; nothing to do" in out


FAKE_TRAIN = """
import argparse, os, time
from pathlib import Path
from coordrl import runs

p = argparse.ArgumentParser()
for flag in ("--game", "--algo", "--variant", "--logdir", "--resume"):
    p.add_argument(flag)
p.add_argument("--seed", type=int)
p.add_argument("--timesteps", type=int)
a, _ = p.parse_known_args()
run_dir = Path(a.logdir) / runs.run_name(a.game, a.algo, a.variant, a.seed)
run_dir.mkdir(parents=True)
(run_dir / runs.CONFIG_FILE).write_text("fake: true\\n")
hold = os.environ.get("FAKE_TRAIN_HOLD")  # wait until the test creates this file
while hold and not os.path.exists(hold):
    time.sleep(0.05)
for k in range(1, 4):
    time.sleep(1.0)
    runs.write_progress(run_dir, k * a.timesteps // 4, a.timesteps, 1000.0)
runs.write_result(run_dir, runs.RunResult(
    game=a.game, env_id=a.game, is_atari=False, algo=a.algo, variant=a.variant, seed=a.seed,
    timesteps=a.timesteps, steps_done=a.timesteps, final_returns=[1.0 + a.seed]))
"""


def test_plain_status_lines_from_progress_files(tmp_path: Path, monkeypatch) -> None:
    """Not a terminal: event lines plus a status line every --status-every seconds, with the
    steps and rate read from the runs' progress.json (a fake train module writes them)."""
    (tmp_path / "fake_train.py").write_text(textwrap.dedent(FAKE_TRAIN))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(tmp_path), *sys.path]))
    argv = ["--games", ENV, "--algos", "ppo", "--variants", "conv", "--seeds", "2"]
    argv += ["--timesteps", "400", "--workers", "2", "--out", str(tmp_path / "s")]
    rc, out, err = run_main([*argv, "--train-module", "fake_train", "--status-every", "0"])
    assert rc == 0, out + err
    status = [ln for ln in out.splitlines() if ln[11:].startswith("done ")]
    assert status, out
    assert any(re.search(r"\| [1-9][\d,]* steps/s \| ETA \d", ln) for ln in status), out
    assert "done 2/2 running 0 failed 0 | 800/800 steps" in out


def _fake_train(tmp_path: Path, monkeypatch) -> list[str]:
    """Use the fake train module (children of an in-process or subprocess sweep find it)."""
    (tmp_path / "fake_train.py").write_text(textwrap.dedent(FAKE_TRAIN))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(tmp_path), *sys.path]))
    return ["--train-module", "fake_train"]


def test_a_second_driver_is_refused_naming_the_first(tmp_path: Path, monkeypatch) -> None:
    """Two drivers on one sweep directory: the second exits 2 with one line naming the first
    (pid, host, since when) and changes nothing; the first finishes with the right count."""
    fake = _fake_train(tmp_path, monkeypatch)
    hold = tmp_path / "go"
    monkeypatch.setenv("FAKE_TRAIN_HOLD", str(hold))
    path = tmp_path / "s"
    argv = ["--games", ENV, "--algos", "ppo", "--variants", "conv", "--seeds", "2"]
    argv += ["--timesteps", "400", "--workers", "1", "--out", str(path), *fake]
    first = subprocess.Popen(
        [sys.executable, "-m", "coordrl.sweep", *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    sweep_dir = SweepDir(path)
    deadline = time.monotonic() + 120

    # The driver takes its lock, then writes the manifest: wait for both.
    def driving() -> bool:
        holder = sweep_dir.driver_holder() or {}
        return holder.get("pid") == first.pid and sweep_dir.manifest_path.exists()

    while not driving():
        assert first.poll() is None and time.monotonic() < deadline, first.stdout.read()
        time.sleep(0.05)
    manifest = (path / "manifest.json").read_bytes()
    rc, out, err = run_main(argv)
    assert rc == 2 and out == "" and err.count("\n") == 1, out + err
    assert f"is already being run by pid {first.pid} on {socket.gethostname()} since 20" in err
    rc, out, _ = run_main(["--out", str(path), "--dry-run"])
    assert rc == 0 and f"a sweep driver is running on it now (pid {first.pid}" in out
    assert (path / "manifest.json").read_bytes() == manifest
    hold.touch()
    out, _ = first.communicate(timeout=120)
    assert first.returncode == 0, out
    assert "2/2 runs complete, 0 failed, 0 not complete" in out
    assert out.count("started") == 2 and sweep_dir.driver_holder() is None  # released
    rc, out, _ = run_main(["--out", str(path), *fake])
    assert rc == 0 and "all 2 runs complete, nothing to do" in out


def test_a_held_driver_lock_refuses_and_a_released_one_does_not(tmp_path: Path) -> None:
    path = tmp_path / "done"
    sweep_dir = _finished_sweep(path)
    with sweep_dir.driver_lock():
        rc, _, err = run_main(["--out", str(path)])
        assert rc == 2 and f"pid {os.getpid()} on " in err and err.count("\n") == 1
    rc, out, _ = run_main(["--out", str(path)])
    assert rc == 0 and "nothing to do" in out


def test_rerun_with_only_out_keeps_the_launch_options(tmp_path: Path, monkeypatch) -> None:
    fake = _fake_train(tmp_path, monkeypatch)
    path = tmp_path / "s"
    argv = ["--games", ENV, "--algos", "ppo", "--variants", "conv", "--seeds", "2"]
    argv += ["--timesteps", "40", "--checkpoint-freq", "128", "--threads", "1", "--device", "cpu"]
    rc, out, err = run_main([*argv, "--workers", "2", "--out", str(path), *fake])
    assert rc == 0, out + err
    manifest = json.loads((path / "manifest.json").read_text())
    assert manifest["launch_options"] == {
        "checkpoint_freq": 128, "device": "cpu", "threads": 1, "workers": 2,
    }  # fmt: skip
    sweep_dir = SweepDir(path)
    shutil.rmtree(sweep_dir.run_dir(spec("conv", 1)))  # to run again

    rc, out, err = run_main(["--out", str(path), *fake])
    assert rc == 0, out + err
    reused = "launch options from the manifest: --checkpoint-freq 128 --device cpu --workers 2"
    assert reused + " --threads 1" in out and "2 worker(s) x 1 thread(s)" in out
    log = (sweep_dir.run_dir(spec("conv", 1)) / runs.LOG_FILE).read_text()
    assert "--checkpoint-freq 128" in log and "--device cpu" in log and "--threads 1" in log

    shutil.rmtree(sweep_dir.run_dir(spec("conv", 1)))
    rc, out, err = run_main(["--out", str(path), "--checkpoint-freq", "64", *fake])
    assert rc == 0, out + err
    log = (sweep_dir.run_dir(spec("conv", 1)) / runs.LOG_FILE).read_text()
    assert "--checkpoint-freq 64" in log
    stored = json.loads((path / "manifest.json").read_text())["launch_options"]
    assert stored["checkpoint_freq"] == 64 and stored["device"] == "cpu"  # the flag wins


@pytest.mark.parametrize(
    "change, message",
    [
        ({"definition": {"games": 5}}, "definition: games must be a list of names"),
        ({"definition": {"seeds": ["x"]}}, "seeds must be a list of seeds"),
        ({"definition": {"timesteps": "many"}}, "timesteps must be an integer"),
        ({"definition": {"algos": ["sac"]}}, "unknown algorithm or variant 'sac'"),
        ({"definition": {"train_options": {"n_envs": "x"}}}, "n_envs: expected an integer"),
        ({"launch_options": {"workers": 0}}, "workers: must be positive"),
        ({"launch_options": {"nope": 1}}, "launch_options must be a mapping of"),
        ({"definition": None}, "'definition' must be a mapping"),
    ],
)
def test_a_manifest_with_wrong_types_is_exit_2_and_unchanged(tmp_path, change, message) -> None:
    path = tmp_path / "done"
    _finished_sweep(path)
    data = json.loads((path / "manifest.json").read_text())
    for key, value in change.items():
        if isinstance(value, dict) and key == "definition":
            data[key].update(value)
        else:
            data[key] = value
    (path / "manifest.json").write_text(json.dumps(data))
    before = (path / "manifest.json").read_bytes()
    for argv in (["--out", str(path)], ["--out", str(path), "--dry-run"]):
        rc, out, err = run_main(argv)
        assert rc == 2 and err.count("\n") == 1 and message in err, err
        assert str(path / "manifest.json") in err
    assert (path / "manifest.json").read_bytes() == before


# ------------------------------------------------------------------------------- end to end


@pytest.fixture(scope="module")
def tiny_sweep(tmp_path_factory) -> tuple[Path, int, str]:
    """A complete local sweep: 2 variants x 2 seeds of the real train CLI on the pixel env."""
    path = tmp_path_factory.mktemp("sweep") / "tiny"
    rc, out, err = run_main([*TINY, "--out", str(path)])
    return path, rc, out + err


def test_local_sweep_end_to_end(tiny_sweep) -> None:
    path, rc, out = tiny_sweep
    assert rc == 0, out
    sweep_dir = SweepDir(path)
    for variant in ("conv", "coordconv"):
        for seed in (0, 1):
            run_dir = sweep_dir.run_dir(spec(variant, seed))
            result = runs.read_result(run_dir)
            assert (result.variant, result.seed, result.steps_done) == (variant, seed, 256)
            log = (run_dir / runs.LOG_FILE).read_text()
            assert log.startswith("=== coordrl.sweep") and "--threads 1" in log
    assert not list((path / "logs").iterdir())  # every log folded into its run dir
    manifest = json.loads((path / "manifest.json").read_text())
    assert manifest["definition"]["seeds"] == [0, 1]
    assert manifest["definition"]["variants"] == ["conv", "coordconv"]
    assert "done 4/4 running 0 failed 0" in out
    assert "ppo   conv       2/2" in out and "±" in out  # the summary table


def test_every_file_of_a_sweep_has_one_mode(tiny_sweep, wrong_modes) -> None:
    """manifest.json, the locks, the runs' files and train.log: all the mode of a plain open()."""
    path = tiny_sweep[0]
    assert (path / "locks" / "driver.lock").exists() and (path / "manifest.json").exists()
    assert wrong_modes(path) == {}


def test_dry_run_lists_status(tiny_sweep) -> None:
    path, _, _ = tiny_sweep
    before = result_mtimes(path)
    rc, out, _ = run_main(["--out", str(path), "--dry-run"])
    assert rc == 0 and "4 runs: 4 complete" in out
    assert out.count("complete  skip") == 4
    assert result_mtimes(path) == before


def test_manifest_mismatch_is_exit_2_and_changes_nothing(tiny_sweep) -> None:
    path, _, _ = tiny_sweep
    manifest = (path / "manifest.json").read_bytes()
    argv = [*TINY, "--out", str(path)]
    argv[argv.index("--seeds") + 1] = "3"
    rc, _, err = run_main(argv)
    assert rc == 2 and "disagrees" in err and "seeds: [0, 1] (manifest) != [0, 1, 2]" in err
    assert (path / "manifest.json").read_bytes() == manifest


def test_extend_adds_seeds_runs_only_the_new_runs_and_keeps_the_old(tiny_sweep, tmp_path) -> None:
    path = tmp_path / "grown"
    shutil.copytree(tiny_sweep[0], path)
    before = result_mtimes(path)
    argv = [*TINY, "--out", str(path), "--extend"]
    argv[argv.index("--seeds") + 1 : argv.index("--seeds") + 2] = ["0..2"]
    argv[argv.index("--variants") + 1 : argv.index("--variants") + 3] = ["coordconv", "conv"]

    rc, out, _ = run_main(argv)
    assert rc == 0, out
    assert "extended by seeds [2]" in out and "6 runs (4 complete, 2 to run" in out
    manifest = json.loads((path / "manifest.json").read_text())
    assert manifest["definition"]["seeds"] == [0, 1, 2]
    assert manifest["definition"]["variants"] == ["conv", "coordconv"]  # the stored order kept
    assert len(manifest["runs"]) == 6
    after = result_mtimes(path)
    assert {k: after[k] for k in before} == before  # the old runs untouched
    assert sorted(set(after) - set(before)) == [spec("conv", 2).name, spec("coordconv", 2).name]

    rc, out, _ = run_main(["--out", str(path), "--dry-run"])  # the grown sweep is the sweep now
    assert rc == 0 and "6 runs: 6 complete" in out


@pytest.mark.parametrize(
    "change, message",
    [
        (("--timesteps", "512"), "timesteps: 256 (manifest) != 512 (command)"),
        (("--variants", "conv"), "variants: ['coordconv'] of the manifest are not in the command"),
    ],
)
def test_extend_refuses_anything_but_additions(tiny_sweep, change, message) -> None:
    path = tiny_sweep[0]
    manifest = (path / "manifest.json").read_bytes()
    argv = [*TINY, "--out", str(path), "--extend"]
    at = argv.index(change[0])
    argv[at : at + (3 if change[0] == "--variants" else 2)] = list(change)
    rc, _, err = run_main(argv)
    assert rc == 2 and "--extend only adds" in err and message in err, err
    assert (path / "manifest.json").read_bytes() == manifest


def test_failed_run_does_not_stop_others_then_no_retry_then_retry(tiny_sweep, tmp_path) -> None:
    path = tmp_path / "copy"
    shutil.copytree(tiny_sweep[0], path)
    sweep_dir = SweepDir(path)
    broken, redo = sweep_dir.run_dir(spec("conv", 1)), sweep_dir.run_dir(spec("coordconv", 1))
    # A run whose process fails at run time: an interrupted run with a corrupt config.yaml
    # (train --resume refuses it). Another run is new, so both execute in the same invocation.
    (broken / runs.RESULT_FILE).unlink()
    (broken / runs.CONFIG_FILE).write_text("algo: [unclosed\n")
    shutil.rmtree(redo)
    untouched = {k: v for k, v in result_mtimes(path).items() if k.endswith("_s0")}

    rc, out, _ = run_main([*TINY, "--out", str(path)])
    assert rc == 1, out
    error = json.loads((broken / runs.ERROR_FILE).read_text())
    assert error["returncode"] == 2 and "config.yaml" in error["error"]
    assert error["log"] == str(broken / runs.LOG_FILE) and Path(error["log"]).exists()
    assert runs.run_status(redo) == "complete"  # the other run went on
    assert "1 failed run(s)" in out and f"log: {broken / runs.LOG_FILE}" in out
    assert {k: v for k, v in result_mtimes(path).items() if k.endswith("_s0")} == untouched

    error_mtime = (broken / runs.ERROR_FILE).stat().st_mtime_ns
    rc, out, _ = run_main(["--out", str(path), "--no-retry"])
    assert rc == 1 and "0 to run, 1 failed kept" in out
    assert (broken / runs.ERROR_FILE).stat().st_mtime_ns == error_mtime

    rc, out, _ = run_main(["--out", str(path)])
    assert rc == 0, out
    aside = path / "failed" / f"{broken.name}.failed-1"
    assert (aside / runs.ERROR_FILE).exists()  # the failed attempt is kept, not deleted
    assert runs.read_result(broken).steps_done == 256
    assert {k: v for k, v in result_mtimes(path).items() if k.endswith("_s0")} == untouched


def test_a_sweep_resume_runs_no_code_from_a_crafted_checkpoint(tiny_sweep, tmp_path, craft):
    """A checkpoint whose pickled entries would create a file: never unpickled. Newer than a
    good one, it is skipped (the run resumes from the good one); alone, the run fails cleanly."""
    path = tmp_path / "copy"
    shutil.copytree(tiny_sweep[0], path)
    skipped, refused = (SweepDir(path).run_dir(spec("conv", seed)) for seed in (0, 1))
    marker = tmp_path / "pwned"
    for run_dir in (skipped, refused):
        for name in (runs.RESULT_FILE, runs.MODEL_FILE):
            (run_dir / name).unlink()  # interrupted: the sweep resumes it
    good = runs.latest_checkpoint(skipped)
    craft(good, runs.checkpoint_path(skipped, 200), marker, "data")
    for ckpt in runs.checkpoints(refused):
        craft(ckpt, ckpt, marker, "policy.pth")

    rc, out, _ = run_main(["--out", str(path)])
    assert rc == 1, out
    assert not marker.exists()
    log = (skipped / runs.LOG_FILE).read_text()
    assert "warning: skipping a checkpoint" in log and "refused" in log
    assert f"resuming from {good.name}" in log
    assert runs.read_result(skipped).steps_done == 256
    error = runs.read_error(refused)
    assert error["returncode"] == 2 and "policy.pth does not load as tensors" in error["error"]
    assert error["error"].startswith("error: --resume: cannot load checkpoint")


@pytest.mark.skipif(sys.platform != "linux", reason="relies on PR_SET_PDEATHSIG")
def test_sigkill_of_the_sweep_then_resume(tmp_path: Path) -> None:
    path = tmp_path / "killed"
    argv = ["--games", ENV, *TINY_TRAIN, "--variants", "coordconv", "--seeds", "1"]
    argv += ["--timesteps", "1536", "--checkpoint-freq", "128", "--out", str(path)]
    proc = subprocess.Popen(
        [sys.executable, "-m", "coordrl.sweep", *argv],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    sweep_dir = SweepDir(path)
    run_dir = sweep_dir.run_dir(spec("coordconv", 0))
    deadline = time.monotonic() + 120
    while runs.latest_checkpoint(run_dir) is None:
        assert proc.poll() is None and time.monotonic() < deadline, "no checkpoint appeared"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    while sweep_dir.is_busy(spec("coordconv", 0)):  # the run checkpoints on SIGTERM and exits
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert runs.run_status(run_dir) == "interrupted"
    assert not (run_dir / runs.ERROR_FILE).exists()
    assert sweep_dir.log_path(spec("coordconv", 0)).exists()  # left behind by the dead sweep

    rc, out, _ = run_main(["--out", str(path)])
    assert rc == 0, out
    assert "resumed" in out
    assert runs.read_result(run_dir).steps_done >= 1536
    log = (run_dir / runs.LOG_FILE).read_text()
    assert log.count("=== coordrl.sweep") == 2 and "resume: " in log and "--resume" in log


def _children(pid: int, module: str) -> list[int]:
    """The processes whose parent is ``pid`` and whose command line runs ``module`` (Linux)."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            ppid = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
            cmdline = (proc / "cmdline").read_bytes().split(b"\0")
        except (OSError, IndexError, ValueError):
            continue
        if ppid == pid and module.encode() in cmdline:
            found.append(int(proc.name))
    return found


@pytest.mark.skipif(sys.platform != "linux", reason="finds the run's process in /proc")
def test_a_run_killed_by_sigkill_resumes_from_its_checkpoint(tmp_path: Path) -> None:
    """The OOM killer's SIGKILL to a run's process (not the sweep's): the run fails with the
    signal in error.json; the retry resumes from the checkpoint and ends as an uninterrupted
    run would, the killed attempt (log, error.json, TensorBoard files) kept in failed/."""
    path = tmp_path / "oom"
    argv = ["--games", ENV, "--algos", "ppo", "--n-envs", "2", "--set", "n_steps=64"]
    argv += ["batch_size=64", "--eval-episodes", "2", "--eval-freq", "128", "--variants", "conv"]
    argv += ["--seeds", "1", "--timesteps", "1024", "--checkpoint-freq", "128", "--out", str(path)]
    driver = subprocess.Popen(
        [sys.executable, "-m", "coordrl.sweep", *argv],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    run_dir = SweepDir(path).run_dir(spec("conv", 0))
    deadline = time.monotonic() + 120
    try:
        while (ckpt := runs.latest_checkpoint(run_dir)) is None or ckpt.name < "model_256":
            assert driver.poll() is None and time.monotonic() < deadline, "no checkpoint"
            time.sleep(0.02)
        (pid,) = _children(driver.pid, "coordrl.train")
        os.kill(pid, signal.SIGKILL)
        assert driver.wait(timeout=120) == 1  # a failed run
    finally:
        if driver.poll() is None:
            driver.kill()
    error = runs.read_error(run_dir)
    assert (error["returncode"], error["signal"]) == (-9, "SIGKILL")
    assert error["error"].startswith("killed by SIGKILL") and error["tail"]
    assert any(line.startswith("step ") for line in error["tail"])  # the log's last lines
    assert error["tb_files"] == runs.tb_event_files(run_dir) != []
    checkpoint = runs.latest_checkpoint(run_dir)
    steps = int(checkpoint.name.split("_")[1])
    before = [e for e in runs.read_evaluations(run_dir) if e["step"] <= steps]
    assert before

    rc, out, _ = run_main(["--out", str(path)])
    assert rc == 0, out
    assert "resumed" in out
    log = (run_dir / runs.LOG_FILE).read_text()
    assert f"resuming from {checkpoint.name} (step {steps})" in log
    result = runs.read_result(run_dir)
    assert result.steps_done == result.timesteps == 1024
    assert result.curve_steps == list(range(128, 1025, 128))  # each once, none lost
    assert runs.read_evaluations(run_dir)[: len(before)] == before  # kept from the first attempt
    assert not (run_dir / runs.ERROR_FILE).exists()

    aside = path / "failed" / f"{run_dir.name}.failed-1"
    assert runs.read_error(aside)["signal"] == "SIGKILL"
    first = (aside / runs.LOG_FILE).read_text()
    assert first.count("=== coordrl.sweep") == 1 and "new run" in first
    assert sorted(p.name for p in (aside / runs.TB_DIR).iterdir()) == error["tb_files"]
    assert not set(error["tb_files"]) & set(runs.tb_event_files(run_dir))
    assert len(runs.tb_event_files(run_dir)) == 1  # the resumed attempt's only


def test_describe_failure() -> None:
    header = "=== coordrl.sweep 2026-01-01T00:00:00Z start: python -m coordrl.train\n"
    progress = "step 512/1024 (50%), 900 steps/s, ETA 0:00:01\n"
    assert describe_failure(header + progress, -9) == (
        "killed by SIGKILL (e.g. the OOM killer, or a lost node)",
        [progress.strip()],
    )
    assert describe_failure(header + progress, 1) == ("exit code 1", [progress.strip()])
    crash = (
        "Traceback (most recent call last):\n"
        '  File "x.py", line 1, in <module>\n'
        "    boom()\n"
        "RuntimeError: out of cheese\n"
        "error: training failed: RuntimeError: out of cheese\n"
    )
    line, tail = describe_failure(header + progress * 50 + crash, 1)
    assert line == "error: training failed: RuntimeError: out of cheese"
    assert tail == crash.splitlines()  # from the traceback on, no progress lines
    line, tail = describe_failure(header + progress * 50, -15)
    assert line == "killed by SIGTERM" and len(tail) == 30


def test_ray_backend_on_a_local_instance(tmp_path: Path) -> None:
    pytest.importorskip("ray")
    path = tmp_path / "ray"
    argv = ["--games", ENV, *TINY_TRAIN, "--variants", "conv", "--seeds", "2"]
    argv += ["--timesteps", "128", "--backend", "ray", "--out", str(path)]
    proc = run_cli(argv)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for seed in (0, 1):
        run_dir = SweepDir(path).run_dir(spec("conv", seed))
        assert runs.read_result(run_dir).steps_done == 128
        assert (run_dir / runs.LOG_FILE).read_text().startswith("=== coordrl.sweep")
    assert "submitted to Ray" in proc.stdout and "2/2 runs complete" in proc.stdout


def test_a_run_that_just_started_counts_at_the_others_rate(tmp_path: Path) -> None:
    dirs = {n: tmp_path / n for n in ("a", "b")}
    runs.write_progress(dirs["a"], 400, 1000, 100.0)
    runs.write_progress(dirs["b"], 0, 1000, 0.0)  # its first progress.json: no rate yet
    wall = [runs.read_progress(dirs["a"])["time"] + 1]
    clock = [0.0]
    progress = Progress(
        1000, dirs, {"a": "new", "b": "new"}, todo=["a", "b"], stream=io.StringIO(),
        status_every_s=60, refresh_s=2, clock=lambda: clock[0], wall=lambda: wall[0],
    )  # fmt: skip
    progress.started("a", resumed=False)
    progress.started("b", resumed=False)
    clock[0] = 3.0
    progress.tick()
    # left: 600 + 1000 steps at 2 x 100 steps/s
    assert progress.status_line().endswith("| 200 steps/s | ETA 8s")
