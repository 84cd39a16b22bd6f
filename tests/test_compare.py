"""End to end: synthetic sweep directories -> ``python -m coordrl.compare`` -> report dir."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from coordrl.compare import main
from coordrl.files import atomic_write_json
from coordrl.runs import (
    CONFIG_FILE,
    ERROR_FILE,
    RESULT_FILE,
    RunConfig,
    RunResult,
    parse_run_name,
    run_name,
    write_config,
    write_result,
)
from coordrl.sweeps.results import collect_runs

STEPS = [0, 1000, 2000, 3000]


def _write_run(
    root: Path,
    game: str,
    variant: str,
    seed: int,
    final_mean: float,
    is_atari: bool = True,
    timesteps: int = 3000,
    algo: str = "ppo",
    curve: bool = True,
) -> Path:
    run_dir = root / "runs" / run_name(game, algo, variant, seed)
    run_dir.mkdir(parents=True)
    (run_dir / CONFIG_FILE).write_text(f"game: {game}\n")
    rng = np.random.default_rng(seed)
    returns = [[final_mean * k / 3 + float(rng.normal(0, 0.1)) for _ in range(3)] for k in range(4)]
    returns[-1] = [final_mean - 0.1, final_mean, final_mean + 0.1]
    write_result(
        run_dir,
        RunResult(
            game=game,
            env_id=game,
            is_atari=is_atari,
            algo=algo,
            variant=variant,
            seed=seed,
            timesteps=timesteps,
            steps_done=timesteps,
            final_returns=returns[-1],
            curve_steps=STEPS if curve else [],
            curve_returns=returns if curve else [],
        ),
    )
    return run_dir


def _make_sweep(root: Path) -> None:
    """Pong: coordconv clearly better (3 seeds each). Breakout: identical scores (no
    difference). PointAtDot: 1 seed of each (no test). Plus a failed, an interrupted and a
    missing run."""
    expected = []
    offsets = [0.0, 0.5, 1.0]
    for seed, off in enumerate(offsets):
        _write_run(root, "Pong", "conv", seed, -20.0 + off)
        _write_run(root, "Pong", "coordconv", seed, 0.0 + off)
        _write_run(root, "Breakout", "conv", seed, 5.0 + off)
        _write_run(root, "Breakout", "coordconv", seed, 5.0 + offsets[::-1][seed])
        expected += [("Pong", v, seed) for v in ("conv", "coordconv")]
        expected += [("Breakout", v, seed) for v in ("conv", "coordconv")]
    _write_run(root, "coordrl/PointAtDot-v0", "conv", 0, 0.2, is_atari=False, timesteps=2000)
    _write_run(root, "coordrl/PointAtDot-v0", "coordconv", 0, 0.4, is_atari=False)
    expected += [("coordrl/PointAtDot-v0", v, 0) for v in ("conv", "coordconv")]
    failed = root / "runs" / run_name("Pong", "ppo", "conv", 3)
    failed.mkdir()
    (failed / CONFIG_FILE).write_text("game: Pong\n")
    atomic_write_json(failed / ERROR_FILE, {"error": "RuntimeError: CUDA out of memory"})
    earlier = root / "failed" / (run_name("Pong", "ppo", "conv", 0) + ".failed-1")
    earlier.mkdir(parents=True)  # an earlier attempt moved aside by the sweep: not a run
    atomic_write_json(earlier / ERROR_FILE, {"error": "killed"})
    interrupted = root / "runs" / run_name("Pong", "ppo", "coordconv", 3)
    interrupted.mkdir()
    (interrupted / CONFIG_FILE).write_text("game: Pong\n")
    expected += [("Pong", "conv", 3), ("Pong", "coordconv", 3), ("Breakout", "conv", 7)]
    atomic_write_json(
        root / "manifest.json",
        {"runs": [run_name(g, "ppo", v, s) for g, v, s in expected]},
    )


def _read_csv(path: Path) -> list[dict[str, str]]:
    with open(path) as f:
        return list(csv.DictReader(f))


def test_parse_run_name():
    assert parse_run_name("Pong_ppo_coordconv_s0") == ("Pong", "ppo", "coordconv", 0)
    assert parse_run_name("coordrl-PointAtDot-v0_a2c_coordconv-L0-2-r_s12") == (
        "coordrl-PointAtDot-v0",
        "a2c",
        "coordconv-L0-2-r",
        12,
    )
    assert parse_run_name("notes") is None


def test_end_to_end_report(tmp_path, capsys, wrong_modes):
    sweep = tmp_path / "sweep"
    _make_sweep(sweep)
    rc = main([str(sweep), "--bootstrap", "200", "--seed", "1"])
    out = capsys.readouterr().out
    assert rc == 0
    report = sweep / "report"
    expected = [
        "report.md",
        "runs.csv",
        "summary.csv",
        "comparison.csv",
        "auc_comparison.csv",
        "aggregates.csv",
        "probability_of_improvement.csv",
        "curves_ppo.png",
        "aggregates_ppo.png",
        "probability_of_improvement_ppo.png",
        "performance_profile_ppo.png",
    ]
    for name in expected:
        assert (report / name).stat().st_size > 0, name
    for name in expected:
        if name.endswith(".png"):
            assert (report / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    comparison = {r["game"]: r for r in _read_csv(report / "comparison.csv")}
    assert set(comparison) == {"Pong", "Breakout", "coordrl/PointAtDot-v0"}
    assert comparison["Pong"]["verdict"] == "better"
    assert float(comparison["Pong"]["diff"]) == pytest.approx(20.0)
    assert comparison["Breakout"]["verdict"] == "no significant difference"
    assert comparison["coordrl/PointAtDot-v0"]["verdict"] == "no test"
    assert "fewer than 2 seeds" in comparison["coordrl/PointAtDot-v0"]["note"]
    # Holm over the two tested games: adjusted = min(1, 2 * smallest p) for Pong.
    assert float(comparison["Pong"]["welch_p_holm"]) == pytest.approx(
        min(1.0, 2 * float(comparison["Pong"]["welch_p"]))
    )
    auc = {r["game"]: r for r in _read_csv(report / "auc_comparison.csv")}
    assert auc["Pong"]["verdict"] == "better"

    runs = {r["run"]: r["status"] for r in _read_csv(report / "runs.csv")}
    assert runs["Pong_ppo_conv_s3"] == "failed"
    assert runs["Pong_ppo_coordconv_s3"] == "interrupted"
    assert runs["Breakout_ppo_conv_s7"] == "missing"
    assert sum(s == "complete" for s in runs.values()) == 14

    aggregates = _read_csv(report / "aggregates.csv")
    assert {(a["variant"], a["metric"]) for a in aggregates} == {
        (v, m) for v in ("conv", "coordconv") for m in ("IQM", "Median", "Mean", "Optimality gap")
    }
    # PointAtDot has 1 seed of each: left out of the aggregate, which keeps 3 seeds per game
    assert all(a["n_runs_per_game"] == "3" and a["n_games"] == "2" for a in aggregates)
    poi = _read_csv(report / "probability_of_improvement.csv")
    assert [(p["x"], p["y"]) for p in poi] == [("coordconv", "conv")]
    assert 0 < float(poi[0]["permutation_p"]) <= 1 and poi[0]["permutation_exact"] == "True"

    md = (report / "report.md").read_text()
    for text in (
        "Pong_ppo_conv_s3",
        "CUDA out of memory",
        "Pong_ppo_coordconv_s3",
        "Breakout_ppo_conv_s7",
        "fewer than 2 seeds",
        "different target timesteps",
        "min-max",
        "human-normalised",
        "![curves_ppo](curves_ppo.png)",
        "1 earlier failed attempt(s)",
        "left out of the aggregate metrics",
    ):
        assert text in md, text
    assert "better" in out and "Pong" in out and "3 run(s) excluded" in out
    assert wrong_modes(report) == {}  # report.md, the CSVs and the PNGs


def _error_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert err.startswith("error: ")
    return err


def test_corrupt_result_exits_2_naming_the_file(tmp_path, capsys):
    sweep = tmp_path / "sweep"
    _write_run(sweep, "Pong", "conv", 0, 1.0)
    bad = _write_run(sweep, "Pong", "coordconv", 0, 1.0) / RESULT_FILE
    bad.write_text('{"game": "Pong", "final_ret')
    assert main([str(sweep)]) == 2
    assert str(bad) in _error_line(capsys)
    assert not (sweep / "report").exists()


def test_result_with_missing_fields_exits_2(tmp_path, capsys):
    sweep = tmp_path / "sweep"
    _write_run(sweep, "Pong", "conv", 0, 1.0)
    bad = _write_run(sweep, "Pong", "coordconv", 0, 1.0) / RESULT_FILE
    atomic_write_json(bad, {"game": "Pong"})
    assert main([str(sweep)]) == 2
    assert str(bad) in _error_line(capsys)


@pytest.mark.parametrize(
    "field, value",
    [
        ("final_returns", [True, 1.0]),
        ("final_returns", ["1.0"]),
        ("final_returns", [None]),
        ("curve_returns", [[1.0], [False]]),
        ("curve_steps", [0, "1000"]),
        ("seed", True),
        ("game", 5),
    ],
)
def test_non_numbers_in_a_result_exit_2_naming_the_file(tmp_path, capsys, field, value):
    """Booleans are ints to Python: a ``true`` among the returns is still not a return."""
    sweep = tmp_path / "sweep"
    _write_run(sweep, "Pong", "conv", 0, 1.0)
    bad = _write_run(sweep, "Pong", "coordconv", 0, 1.0) / RESULT_FILE
    data = json.loads(bad.read_text())
    data[field] = value
    if field == "curve_returns":
        data["curve_steps"] = [0, 1000]
    atomic_write_json(bad, data)
    assert main([str(sweep)]) == 2
    err = _error_line(capsys)
    assert str(bad) in err and repr(field) in err
    assert not (sweep / "report").exists()


def test_runs_csv_names_missing_runs_by_their_real_game(tmp_path, capsys):
    """A sweep manifest (SweepDir.write_manifest) lists run directory names, whose games are
    sanitised (coordrl-PointAtDot-v0); runs.csv names a missing run by the definition's game."""
    from coordrl.sweeps.definition import SweepDefinition
    from coordrl.sweeps.layout import SweepDir

    game = "coordrl/PointAtDot-v0"
    sweep = tmp_path / "sweep"
    definition = SweepDefinition([game], ["ppo"], ["conv", "coordconv"], [0, 1, 2], 3000)
    SweepDir(sweep).write_manifest(definition, [])
    for variant in ("conv", "coordconv"):
        for seed in (0, 1):
            _write_run(sweep, game, variant, seed, 1.0 + seed, is_atari=False)
    assert main([str(sweep), "--bootstrap", "100"]) == 0
    missing = [r for r in _read_csv(sweep / "report" / "runs.csv") if r["status"] == "missing"]
    assert [(r["game"], r["variant"], r["seed"]) for r in missing] == [
        (game, "conv", "2"),
        (game, "coordconv", "2"),
    ]
    assert {r["run"] for r in missing} == {
        "coordrl-PointAtDot-v0_ppo_conv_s2",
        "coordrl-PointAtDot-v0_ppo_coordconv_s2",
    }


def test_unreadable_sweep_directory_exits_2(tmp_path, capsys, file_modes_enforced):
    sweep = tmp_path / "sweep"
    _write_run(sweep, "Pong", "conv", 0, 1.0)
    locked = _write_run(sweep, "Pong", "coordconv", 0, 1.0)
    locked.chmod(0)
    try:
        assert main([str(sweep)]) == 2
        assert f"{locked}: cannot be read" in _error_line(capsys)
    finally:
        locked.chmod(0o755)


def test_no_results_and_unknown_variants_exit_2(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main([str(empty)]) == 2
    assert "no complete run" in _error_line(capsys)
    assert main([str(tmp_path / "nope")]) == 2
    assert "does not exist" in _error_line(capsys)

    sweep = tmp_path / "sweep"
    _write_run(sweep, "Pong", "conv", 0, 1.0)
    _write_run(sweep, "Pong", "coordconv", 0, 1.0)
    assert main([str(sweep), "--treatment", "coordconv-all"]) == 2
    err = _error_line(capsys)
    assert "coordconv-all" in err and "conv, coordconv" in err
    assert main([str(sweep), "--baseline", "coordconv"]) == 2
    assert "different" in _error_line(capsys)


def test_collect_runs_with_product_manifest(tmp_path):
    sweep = tmp_path / "sweep"
    _write_run(sweep, "MsPacman", "conv", 0, 1.0)
    atomic_write_json(
        sweep / "manifest.json",
        {"games": ["ms_pacman"], "algos": ["ppo"], "variants": ["conv"], "seeds": [0, 1]},
    )
    runs = collect_runs(sweep)
    assert [r.name for r in runs.complete] == ["MsPacman_ppo_conv_s0"]
    assert [(r.status, r.seed) for r in runs.not_usable] == [("missing", 1)]


def test_two_algos_one_without_treatment_and_runs_without_curves(tmp_path, capsys):
    sweep, out = tmp_path / "sweep", tmp_path / "elsewhere"
    for seed in range(2):
        _write_run(sweep, "Pong", "conv", seed, -20.0 + seed)
        _write_run(sweep, "Pong", "coordconv", seed, -19.0 + seed, curve=seed == 0)
        _write_run(sweep, "Pong", "conv", seed, -20.0 + seed, algo="a2c")
    assert main([str(sweep), "--out", str(out), "--bootstrap", "100"]) == 0
    md = (out / "report.md").read_text()
    assert "a2c/Pong: no final return comparison: no usable run of coordconv" in md
    assert "a2c: no game has runs of both conv and coordconv; no aggregate metrics." in md
    assert "ppo/Pong/coordconv: no learning curve in s1" in md
    assert (out / "curves_a2c.png").stat().st_size > 0
    assert not (out / "aggregates_a2c.png").exists()
    auc = _read_csv(out / "auc_comparison.csv")
    assert [(r["algo"], r["n_treatment"], r["verdict"]) for r in auc] == [("ppo", "1", "no test")]
    assert not (sweep / "report").exists()


def test_real_pixel_env_sweep_to_report(tmp_path):
    """A tiny real sweep (2 variants x 2 seeds of PPO on the pixel env, 256 steps each)."""
    sweep = tmp_path / "sweep"
    cmd = [
        sys.executable, "-m", "coordrl.sweep", "--games", "coordrl/PointAtDot-v0",
        "--algos", "ppo", "--variants", "conv", "coordconv", "--seeds", "2",
        "--timesteps", "256", "--n-envs", "2", "--eval-episodes", "2", "--eval-freq", "128",
        "--set", "n_steps=64", "batch_size=64", "n_epochs=1", "--workers", "2",
        "--threads", "1", "--out", str(sweep),
    ]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]

    assert main([str(sweep), "--bootstrap", "200"]) == 0
    report = sweep / "report"
    for name in (
        "report.md", "runs.csv", "summary.csv", "comparison.csv", "auc_comparison.csv",
        "aggregates.csv", "probability_of_improvement.csv", "curves_ppo.png",
        "aggregates_ppo.png", "probability_of_improvement_ppo.png", "performance_profile_ppo.png",
    ):  # fmt: skip
        assert (report / name).stat().st_size > 0, name
    (row,) = _read_csv(report / "comparison.csv")
    assert row["game"] == "coordrl/PointAtDot-v0"
    assert (row["n_baseline"], row["n_treatment"]) == ("2", "2")
    assert row["verdict"] in ("better", "worse", "no significant difference")
    assert {r["status"] for r in _read_csv(report / "runs.csv")} == {"complete"}
    assert {a["normalisation"] for a in _read_csv(report / "aggregates.csv")} == {
        "min-max normalised"
    }

    # A run deleted after the sweep is reported as missing (from the manifest), not ignored.
    shutil.rmtree(sweep / "runs" / "coordrl-PointAtDot-v0_ppo_coordconv_s1")
    assert main([str(sweep), "--bootstrap", "200", "--out", str(tmp_path / "r2")]) == 0
    runs = {r["run"]: r["status"] for r in _read_csv(tmp_path / "r2" / "runs.csv")}
    assert runs["coordrl-PointAtDot-v0_ppo_coordconv_s1"] == "missing"
    (row,) = _read_csv(tmp_path / "r2" / "comparison.csv")
    assert row["verdict"] == "no test"


def _write_backend_run(root: Path, game: str, seed: int, final_mean: float, backend: str) -> None:
    run_dir = _write_run(root, game, "conv", seed, final_mean)
    config = RunConfig(
        game=game, env_id=f"{game}NoFrameskip-v4", is_atari=True, algo="ppo", variant="conv",
        coord_layers="none", with_r=False, seed=seed, timesteps=3000, n_envs=8,
        env_backend=backend, device="cpu", eval_episodes=3, eval_freq=1000,
        eval_deterministic=False, checkpoint_freq=0, keep_checkpoints=3,
    )  # fmt: skip
    write_config(run_dir, config)


def test_compare_two_sweeps_by_env_backend(tmp_path, capsys):
    """Two sweeps of one variant on two env backends: compared by the backend in config.yaml."""
    for backend, shift in (("native", 0.0), ("sb3", 0.05)):
        for seed in range(3):
            _write_backend_run(tmp_path / backend, "Breakout", seed, 5.0 + seed + shift, backend)
            _write_backend_run(tmp_path / backend, "Pong", seed, -20.0 + seed + shift, backend)
    argv = [str(tmp_path / "native"), str(tmp_path / "sb3"), "--by", "env_backend"]
    assert main([*argv, "--baseline", "sb3", "--treatment", "native", "--bootstrap", "200"]) == 0
    report = (tmp_path / "report" / "report.md").read_text()
    assert report.startswith("# Comparison by env_backend: native vs sb3")
    # the Runs section names both sweep directories, not only the first
    assert f"* `{tmp_path / 'native'}` (manifest.json: absent)" in report
    assert f"* `{tmp_path / 'sb3'}` (manifest.json: absent)" in report
    assert "Runs: complete: 12" in report
    rows = _read_csv(tmp_path / "report" / "comparison.csv")
    rows = [r for r in rows if r["metric"] == "final return"]
    assert {r["game"] for r in rows} == {"Breakout", "Pong"}
    assert all(r["n_baseline"] == "3" and r["n_treatment"] == "3" for r in rows)
    assert all(r["baseline"] == "sb3" and r["treatment"] == "native" for r in rows)
    capsys.readouterr()
    # Without --by, both sweeps hold the same conv runs: the second copies are duplicates.
    assert main([*argv[:2], "--baseline", "conv", "--treatment", "native"]) == 2
    assert "native" in capsys.readouterr().err
