"""Every bad input to every CLI: exit code 2, one ``error: ...`` line on stderr, no traceback,
nothing written and every file that was there byte-identical afterwards.

One table over ``train``, ``evaluate``, ``sweep``, ``compare`` and ``paper``. Each case is
its own process running the CLI as ``python -m coordrl.<cli>`` does, with its working
directory inside the fixture tree, so a stray write anywhere in it is seen: forked from one
process that has imported torch once (:data:`FORKING_RUNNER`), and for a few cases also a real
``python -m`` process. Each case must fail before any env or model is built. Cases that need
a directory without permission are skipped where this process ignores file modes (root): they
would not fail there.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import pytest
import yaml

from coordrl import runs
from coordrl.runs import RunConfig, RunResult
from coordrl.sweeps.definition import SweepDefinition
from coordrl.sweeps.layout import SweepDir

PIXEL = "coordrl/PointAtDot-v0"
NEW = "{root}/new"  # a logdir / out that must not come to exist


@dataclass(frozen=True)
class Case:
    """One bad input: ``python -m coordrl.<cli> *argv`` must exit 2 with one error line
    containing ``match``. ``{root}`` in an argument is the fixture tree. ``needs_modes``: the
    case relies on a directory without permission."""

    name: str
    cli: str
    argv: tuple[str, ...]
    match: str
    needs_modes: bool = False


def case(name: str, cli: str, argv: list[str], match: str, needs_modes: bool = False) -> Case:
    return Case(name, cli, tuple(argv), match, needs_modes)


TRAIN = ["--env", PIXEL, "--logdir", NEW]
SWEEP = ["--games", PIXEL, "--algos", "ppo", "--variants", "conv", "--seeds", "1"]

CASES = [
    # ------------------------------------------------------------------ train
    case("train-seed-negative", "train", [*TRAIN, "--seed", "-1"], "--seed: must be >= 0"),
    case("train-seed-too-big", "train", [*TRAIN, "--seed", "4294967296"], "at most 4294967295"),
    case("train-steps-huge", "train", [*TRAIN, "--timesteps", "1e100"], "above the maximum"),
    case("train-steps-fraction", "train", [*TRAIN, "--timesteps", "1.5"], "whole number"),
    case("train-steps-zero", "train", [*TRAIN, "--timesteps", "0"], "must be positive"),
    case("train-steps-word", "train", [*TRAIN, "--timesteps", "lots"], "a number of steps"),
    case("train-n-envs-zero", "train", [*TRAIN, "--n-envs", "0"], "--n-envs: must be positive"),
    case(
        "train-logdir-file",
        "train",
        ["--env", PIXEL, "--logdir", "{root}/afile"],
        "afile is not a directory",
    ),
    case(
        "train-logdir-under-file",
        "train",
        ["--env", PIXEL, "--logdir", "{root}/afile/runs"],
        "afile is not a directory",
    ),
    case(
        "train-logdir-readonly",
        "train",
        ["--env", PIXEL, "--logdir", "{root}/readonly/runs"],
        "readonly is not writable",
        needs_modes=True,
    ),
    case(
        "train-policy-kwargs-key",
        "train",
        [*TRAIN, "--set", "policy_kwargs={bogus: 1}"],
        "unknown key 'bogus' for PPO's CnnPolicy",
    ),
    case(
        "train-policy-kwargs-net-arch",
        "train",
        [*TRAIN, "--set", "policy_kwargs=dict(net_arch=-1)"],
        "net_arch must be a list of positive layer sizes",
    ),
    case(
        "train-extractor-kwargs",
        "train",
        [*TRAIN, "--set", "policy_kwargs=dict(features_extractor_kwargs=dict(dim=3))"],
        "unknown key 'dim' for CoordNatureCNN",
    ),
    case("train-set-key", "train", [*TRAIN, "--set", "foo=1"], "unknown hyperparameter 'foo'"),
    case("train-set-no-value", "train", [*TRAIN, "--set", "n_steps"], "expected KEY=VALUE"),
    case("train-set-type", "train", [*TRAIN, "--set", "n_steps=x"], "must be an integer"),
    case("train-game", "train", ["--game", "Pongg", "--logdir", NEW], "did you mean 'Pong'"),
    case("train-algo", "train", [*TRAIN, "--algo", "sac"], "invalid choice: 'sac'"),
    case("train-variant", "train", [*TRAIN, "--variant", "coordconv-first"], "unknown variant"),
    case("train-config-missing", "train", [*TRAIN, "--config", "{root}/nope.yaml"], "not found"),
    case(
        "train-config-truncated",
        "train",
        [*TRAIN, "--config", "{root}/truncated.yaml"],
        "not valid YAML",
    ),
    case(
        "train-existing-run",
        "train",
        ["--env", PIXEL, "--logdir", "{root}/runs"],
        "already exists; continue it with --resume",
    ),
    case("train-resume-missing", "train", ["--resume", "{root}/nope"], "no such run directory"),
    case("train-resume-complete", "train", ["--resume", "{root}/runs/done"], "already complete"),
    case(
        "train-resume-eval-freq",
        "train",
        ["--resume", "{root}/runs/eval_freq"],
        "eval_freq must be >= 0, got -5",
    ),
    case(
        "train-resume-config-truncated",
        "train",
        ["--resume", "{root}/runs/config_truncated"],
        "config.yaml: not valid YAML",
    ),
    case(
        "train-resume-config-types",
        "train",
        ["--resume", "{root}/runs/config_types"],
        "config.yaml: seed must be int",
    ),
    case(
        "train-resume-evaluations-truncated",
        "train",
        ["--resume", "{root}/runs/evals_truncated"],
        "evaluations.json: not valid JSON",
    ),
    case(
        "train-resume-evaluations-types",
        "train",
        ["--resume", "{root}/runs/evals_types"],
        "evaluations.json: an evaluation needs an integer step",
    ),
    case(
        "train-resume-policy-kwargs",
        "train",
        ["--resume", "{root}/runs/policy_kwargs"],
        "net_arch must be",
    ),
    case(
        "train-resume-game",
        "train",
        ["--resume", "{root}/runs/game"],
        "unknown environment or Atari game 'Pongg'",
    ),
    case(
        "train-resume-flag-differs",
        "train",
        ["--resume", "{root}/runs/interrupted", "--seed", "3"],
        "seed=3 differs from the run's saved seed=0",
    ),
    case(
        "train-resume-locked",
        "train",
        ["--resume", "{root}/locked/run"],
        "locked/run: cannot be read (permission denied)",
        needs_modes=True,
    ),
    # ------------------------------------------------------------------ evaluate
    case("evaluate-seed-negative", "evaluate", ["{root}/runs/done", "--seed", "-1"], ">= 0"),
    case("evaluate-episodes-zero", "evaluate", ["{root}/runs/done", "--episodes", "0"], "positive"),
    case("evaluate-missing", "evaluate", ["{root}/nope"], "no such run directory or model"),
    case("evaluate-not-a-run", "evaluate", ["{root}/readable"], "not a run directory"),
    case("evaluate-empty-zip", "evaluate", ["{root}/runs/empty_zip"], "cannot load model"),
    case(
        "evaluate-empty-zip-file",
        "evaluate",
        ["{root}/runs/empty_zip/model.zip"],
        "cannot load model",
    ),
    case(
        "evaluate-config-truncated",
        "evaluate",
        ["{root}/runs/config_truncated"],
        "not valid YAML",
    ),
    case("evaluate-config-values", "evaluate", ["{root}/runs/eval_freq"], "eval_freq must be"),
    case(
        "evaluate-locked",
        "evaluate",
        ["{root}/locked/run"],
        "cannot be read",
        needs_modes=True,
    ),
    # ------------------------------------------------------------------ sweep
    case(
        "sweep-steps-huge",
        "sweep",
        [*SWEEP, "--timesteps", "1e100", "--out", NEW],
        "above the maximum",
    ),
    case(
        "sweep-steps-fraction",
        "sweep",
        [*SWEEP, "--timesteps", "2.5", "--out", NEW],
        "whole number",
    ),
    case(
        "sweep-out-file",
        "sweep",
        [*SWEEP, "--timesteps", "64", "--out", "{root}/afile"],
        "is not a directory",
    ),
    case(
        "sweep-out-readonly",
        "sweep",
        [*SWEEP, "--timesteps", "64", "--out", "{root}/readonly/s"],
        "readonly is not writable",
        needs_modes=True,
    ),
    case(
        "sweep-out-not-a-sweep",
        "sweep",
        [*SWEEP, "--timesteps", "64", "--out", "{root}/readable"],
        "not a sweep directory",
    ),
    case(
        "sweep-game",
        "sweep",
        [*SWEEP, "--games", "Pongg", "--timesteps", "64", "--out", NEW],
        "did you mean 'Pong'",
    ),
    case(
        "sweep-algo",
        "sweep",
        [*SWEEP, "--algos", "sac", "--timesteps", "64", "--out", NEW],
        "unknown algorithm 'sac'",
    ),
    case(
        "sweep-variant",
        "sweep",
        [*SWEEP, "--variants", "coordconv-first", "--timesteps", "64", "--out", NEW],
        "unknown variant",
    ),
    case(
        "sweep-set-key",
        "sweep",
        [*SWEEP, "--timesteps", "64", "--set", "foo=1", "--out", NEW],
        "unknown hyperparameter 'foo'",
    ),
    case(
        "sweep-policy-kwargs",
        "sweep",
        [*SWEEP, "--timesteps", "64", "--set", "policy_kwargs={bogus: 1}", "--out", NEW],
        "unknown key 'bogus'",
    ),
    case("sweep-yaml-games", "sweep", ["--config", "{root}/games5.yaml"], "games must be a list"),
    case("sweep-yaml-seeds", "sweep", ["--config", "{root}/seeds.yaml"], "seeds must be a count"),
    case("sweep-yaml-set", "sweep", ["--config", "{root}/set.yaml"], "set must be a mapping"),
    case("sweep-yaml-workers", "sweep", ["--config", "{root}/workers.yaml"], "must be positive"),
    case("sweep-yaml-device", "sweep", ["--config", "{root}/device.yaml"], "device must be one"),
    case("sweep-yaml-truncated", "sweep", ["--config", "{root}/truncated.yaml"], "not valid YAML"),
    case("sweep-yaml-unknown", "sweep", ["--config", "{root}/unknown.yaml"], "unknown key(s)"),
    case(
        "sweep-manifest-games",
        "sweep",
        ["--out", "{root}/sweeps/games5"],
        "manifest.json: definition: games must be a list",
    ),
    case(
        "sweep-manifest-truncated",
        "sweep",
        ["--out", "{root}/sweeps/truncated"],
        "manifest.json: not valid JSON",
    ),
    case(
        "sweep-manifest-launch-options",
        "sweep",
        ["--out", "{root}/sweeps/launch"],
        "manifest.json: workers: must be positive",
    ),
    case(
        "sweep-manifest-differs",
        "sweep",
        ["--out", "{root}/sweeps/ok", *SWEEP, "--seeds", "3", "--timesteps", "64"],
        "disagrees with this command",
    ),
    case(
        "sweep-extend-changes-timesteps",
        "sweep",
        ["--out", "{root}/sweeps/ok", *SWEEP, "--seeds", "3", "--timesteps", "128", "--extend"],
        "--extend only adds",
    ),
    case(
        "sweep-extend-nothing", "sweep", ["--out", "{root}/sweeps/ok", "--extend"], "--extend needs"
    ),
    # ------------------------------------------------------------------ compare
    case("compare-bool-returns", "compare", ["{root}/compare/bool"], "'final_returns' must be"),
    case("compare-text-returns", "compare", ["{root}/compare/text"], "'final_returns' must be"),
    case("compare-truncated", "compare", ["{root}/compare/truncated"], "result.json: not valid"),
    case(
        "compare-manifest-types",
        "compare",
        ["{root}/compare/manifest"],
        "manifest.json: the runs it lists cannot be read",
    ),
    case("compare-missing", "compare", ["{root}/nope"], "does not exist"),
    case("compare-empty", "compare", ["{root}/readable"], "no complete run"),
    case(
        "compare-variant",
        "compare",
        ["{root}/compare/ok", "--treatment", "coordconv-all"],
        "no complete run",
    ),
    case("compare-alpha", "compare", ["{root}/compare/ok", "--alpha", "2"], "--alpha must be"),
    case("compare-bootstrap", "compare", ["{root}/compare/ok", "--bootstrap", "10"], ">= 100"),
    case(
        "compare-out-file",
        "compare",
        ["{root}/compare/ok", "--out", "{root}/afile"],
        "is not a directory",
    ),
    case(
        "compare-out-readonly",
        "compare",
        ["{root}/compare/ok", "--out", "{root}/readonly/report"],
        "readonly is not writable",
        needs_modes=True,
    ),
    case(
        "compare-locked-run",
        "compare",
        ["{root}/locked"],
        "cannot be read",
        needs_modes=True,
    ),
    # ------------------------------------------------------------------ paper
    case("paper-no-experiment", "paper", [], "required"),
    case("paper-split", "paper", ["classification", "--split", "bogus"], "invalid choice"),
    case(
        "paper-epochs",
        "paper",
        ["classification", "--split", "uniform", "--epochs", "0"],
        "must be positive",
    ),
    case(
        "paper-lr",
        "paper",
        ["classification", "--split", "uniform", "--lr", "-1"],
        "--lr must be > 0",
    ),
    case(
        "paper-models",
        "paper",
        ["classification", "--split", "uniform", "--models", "x"],
        "--models must be",
    ),
    case(
        "paper-device",
        "paper",
        ["classification", "--split", "uniform", "--device", "tpu"],
        "unknown device 'tpu'",
    ),
]


# ---------------------------------------------------------------------------- the fixture tree
def _config(**changes) -> dict:
    config = RunConfig(
        game=PIXEL,
        env_id=PIXEL,
        is_atari=False,
        algo="ppo",
        variant="conv",
        coord_layers="none",
        with_r=False,
        seed=0,
        timesteps=256,
        n_envs=2,
        env_backend="native",
        device="cpu",
        eval_episodes=1,
        eval_freq=0,
        eval_deterministic=False,
        checkpoint_freq=0,
        keep_checkpoints=3,
        hyperparams={"n_steps": 32, "batch_size": 64},
    )
    return {**asdict(config), **changes}


def _run_dir(path: Path, **changes) -> Path:
    path.mkdir(parents=True)
    (path / runs.CONFIG_FILE).write_text(yaml.safe_dump(_config(**changes), sort_keys=False))
    runs.write_evaluations(path, [])
    return path


def _result(variant: str = "conv", seed: int = 0, **changes) -> dict:
    result = RunResult(
        game=PIXEL,
        env_id=PIXEL,
        is_atari=False,
        algo="ppo",
        variant=variant,
        seed=seed,
        timesteps=256,
        steps_done=256,
        final_returns=[1.0 + seed, 2.0],
        curve_steps=[256],
        curve_returns=[[1.0 + seed, 2.0]],
    )
    return {**asdict(result), **changes}


def _compare_sweep(path: Path, **bad) -> Path:
    for variant in ("conv", "coordconv"):
        for seed in (0, 1):
            run_dir = path / "runs" / runs.run_name(PIXEL, "ppo", variant, seed)
            _run_dir(run_dir, variant=variant, seed=seed)
            changes = bad if (variant, seed) == ("coordconv", 1) else {}
            (run_dir / runs.RESULT_FILE).write_text(json.dumps(_result(variant, seed, **changes)))
    return path


def _sweep_dir(path: Path, edit=None) -> Path:
    definition = SweepDefinition([PIXEL], ["ppo"], ["conv"], [0], 64)
    SweepDir(path).write_manifest(definition, ["--out", str(path)], {"workers": 1})
    if edit is not None:
        data = json.loads((path / "manifest.json").read_text())
        edit(data)
        (path / "manifest.json").write_text(json.dumps(data))
    return path


def _sweep_yaml(root: Path, name: str, **changes) -> None:
    options = {"games": [PIXEL], "algos": ["ppo"], "variants": ["conv"], "seeds": 1}
    options |= {"timesteps": 64, "out": str(root / "new"), **changes}
    (root / name).write_text(yaml.safe_dump(options))


def _build_tree(root: Path) -> None:
    (root / "afile").write_text("a file, not a directory\n")
    (root / "readable").mkdir()
    (root / "readable" / "notes.txt").write_text("not a run\n")
    (root / "readonly").mkdir()
    (root / "truncated.yaml").write_text("games: [Pong\n")

    done = _run_dir(root / "runs" / "done")
    (root / "runs" / "done" / runs.RESULT_FILE).write_text(json.dumps(_result()))
    (done / runs.MODEL_FILE).write_bytes(b"")
    # the run "train --env PIXEL --logdir runs" would create
    _run_dir(root / "runs" / runs.run_name(PIXEL, "ppo", "conv", 0))
    _run_dir(root / "runs" / "interrupted")
    _run_dir(root / "runs" / "eval_freq", eval_freq=-5)
    _run_dir(root / "runs" / "config_types", seed="zero")
    _run_dir(root / "runs" / "config_truncated")
    (root / "runs" / "config_truncated" / runs.CONFIG_FILE).write_text("game: [coordrl\n")
    _run_dir(root / "runs" / "evals_truncated")
    (root / "runs" / "evals_truncated" / runs.EVALS_FILE).write_text('{"evaluations": [{"st')
    _run_dir(root / "runs" / "evals_types")
    bad_eval = {"step": True, "returns": [1.0], "lengths": [16], "final": False}
    runs.write_evaluations(root / "runs" / "evals_types", [bad_eval])
    _run_dir(root / "runs" / "policy_kwargs", hyperparams={"policy_kwargs": "dict(net_arch=-1)"})
    _run_dir(root / "runs" / "game", game="Pongg")
    empty_zip = _run_dir(root / "runs" / "empty_zip")
    for run_dir in (empty_zip, root / "runs" / "eval_freq", root / "runs" / "config_truncated"):
        (run_dir / runs.MODEL_FILE).write_bytes(b"")  # (evaluate finds a model, then the config)

    _run_dir(root / "locked" / "run")  # made unreadable by the fixture

    _sweep_yaml(root, "games5.yaml", games=5)
    _sweep_yaml(root, "seeds.yaml", seeds=1.5)
    _sweep_yaml(root, "set.yaml", set=5)
    _sweep_yaml(root, "workers.yaml", workers=0)
    _sweep_yaml(root, "device.yaml", device="gpu")
    _sweep_yaml(root, "unknown.yaml", sedes=3)
    _sweep_dir(root / "sweeps" / "ok")
    _sweep_dir(root / "sweeps" / "games5", lambda d: d["definition"].update(games=5))
    _sweep_dir(root / "sweeps" / "launch", lambda d: d.update(launch_options={"workers": 0}))
    _sweep_dir(root / "sweeps" / "truncated")
    (root / "sweeps" / "truncated" / "manifest.json").write_text('{"definition": {"ga')

    _compare_sweep(root / "compare" / "ok")
    _compare_sweep(root / "compare" / "bool", final_returns=[True, 1.0])
    _compare_sweep(root / "compare" / "text", final_returns=["1.0"])
    _compare_sweep(root / "compare" / "truncated")
    bad = root / "compare" / "truncated" / "runs" / runs.run_name(PIXEL, "ppo", "conv", 1)
    (bad / runs.RESULT_FILE).write_text('{"game": "coordrl/Poi')
    _compare_sweep(root / "compare" / "manifest")
    manifest = {"definition": {"games": [PIXEL], "algos": ["ppo"], "variants": ["conv"]}}
    manifest["definition"]["seeds"] = ["zero"]
    (root / "compare" / "manifest" / "manifest.json").write_text(json.dumps(manifest))


def _snapshot(root: Path) -> dict[str, tuple]:
    """Every file (bytes, mode, mtime) and directory (mode) under ``root``."""
    out: dict[str, tuple] = {}
    for path in sorted(root.rglob("*")):
        st = path.lstat()
        key = str(path.relative_to(root))
        if path.is_dir():
            out[key] = ("dir", stat.S_IMODE(st.st_mode))
        else:
            out[key] = (path.read_bytes(), stat.S_IMODE(st.st_mode), st.st_mtime_ns)
    return out


def _modes_enforced(root: Path) -> bool:
    probe = root / "probe"
    probe.write_text("")
    probe.chmod(0)
    try:
        probe.open().close()
    except PermissionError:
        return True
    finally:
        probe.unlink()
    return False


@dataclass
class Outcome:
    returncode: int | None
    stdout: str
    stderr: str


#: A process that imports what the CLIs import (torch, SB3, the envs, matplotlib) once, then
#: runs each case in a forked child exactly as ``python -m coordrl.<cli> ARGS`` would
#: (``runpy`` as ``__main__``, its own working directory, stdout and stderr at the fd level,
#: the exit status of ``sys.exit``): an import of torch costs seconds on a busy 2-core box,
#: a forked case a fraction of one. (The CLI modules themselves are imported in the child.)
FORKING_RUNNER = r"""
import json, os, runpy, sys, traceback
import coordrl.training, coordrl.agents.factory, coordrl.envs, coordrl.sweeps.results
import coordrl.analysis.comparison, coordrl.analysis.report, coordrl.notsoclevr, matplotlib

def child(cli, argv, cwd, out, err):
    code = 1
    try:
        os.chdir(cwd)
        for fd, path in ((1, out), (2, err)):
            os.dup2(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644), fd)
        sys.argv = [f"coordrl.{cli}", *argv]
        try:
            runpy.run_module(f"coordrl.{cli}", run_name="__main__", alter_sys=True)
            code = 0
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
            if isinstance(e.code, str):
                print(e.code, file=sys.stderr)
        except BaseException:
            traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)

jobs, results, running = json.load(sys.stdin), {}, {}
width = int(os.environ.get("RUNNER_WORKERS", "2"))

def reap():
    pid, status = os.wait()
    results[running.pop(pid)] = os.waitstatus_to_exitcode(status)

for name, cli, argv, cwd, out, err in jobs:
    while len(running) >= width:
        reap()
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        child(cli, argv, cwd, out, err)
    running[pid] = name
while running:
    reap()
print(json.dumps(results))
"""
#: Cases also run as a real ``python -m coordrl.<cli>`` process (one or two per CLI, from
#: argparse errors to errors found in files), to show the forking runner gives the same.
REAL_PROCESS = (
    "train-seed-negative",
    "train-policy-kwargs-key",
    "train-resume-evaluations-truncated",
    "evaluate-empty-zip",
    "sweep-yaml-games",
    "sweep-manifest-games",
    "compare-bool-returns",
    "paper-lr",
)


def _argv(case: Case, root: Path) -> list[str]:
    return [a.replace("{root}", str(root)) for a in case.argv]


def _run_forked(cases: list[Case], root: Path, scratch: Path) -> dict[str, Outcome]:
    jobs = [
        [c.name, c.cli, _argv(c, root), str(root), str(scratch / f"{c.name}.out"),
         str(scratch / f"{c.name}.err")]
        for c in cases
    ]  # fmt: skip
    workers = str(max(2, min(4, os.cpu_count() or 1)))
    proc = subprocess.run(
        [sys.executable, "-c", FORKING_RUNNER],
        input=json.dumps(jobs),
        capture_output=True,
        text=True,
        timeout=280,
        env={**os.environ, "RUNNER_WORKERS": workers},
    )
    assert proc.returncode == 0, proc.stderr
    codes = json.loads(proc.stdout.splitlines()[-1])
    text = {name: [(scratch / f"{name}.{k}").read_text() for k in ("out", "err")] for name in codes}
    return {name: Outcome(code, *text[name]) for name, code in codes.items()}


def _run_real(case: Case, root: Path) -> Outcome:
    try:
        proc = subprocess.run(
            [sys.executable, "-m", f"coordrl.{case.cli}", *_argv(case, root)],
            capture_output=True,
            text=True,
            timeout=240,
            cwd=root,
        )
    except subprocess.TimeoutExpired as e:
        return Outcome(None, str(e.stdout or ""), f"timed out (built something?) {e.stderr!r}")
    return Outcome(proc.returncode, proc.stdout, proc.stderr)


@pytest.fixture(scope="module")
def table(tmp_path_factory) -> tuple[dict[str, Outcome | None], dict[str, Outcome], dict, dict]:
    """Run every case once on one fixture tree (forked), and the :data:`REAL_PROCESS` ones
    again as real processes, in parallel: the outcomes by case name (``None``: skipped), the
    real processes' outcomes, and the tree's snapshots before and after."""
    root = tmp_path_factory.mktemp("bad-input")
    scratch = tmp_path_factory.mktemp("bad-input-output")
    _build_tree(root)
    enforced = _modes_enforced(root)
    before = _snapshot(root)
    locked = [root / "readonly", root / "locked" / "run"]
    modes = {p: p.stat().st_mode for p in locked}
    (root / "readonly").chmod(0o555)
    (root / "locked" / "run").chmod(0)
    todo = [c for c in CASES if enforced or not c.needs_modes]
    real = [c for c in todo if c.name in REAL_PROCESS]
    try:
        with ThreadPoolExecutor(max_workers=3) as pool:
            real_results = pool.map(lambda c: _run_real(c, root), real)
            outcomes = _run_forked(todo, root, scratch)
            by_real = dict(zip((c.name for c in real), real_results, strict=True))
    finally:
        for path, mode in modes.items():
            path.chmod(mode)
    after = _snapshot(root)
    return {c.name: outcomes.get(c.name) for c in CASES}, by_real, before, after


def _check(outcome: Outcome, case: Case) -> None:
    report = f"rc={outcome.returncode}\nstdout:\n{outcome.stdout}\nstderr:\n{outcome.stderr}"
    assert outcome.returncode == 2, report
    assert "Traceback" not in outcome.stdout + outcome.stderr, report
    lines = outcome.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), report
    assert case.match in lines[0], report
    assert outcome.stdout == "", report


def test_case_names_are_unique():
    assert len({c.name for c in CASES}) == len(CASES)
    assert {c.cli for c in CASES} == {"train", "evaluate", "sweep", "compare", "paper"}


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input_is_one_error_line_and_exit_2(table, case: Case) -> None:
    outcome = table[0][case.name]
    if outcome is None:
        pytest.skip("this process reads files whatever their mode (root): cannot fail here")
    _check(outcome, case)


def test_real_processes_answer_as_the_forked_ones(table) -> None:
    outcomes, real, _, _ = table
    assert set(real) == set(REAL_PROCESS)
    for name, outcome in real.items():
        case = next(c for c in CASES if c.name == name)
        _check(outcome, case)
        assert outcome.stderr == outcomes[name].stderr, name


def test_nothing_is_written_or_changed(table) -> None:
    """Every file and directory of the tree is as it was: same bytes, mode and mtime, and no
    new file (no run directory, report, manifest or lock was created)."""
    _, _, before, after = table
    changed = sorted(k for k in before.keys() & after.keys() if before[k] != after[k])
    assert changed == [] and sorted(after.keys() - before.keys()) == []
    assert sorted(before.keys() - after.keys()) == []
