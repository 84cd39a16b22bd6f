"""Tests of ``python -m coordrl.sweep``: validation, planning and, end to end with the real
``coordrl.train`` CLI on the pixel env, a local sweep, failure/retry, kill/resume and Ray."""

from __future__ import annotations

import contextlib
import io
import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from coordrl import runs, sweep
from coordrl.sweep import RunSpec, SweepDir, SweepError

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
    assert sweep.parse_seeds(value, explicit=explicit) == seeds


@pytest.mark.parametrize("value", [["0"], ["-2"], ["1", "1"], ["x"], ["5..3"], [], True])
def test_parse_seeds_rejects(value) -> None:
    with pytest.raises(SweepError):
        sweep.parse_seeds(value)


def test_parse_timesteps() -> None:
    assert sweep.parse_timesteps("2e6") == 2_000_000
    assert sweep.parse_timesteps("2_000") == 2000
    assert sweep.parse_timesteps(1e5) == 100_000
    for bad in ("0", "-5", "1.5", "many", "inf"):
        with pytest.raises(SweepError):
            sweep.parse_timesteps(bad)


def test_overrides_scoped_to_an_algorithm() -> None:
    overrides = sweep.parse_overrides(["n_steps=64", "ppo:n_epochs=2"])
    assert sweep.overrides_for("ppo", overrides) == ["n_steps=64", "n_epochs=2"]
    assert sweep.overrides_for("a2c", overrides) == ["n_steps=64"]
    nested = sweep.parse_overrides({"gamma": 0.5, "ppo": {"n_epochs": 2}, "lr": "lin_1e-3"})
    assert nested == {"gamma": "0.5", "ppo:n_epochs": "2", "lr": "lin_1e-3"}


def test_default_workers() -> None:
    assert sweep.default_workers(1, 0) == 1
    assert sweep.default_workers(2, 0) == 2
    assert sweep.default_workers(16, 0) == 8
    assert sweep.default_workers(4, 4) == 4


class _StubAttempt:
    """Stands in for :class:`RunAttempt` (no process) to test slot -> GPU assignment."""

    def __init__(self, name: str) -> None:
        self.spec = RunSpec(ENV, "ppo", "conv", int(name))
        self.env: dict[str, str] = {}
        self.resumed = False
        self.polls = 0

    def start(self) -> bool:
        return True

    def poll(self) -> int | None:
        self.polls += 1
        return 0 if self.polls > 1 else None

    def finish(self, rc: int) -> sweep.RunOutcome:
        return sweep.RunOutcome(self.spec.name, "complete", rc)


def test_local_runs_are_spread_over_gpus() -> None:
    attempts = [_StubAttempt(str(i)) for i in range(4)]
    progress = sweep.Progress(4, 0, 0, 2, stream=io.StringIO())
    progress.pending = 4
    outcomes, stopped = sweep.run_local(attempts, 2, ["0", "1"], progress)
    assert not stopped and [o.status for o in outcomes] == ["complete"] * 4
    assert [a.env["CUDA_VISIBLE_DEVICES"] for a in attempts] == ["0", "1", "0", "1"]


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
