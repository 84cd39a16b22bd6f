"""Loading models and checkpoints without unpickling (:mod:`coordrl.checkpoint`), and what a
checkpoint restores: the same actions as SB3's own ``load`` for a clean file, nothing run from a
crafted one (through ``evaluate``, ``train --resume``), the RNG states.

Runs are tiny PointAtDot runs trained in-process (192 steps); the CLIs run in-process too
(``main(argv)``), as a user's command would: a marker file created by unpickling would appear
there just the same.
"""

from __future__ import annotations

import json
import random
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch as th
from stable_baselines3 import A2C, DQN, PPO

from coordrl import evaluate, runs, train, training
from coordrl._cli import UsageError
from coordrl.checkpoint import CheckpointError, RngState, load_checkpoint, load_model

PIXEL = ["--env", "coordrl/PointAtDot-v0"]
QUIET = ["--no-progress", "--threads", "1"]
FAST = {
    "ppo": ["--set", "n_steps=32", "batch_size=64", "n_epochs=1"],
    "a2c": [],
    "dqn": ["--set", "learning_starts=32", "buffer_size=500", "exploration_fraction=0.5"],
}
SB3 = {"ppo": PPO, "a2c": A2C, "dqn": DQN}


def _train(logdir: Path, algo: str, steps: int = 192) -> Path:
    argv = [*PIXEL, "--algo", algo, "--timesteps", str(steps), "--n-envs", "2"]
    argv += ["--eval-episodes", "2", "--eval-freq", "64", "--checkpoint-freq", "64"]
    argv += ["--keep-checkpoints", "0", "--logdir", str(logdir), *FAST[algo], *QUIET]
    assert train.main(argv) == 0
    return logdir / f"coordrl-PointAtDot-v0_{algo}_conv_s0"


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> dict[str, Path]:
    """A complete 192-step run per algorithm (PPO: checkpoints at 64 and 128)."""
    logdir = tmp_path_factory.mktemp("runs")
    return {algo: _train(logdir, algo) for algo in ("ppo", "a2c", "dqn")}


def _cli(main, argv: list[str], capsys) -> tuple[int, str, str]:
    rc = main(argv)
    out, err = capsys.readouterr()
    return rc, out, err


def _one_error_line(rc: int, err: str, match: str) -> None:
    assert rc == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert match in lines[0], lines[0]


def _observations(config: runs.RunConfig, n: int = 4) -> np.ndarray:
    env = training.make_eval_env(config, n)
    try:
        obs = [env.reset()]
        for _ in range(3):
            obs.append(env.step(np.array([env.action_space.sample() for _ in range(n)]))[0])
    finally:
        env.close()
    return np.concatenate(obs)


def _actions(model, obs: np.ndarray, deterministic: bool) -> np.ndarray:
    random.seed(1)
    np.random.seed(1)
    th.manual_seed(1)
    model.action_space.seed(1)
    return model.predict(obs, deterministic=deterministic)[0]


# ------------------------------------------------------------------------------ clean files
@pytest.mark.parametrize("algo", ["ppo", "a2c", "dqn"])
def test_a_clean_model_acts_as_sb3_load_makes_it_act(trained, algo):
    run_dir = trained[algo]
    config = runs.read_config(run_dir)
    env = training.make_eval_env(config, 2)
    try:
        ours = load_model(config, run_dir / runs.MODEL_FILE, th.device("cpu"), env)
    finally:
        env.close()
    theirs = SB3[algo].load(run_dir / runs.MODEL_FILE, device="cpu")
    assert ours.num_timesteps == theirs.num_timesteps >= 192  # A2C: whole 10-step rollouts
    assert ours._n_updates == theirs._n_updates > 0
    if algo == "dqn":
        assert ours.exploration_rate == theirs.exploration_rate < 1.0
    for key, value in theirs.policy.state_dict().items():
        assert th.equal(ours.policy.state_dict()[key], value), key
    obs = _observations(config)
    for deterministic in (True, False):
        assert np.array_equal(
            _actions(ours, obs, deterministic), _actions(theirs, obs, deterministic)
        )


def test_a_checkpoint_restores_counters_optimizer_and_episode_window(trained):
    run_dir = trained["ppo"]
    config = runs.read_config(run_dir)
    ckpt = runs.checkpoint_path(run_dir, 64)
    env, _ = training.make_env(config.game, config.n_envs, config.seed, training=True)
    try:
        ours, rng = load_checkpoint(config, ckpt, th.device("cpu"), env)
    finally:
        env.close()
    theirs = PPO.load(ckpt, device="cpu")
    assert ours.num_timesteps == theirs.num_timesteps == 64
    assert ours._n_updates == theirs._n_updates
    assert list(ours.ep_info_buffer) == [
        {k: float(v) for k, v in i.items()} for i in theirs.ep_info_buffer
    ]
    ours_opt, theirs_opt = ours.policy.optimizer.state_dict(), theirs.policy.optimizer.state_dict()
    assert ours_opt["param_groups"] == theirs_opt["param_groups"]
    for k, state in theirs_opt["state"].items():
        for name, value in state.items():
            assert th.equal(th.as_tensor(ours_opt["state"][k][name]), th.as_tensor(value))
    assert isinstance(rng, RngState)


# ------------------------------------------------------------------------------ crafted files
@pytest.mark.parametrize("where", ["data", "policy_class", "policy.pth", "pytorch_variables.pth"])
def test_a_crafted_model_runs_no_code_through_evaluate(trained, craft, tmp_path, where, capsys):
    run_dir = tmp_path / "run"
    shutil.copytree(trained["ppo"], run_dir)
    marker = tmp_path / "pwned"
    craft(trained["ppo"] / runs.MODEL_FILE, run_dir / runs.MODEL_FILE, marker, where)
    rc, out, err = _cli(evaluate.main, [str(run_dir), "--episodes", "1"], capsys)
    if where == "policy_class":  # a pickled entry coordrl rebuilds from config.yaml: unread
        assert rc == 0, err
        assert "coordrl/PointAtDot-v0 ppo conv seed 0" in out
    else:
        match = {"data": "refused", "policy.pth": "policy.pth does not load as tensors"}
        _one_error_line(rc, err, match.get(where, "pytorch_variables.pth does not load"))
        assert str(run_dir / runs.MODEL_FILE) in err
    assert not marker.exists()


def test_the_crafted_file_does_run_code_under_sb3_load(trained, craft, tmp_path):
    """The check of the test above: SB3's own ``load`` creates the marker (in a separate
    process, which the unpickled objects cannot disturb)."""
    marker = tmp_path / "pwned"
    path = craft(trained["ppo"] / runs.MODEL_FILE, tmp_path / "m.zip", marker, "policy_class")
    code = "import sys, stable_baselines3 as sb3\ntry: sb3.PPO.load(sys.argv[1])\nexcept: pass"
    subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, timeout=120)
    assert marker.exists()


@pytest.mark.parametrize("where", ["data", "policy.pth"])
def test_a_crafted_checkpoint_runs_no_code_through_train_resume(
    trained, craft, tmp_path, where, capsys
):
    run_dir = tmp_path / "run"
    shutil.copytree(trained["ppo"], run_dir)
    for name in (runs.RESULT_FILE, runs.MODEL_FILE):
        (run_dir / name).unlink()
    marker = tmp_path / "pwned"
    for ckpt in runs.checkpoints(run_dir):
        craft(trained["ppo"] / runs.CHECKPOINT_DIR / ckpt.name, ckpt, marker, where)
    before = {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()}
    rc, _, err = _cli(train.main, ["--resume", str(run_dir), *QUIET], capsys)
    _one_error_line(rc, err, "--resume: cannot load checkpoint")
    assert "move checkpoints/ away to restart from step 0" in err
    assert not marker.exists()
    assert {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()} == before


def test_resume_skips_a_checkpoint_that_does_not_load(trained, craft, tmp_path, capsys):
    run_dir = tmp_path / "run"
    shutil.copytree(trained["ppo"], run_dir)
    for name in (runs.RESULT_FILE, runs.MODEL_FILE):
        (run_dir / name).unlink()
    marker = tmp_path / "pwned"
    newest = runs.latest_checkpoint(run_dir)
    assert newest.name == "model_128_steps.zip"
    craft(newest, runs.checkpoint_path(run_dir, 150), marker, "data")  # newest: refused
    newest.write_bytes(newest.read_bytes()[:1000])  # next: truncated
    assert train.main(["--resume", str(run_dir), *QUIET]) == 0
    out, err = capsys.readouterr()
    assert "resuming from model_64_steps.zip (step 64)" in out
    warnings = [ln for ln in err.splitlines() if ln.startswith("warning: skipping a checkpoint")]
    assert len(warnings) == 2 and "refused" in warnings[0] and "not a readable zip" in warnings[1]
    assert runs.read_result(run_dir).steps_done == 192
    assert not marker.exists()


@pytest.mark.parametrize(
    "content, match",
    [
        (b"", "not a readable zip"),
        (b"not a zip at all", "not a readable zip"),
        ("empty", "an empty zip"),
        ("no-policy", "no policy.pth"),
        ("extra", "unexpected entries ['evil.py']"),
        ("other-net", "do not fit the network"),
        ("bad-counter", "num_timesteps must be a finite number >= 0"),
    ],
)
def test_files_that_do_not_load_are_refused_naming_the_file(trained, tmp_path, content, match):
    src = trained["ppo"] / runs.MODEL_FILE
    path = tmp_path / "model.zip"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        with zipfile.ZipFile(src) as archive:
            entries = {n: archive.read(n) for n in archive.namelist()}
        if content == "other-net":  # a coordconv network's weights for a conv run
            with zipfile.ZipFile(_coordconv_model(tmp_path)) as other:
                entries = {n: other.read(n) for n in entries}
        elif content == "bad-counter":
            data = json.loads(entries["data"])
            data["num_timesteps"] = "lots"
            entries["data"] = json.dumps(data).encode()
        elif content == "empty":
            entries = {}
        elif content == "no-policy":
            del entries["policy.pth"]
        else:
            entries["evil.py"] = b"print('hi')"
        with zipfile.ZipFile(path, "w") as archive:
            for name, value in entries.items():
                archive.writestr(name, value)
    config = runs.read_config(trained["ppo"])
    env = training.make_eval_env(config, 1)
    try:
        with pytest.raises(CheckpointError, match="cannot load model .*model.zip") as info:
            load_model(config, path, th.device("cpu"), env)
    finally:
        env.close()
    assert match in str(info.value) and isinstance(info.value, UsageError)


def _coordconv_model(tmp_path: Path) -> Path:
    argv = [*PIXEL, "--coordconv", "--timesteps", "64", "--n-envs", "2", "--eval-freq", "0"]
    argv += ["--eval-episodes", "1", "--logdir", str(tmp_path / "cc"), *FAST["ppo"], *QUIET]
    assert train.main(argv) == 0
    return tmp_path / "cc" / "coordrl-PointAtDot-v0_ppo_coordconv_s0" / runs.MODEL_FILE


# ------------------------------------------------------------------------------ RNG states
def test_rng_state_round_trips_through_json():
    class Model:
        action_space = __import__("gymnasium").spaces.Discrete(5)

    model = Model()
    model.action_space.seed(3)
    random.seed(1), np.random.seed(2), th.manual_seed(3)
    state = RngState.from_json(json.loads(json.dumps(RngState.capture(model).to_json())))
    draws = (random.random(), np.random.rand(), th.rand(1).item(), model.action_space.sample())
    random.seed(9), np.random.seed(9), th.manual_seed(9), model.action_space.seed(9)
    assert state.restore(model) == ["python", "numpy", "torch", "action space"]
    assert (random.random(), np.random.rand(), th.rand(1).item(), model.action_space.sample()) == (
        draws
    )
    for bad in ({}, {**state.to_json(), "torch": "AAAA"}, {**state.to_json(), "numpy": 1}):
        with pytest.raises(ValueError):
            RngState.from_json(bad)


def test_resume_restores_the_rng_states_of_the_checkpoint(trained, tmp_path, monkeypatch):
    run_dir = tmp_path / "run"
    shutil.copytree(trained["dqn"], run_dir)
    for name in (runs.RESULT_FILE, runs.MODEL_FILE):
        (run_dir / name).unlink()
    ckpt = runs.latest_checkpoint(run_dir)
    with zipfile.ZipFile(ckpt) as archive:
        saved = RngState.from_json(json.loads(archive.read("data"))["coordrl_rng"])
    seen = {}

    def learn(self, run_dir, config, model, *args):
        seen["numpy"] = np.random.get_state(legacy=True)
        seen["torch"] = th.get_rng_state()
        seen["space"] = model.action_space.np_random.bit_generator.state
        return 0

    monkeypatch.setattr(training, "_learn_and_finish", lambda *a: learn(None, *a))
    assert train.main(["--resume", str(run_dir), *QUIET]) == 0
    assert np.array_equal(seen["numpy"][1], saved.numpy[1]) and seen["numpy"][2] == saved.numpy[2]
    assert th.equal(seen["torch"], saved.torch)
    assert seen["space"] == saved.action_space


def test_resuming_the_same_checkpoint_twice_gives_the_same_run(trained, tmp_path):
    results = []
    for k in range(2):
        run_dir = tmp_path / f"run{k}"
        shutil.copytree(trained["ppo"], run_dir)
        for name in (runs.RESULT_FILE, runs.MODEL_FILE):
            (run_dir / name).unlink()
        assert train.main(["--resume", str(run_dir), *QUIET]) == 0
        results.append(runs.read_result(run_dir))
    a, b = results
    assert a.curve_steps == b.curve_steps and a.curve_returns == b.curve_returns
    assert a.final_returns == b.final_returns and a.steps_done == b.steps_done == 192


def _scalar_steps(tb_dir: Path) -> dict[str, list[int]]:
    """Per scalar tag, the steps TensorBoard shows (after its purges)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(tb_dir))
    events.Reload()
    return {tag: [e.step for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


def test_a_resumed_session_replaces_what_tensorboard_had_after_the_checkpoint(trained, tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(trained["ppo"], run_dir)
    for name in (runs.RESULT_FILE, runs.MODEL_FILE):
        (run_dir / name).unlink()
    runs.checkpoint_path(run_dir, 128).unlink()  # as if killed after step 128: resume from 64
    assert train.main(["--resume", str(run_dir), *QUIET]) == 0
    assert len(list((run_dir / runs.TB_DIR).glob("events.out.tfevents.*"))) == 2
    resumed = _scalar_steps(run_dir / runs.TB_DIR)
    assert resumed["time/fps"] == [64, 128, 192]  # steps 128 and 192 not drawn twice
    uninterrupted = _scalar_steps(trained["ppo"] / runs.TB_DIR)
    assert resumed.keys() == uninterrupted.keys()
    for tag, steps in uninterrupted.items():
        # SB3 logs an update's train/* values with the next rollout (at 128 for the update
        # before the checkpoint at 64): those were in the killed session's log only
        expected = [s for s in steps if s != 128] if tag.startswith("train/") else steps
        assert resumed[tag] == expected, tag
