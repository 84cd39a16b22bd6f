"""``python -m coordrl.train`` / ``python -m coordrl.evaluate`` end to end.

Atari runs use Pong with a few hundred steps and one evaluation game (a random-policy Pong game
is ~850 agent steps, so Pong evaluations are kept to a minimum); the resume / interrupt /
error-path tests use the tiny pixel env ``coordrl/PointAtDot-v0`` (16-step episodes).
Everything runs in-process (``main(argv)``) except the real-signal test.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from coordrl import evaluate, runs, train, training
from coordrl.runs import read_result
from coordrl.variant import Variant

PIXEL = ["--env", "coordrl/PointAtDot-v0"]
QUIET = ["--no-progress", "--threads", "1"]
FAST = {
    "ppo": ["--set", "n_steps=32", "--set", "batch_size=64", "--set", "n_epochs=1"],
    "a2c": [],
    "dqn": ["--set", "learning_starts=64", "--set", "buffer_size=2000"],
}


def run_main(main, argv, capsys) -> tuple[int, str, str]:
    rc = main(argv)
    out, err = capsys.readouterr()
    return rc, out, err


def assert_usage_error(rc: int, err: str, match: str) -> None:
    assert rc == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert match in lines[0]


def assert_complete(run_dir: Path, target: int) -> runs.RunResult:
    for name in ("config.yaml", "model.zip", "evaluations.json", "result.json"):
        assert (run_dir / name).is_file(), name
    assert any((run_dir / "tb").glob("events.out.tfevents.*"))
    result = read_result(run_dir)
    assert result.steps_done >= target and result.timesteps == target
    assert len(result.final_returns) == len(result.final_lengths) >= 1
    assert runs.run_status(run_dir) == "complete"
    return result


# --------------------------------------------------------------------------- Atari end to end
@pytest.mark.parametrize("algo", ["ppo", "a2c", "dqn"])
def test_pong_train_then_evaluate(algo, tmp_path, capsys):
    argv = [
        "--game",
        "pong",
        "--algo",
        algo,
        "--timesteps",
        "192",
        "--n-envs",
        "2",
        "--eval-episodes",
        "1",
        "--eval-freq",
        "0",
        "--checkpoint-freq",
        "96",
        "--logdir",
        str(tmp_path),
        *FAST[algo],
        *QUIET,
    ]
    rc, out, err = run_main(train.main, argv, capsys)
    assert rc == 0, err
    assert re.search(r"on Pong \(2 x \w+, native backend\), seed 0", out), out
    percents = [int(m) for m in re.findall(r"\((\d+)%\)", out)]
    assert percents and max(percents) <= 100  # status lines stop at the target
    run_dir = tmp_path / f"Pong_{algo}_conv_s0"
    result = assert_complete(run_dir, 192)
    assert (result.game, result.env_id, result.is_atari, result.variant) == (
        "Pong",
        "PongNoFrameskip-v4",
        True,
        "conv",
    )
    assert -21 <= result.final_returns[0] <= 21  # a full, unclipped Pong game
    assert result.curve_steps == [result.steps_done]
    assert runs.latest_checkpoint(run_dir) is not None
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert config["algo"] == algo and config["env_backend"] == "native"
    assert config["hyperparams"] == runs.read_config(run_dir).hyperparams
    if algo == "ppo":
        rc, out, err = run_main(evaluate.main, [str(run_dir), "--episodes", "1"], capsys)
        assert rc == 0, err
        assert "Pong ppo conv seed 0 [native backend]" in out and "±" in out
        assert "over 1 episodes" in out
        # the same model on the other backend's evaluation env (a cross-check of the backends)
        argv = [str(run_dir), "--episodes", "1", "--env-backend", "sb3", "--json"]
        rc, out, err = run_main(evaluate.main, argv, capsys)
        assert rc == 0, err
        data = json.loads(out)
        assert data["env_backend"] == "sb3" and -21 <= data["returns"][0] <= 21


def test_pong_sb3_backend_with_coordconv(tmp_path, capsys):
    argv = [
        "--game",
        "Pong",
        "--env-backend",
        "sb3",
        "--coordconv",
        "--with-r",
        "--timesteps",
        "64",
        "--n-envs",
        "2",
        "--eval-episodes",
        "1",
        "--eval-freq",
        "0",
        "--logdir",
        str(tmp_path),
        *FAST["ppo"],
        *QUIET,
    ]
    rc, out, err = run_main(train.main, argv, capsys)
    assert rc == 0, err
    result = assert_complete(tmp_path / "Pong_ppo_coordconv-r_s0", 64)
    assert result.extra["env_backend"] == "sb3"
    assert set(result.extra["coord_ratios"]) == {"features_extractor.cnn.0"}


@pytest.mark.parametrize(
    "env_id, backend, label",
    [
        ("coordrl/PointAtDot-v0", "native", "2 x DummyVecEnv"),  # the backend changes nothing
        ("coordrl/PointAtDot-v0", "sb3", "2 x DummyVecEnv"),
        ("MinAtar/Breakout-v1", "native", "2 x MinAtarVecEnv, native backend"),
        ("MinAtar/Breakout-v1", "sb3", "2 x DummyVecEnv, sb3 backend"),
    ],
)
def test_the_start_line_says_which_env_is_used(env_id, backend, label):
    from coordrl.envs import make_env

    env, spec = make_env(env_id, 2, 0, backend, True)
    try:
        assert training.env_description(env, spec.family, backend) == label
    finally:
        env.close()


# --------------------------------------------------------------------------- pixel env runs
@pytest.fixture(scope="module")
def done_run(tmp_path_factory) -> Path:
    """A complete PointAtDot PPO run with periodic evaluations and checkpoints."""
    logdir = tmp_path_factory.mktemp("runs")
    argv = [
        *PIXEL,
        "--coordconv",
        "--timesteps",
        "256",
        "--n-envs",
        "2",
        "--eval-episodes",
        "2",
        "--eval-freq",
        "64",
        "--checkpoint-freq",
        "64",
        "--keep-checkpoints",
        "2",
        "--logdir",
        str(logdir),
        *FAST["ppo"],
        *QUIET,
    ]
    assert train.main(argv) == 0
    return logdir / "coordrl-PointAtDot-v0_ppo_coordconv_s0"


def test_complete_run_layout(done_run):
    result = assert_complete(done_run, 256)
    assert result.steps_done == 256 and result.variant == "coordconv"
    assert result.curve_steps == [64, 128, 192, 256]
    assert all(len(r) == 2 for r in result.curve_returns)
    assert result.final_returns == result.curve_returns[-1]
    assert result.final_lengths == [16, 16]
    evals = json.loads((done_run / "evaluations.json").read_text())["evaluations"]
    assert [e["step"] for e in evals] == [64, 128, 192, 256] and evals[-1]["final"]
    ckpts = sorted(p.name for p in (done_run / "checkpoints").glob("*.zip"))
    # --keep-checkpoints 2; PPO checkpoints between rollouts (after the update), so none at 256
    assert ckpts == ["model_128_steps.zip", "model_192_steps.zip"]
    assert result.wall_time_s > 0 and result.fps > 0


def test_every_file_of_a_run_has_one_mode(done_run, wrong_modes):
    """Atomically written files (config, evaluations, progress, result, model and checkpoint
    zips) get the mode of a plain open(), as TensorBoard's files do: 0644 under umask 022."""
    assert {"config.yaml", "model.zip", "result.json"} <= {p.name for p in done_run.iterdir()}
    assert wrong_modes(done_run) == {}


def test_tensorboard_scalars(done_run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(done_run / "tb"))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {
        "rollout/ep_rew_mean",  # real episode returns from info["episode"]
        "rollout/ep_len_mean",
        "time/fps",
        "train/loss",
        "train/learning_rate",
        "eval/mean_return",
        "coordconv/cnn.0_coord_ratio",
    } <= tags
    assert max(e.step for e in events.Scalars("eval/mean_return")) == 256


def test_evaluate_a_checkpoint_and_bad_paths(done_run, tmp_path, capsys):
    ckpt = done_run / "checkpoints" / "model_192_steps.zip"
    rc, out, err = run_main(evaluate.main, [str(ckpt), "--episodes", "3", "--json"], capsys)
    assert rc == 0, err
    data = json.loads(out)
    assert data["steps"] == 192 and len(data["returns"]) == 3
    stray = tmp_path / "model.zip"
    shutil.copy(ckpt, stray)
    rc, out, err = run_main(evaluate.main, [str(stray)], capsys)
    assert_usage_error(rc, err, "no config.yaml beside it")
    rc, out, err = run_main(evaluate.main, [str(tmp_path / "missing")], capsys)
    assert_usage_error(rc, err, "no such run directory or model file")


def _stop_at(monkeypatch, step: int) -> None:
    """Make the run stop as on SIGINT once ``step`` env steps are done (deterministic)."""
    original = training._RunCallback._on_step

    def on_step(self):
        if self.model.num_timesteps >= step:
            self.stop.requested = True
        return original(self)

    monkeypatch.setattr(training._RunCallback, "_on_step", on_step)


@pytest.mark.parametrize("algo", ["ppo", "a2c", "dqn"])
def test_interrupt_then_resume_reaches_the_target(algo, tmp_path, monkeypatch, capsys):
    argv = [
        *PIXEL,
        "--algo",
        algo,
        "--timesteps",
        "256",
        "--n-envs",
        "2",
        "--eval-episodes",
        "2",
        "--eval-freq",
        "64",
        "--logdir",
        str(tmp_path),
        *FAST[algo],
        *QUIET,
    ]
    run_dir = tmp_path / f"coordrl-PointAtDot-v0_{algo}_conv_s0"
    with monkeypatch.context() as m:
        _stop_at(m, 150)
        rc, out, err = run_main(train.main, argv, capsys)
    assert rc == 130, err
    assert "Traceback" not in err and "--resume" in err
    assert runs.run_status(run_dir) == "interrupted"
    assert not (run_dir / "model.zip").exists()
    ckpt = runs.latest_checkpoint(run_dir)
    steps = int(ckpt.name.split("_")[1])
    assert 128 <= steps <= 152  # on-policy: rolled back to the last trained rollout
    evals = json.loads((run_dir / "evaluations.json").read_text())["evaluations"]
    assert len(evals) == 2 and all(e["step"] <= steps for e in evals)

    rc, out, err = run_main(train.main, ["--resume", str(run_dir), *QUIET], capsys)
    assert rc == 0, err
    assert f"resuming from {ckpt.name}" in out
    result = assert_complete(run_dir, 256)
    assert result.curve_steps[:2] == [e["step"] for e in evals]  # kept from before the stop
    assert result.steps_done <= 256 + 64
    if algo in ("ppo", "a2c"):  # exactly where an uninterrupted run ends (whole rollouts)
        assert result.steps_done == {"ppo": 256, "a2c": 260}[algo]
    # TensorBoard keeps one directory; the resumed session adds an event file to it.
    assert len(list((run_dir / "tb").glob("events.out.tfevents.*"))) == 2


def test_resume_without_checkpoint_restarts_from_zero(done_run, tmp_path, capsys):
    run_dir = tmp_path / "fresh"
    run_dir.mkdir()
    shutil.copy(done_run / "config.yaml", run_dir / "config.yaml")
    rc, out, err = run_main(
        train.main, ["--resume", str(run_dir), "--eval-freq", "64", *QUIET], capsys
    )
    assert rc == 0, err
    assert "restarting from step 0" in out
    assert assert_complete(run_dir, 256).steps_done == 256


def test_sigint_saves_a_checkpoint_and_exits_130(tmp_path):
    """A real SIGINT to a real process: checkpoint, exit code 130, no traceback."""
    argv = [
        sys.executable,
        "-m",
        "coordrl.train",
        *PIXEL,
        "--timesteps",
        "100000",
        "--n-envs",
        "2",
        "--eval-freq",
        "0",
        "--checkpoint-freq",
        "32",
        "--logdir",
        str(tmp_path),
        *FAST["ppo"],
        *QUIET,
    ]
    run_dir = tmp_path / "coordrl-PointAtDot-v0_ppo_conv_s0"
    proc = subprocess.Popen(
        argv,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        deadline = time.monotonic() + 120
        while runs.latest_checkpoint(run_dir) is None:
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "checkpoint" in err
    assert runs.run_status(run_dir) == "interrupted"
    config = runs.read_config(run_dir)
    assert runs.latest_checkpoint(run_dir) is not None and config.timesteps == 100000


# --------------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    "argv, match",
    [
        (["--game", "Pongg"], "did you mean 'Pong'"),
        (["--game", "Pong", "--algo", "sac"], "invalid choice: 'sac'"),
        (["--game", "Pong", "--set", "foo=1"], "unknown hyperparameter 'foo' for PPO; valid keys"),
        (["--game", "Pong", "--algo", "dqn", "--set", "n_steps=x"], "n_steps must be an integer"),
        (["--game", "Pong", "--timesteps", "0"], "--timesteps: must be positive"),
        (["--game", "Pong", "--timesteps", "-5"], "--timesteps: must be positive"),
        (["--game", "Pong", "--timesteps", "lots"], "expected a number of steps"),
        (["--game", "Pong", "--coord-layers", "5"], "out of range"),
        (["--game", "Pong", "--variant", "coordconv", "--with-r"], "cannot be combined"),
        (["--timesteps", "10"], "say what to train"),
        (["--game", "Pong", "--env", "Pong"], "not allowed with argument"),
        (["--env", "CartPole-v1", "--timesteps", "10"], "are not images"),
    ],
)
def test_bad_input_is_one_error_line_and_exit_2(argv, match, tmp_path, capsys):
    rc, out, err = run_main(train.main, [*argv, "--logdir", str(tmp_path)], capsys)
    assert_usage_error(rc, err, match)
    assert list(tmp_path.iterdir()) == []  # nothing written


def test_device_cuda_without_cuda_is_bad_input(tmp_path, capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    rc, out, err = run_main(
        train.main, ["--game", "Pong", "--device", "cuda", "--logdir", str(tmp_path)], capsys
    )
    assert_usage_error(rc, err, "CUDA is not available")
    assert list(tmp_path.iterdir()) == []


def _snapshot(run_dir: Path) -> dict[str, tuple[bytes, int]]:
    return {
        str(p.relative_to(run_dir)): (p.read_bytes(), p.stat().st_mtime_ns)
        for p in sorted(run_dir.rglob("*"))
        if p.is_file()
    }


def test_existing_or_complete_or_corrupt_runs_are_never_overwritten(done_run, tmp_path, capsys):
    before = _snapshot(done_run)
    same = [*PIXEL, "--coordconv", "--logdir", str(done_run.parent)]
    rc, _, err = run_main(train.main, same, capsys)
    assert_usage_error(rc, err, "already exists; continue it with --resume")
    rc, _, err = run_main(train.main, ["--resume", str(done_run)], capsys)
    assert_usage_error(rc, err, "already complete")
    assert _snapshot(done_run) == before

    rc, _, err = run_main(train.main, ["--resume", str(tmp_path / "nope")], capsys)
    assert_usage_error(rc, err, "no such run directory")
    rc, _, err = run_main(train.main, ["--resume", str(tmp_path)], capsys)
    assert_usage_error(rc, err, "no config.yaml")

    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    (corrupt / "config.yaml").write_text("game: [unclosed\n")
    rc, _, err = run_main(train.main, ["--resume", str(corrupt)], capsys)
    assert_usage_error(rc, err, "not valid YAML")
    (corrupt / "config.yaml").write_text("game: Pong\n")
    rc, _, err = run_main(train.main, ["--resume", str(corrupt)], capsys)
    assert_usage_error(rc, err, "does not describe a run")
    assert (corrupt / "config.yaml").read_text() == "game: Pong\n"
    assert sorted(p.name for p in corrupt.iterdir()) == ["config.yaml"]

    interrupted = tmp_path / "interrupted"
    shutil.copytree(done_run, interrupted)
    (interrupted / "result.json").unlink()
    rc, _, err = run_main(train.main, ["--resume", str(interrupted), "--seed", "3"], capsys)
    assert_usage_error(rc, err, "seed=3 differs from the run's saved seed=0")
    for ckpt in runs.checkpoints(interrupted):  # none loads (one that does is used instead)
        ckpt.write_bytes(b"not a zip")
    before = _snapshot(interrupted)
    rc, _, err = run_main(train.main, ["--resume", str(interrupted)], capsys)
    assert_usage_error(rc, err, "cannot load checkpoint")
    assert "(and 1 older that do not load either); move checkpoints/ away" in err
    assert _snapshot(interrupted) == before


@pytest.mark.parametrize(
    "flags, name",
    [
        ([], "conv"),
        (["--coordconv"], "coordconv"),
        (["--coordconv", "--with-r"], "coordconv-r"),
        (["--coord-layers", "0,1,2"], "coordconv-all"),
        (["--coord-layers", "2,0"], "coordconv-L0-2"),
        (["--coord-layers", "none"], "conv"),
        (["--variant", "coordconv-L0-2"], "coordconv-L0-2"),
        (["--variant", "coordconv-all-r"], "coordconv-all-r"),
    ],
)
def test_variant_flags_name_the_run(flags, name):
    args = train.build_parser().parse_args(["--game", "Pong", *flags])
    variant = train._variant_from_args(args) or Variant()
    assert variant.name == name
    assert Variant.from_name(name) == variant
