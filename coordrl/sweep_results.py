"""Collect the run directories of a sweep: which runs completed, failed, were interrupted or
are missing, and the :class:`~coordrl.runs.RunResult` of each completed one.

A sweep directory is ``SWEEP/manifest.json`` plus ``SWEEP/runs/<run_name>/`` (see
:mod:`coordrl.runs` and :mod:`coordrl.sweep`); only ``SWEEP/runs`` is searched then (earlier
failed attempts that the sweep moved to ``SWEEP/failed/`` are counted, not used). Without a
``runs/`` folder any directory tree of run directories works: every directory holding
``result.json``, ``error.json`` or ``config.yaml`` is a run directory. The manifest, when
present, says which runs were expected, so runs that never started are reported as missing.
"""

from __future__ import annotations

import itertools
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from coordrl.runs import (
    CONFIG_FILE,
    ERROR_FILE,
    RESULT_FILE,
    CorruptRunError,
    RunResult,
    read_json,
    read_result,
    run_name,
    run_status,
)

MANIFEST_FILE = "manifest.json"
RUNS_DIR = "runs"
FAILED_DIR = "failed"

_RUN_NAME_RE = re.compile(
    r"^(?P<game>.+)_(?P<algo>[A-Za-z0-9]+)_(?P<variant>conv|coordconv[^_]*)_s(?P<seed>\d+)$"
)


@dataclass
class RunRecord:
    """One expected or found run.

    :param name: run directory name (``Pong_ppo_coordconv_s0``).
    :param status: ``complete``, ``failed``, ``interrupted``, ``new`` (empty dir) or ``missing``
        (listed in the manifest, no directory).
    :param path: the run directory (``None`` when missing).
    :param result: the parsed ``result.json`` of a complete run.
    :param reason: why a run is not usable (error message, ...).
    """

    name: str
    status: str
    path: Path | None = None
    game: str | None = None
    algo: str | None = None
    variant: str | None = None
    seed: int | None = None
    result: RunResult | None = None
    reason: str = ""


@dataclass
class SweepRuns:
    """Everything found in a sweep directory.

    :param complete: complete runs (with their results), duplicates removed.
    :param not_usable: failed, interrupted, missing and duplicate runs, with a reason each.
    :param manifest: the parsed ``manifest.json`` or ``None``.
    :param earlier_failures: earlier failed attempts of retried runs (``SWEEP/failed/``).
    """

    root: Path
    complete: list[RunRecord] = field(default_factory=list)
    not_usable: list[RunRecord] = field(default_factory=list)
    manifest: dict[str, Any] | None = None
    earlier_failures: list[Path] = field(default_factory=list)


def parse_run_name(name: str) -> tuple[str, str, str, int] | None:
    """``"Pong_ppo_coordconv_s0"`` -> ``("Pong", "ppo", "coordconv", 0)``; ``None`` if the name
    does not follow :func:`coordrl.runs.run_name`."""
    m = _RUN_NAME_RE.match(name)
    if m is None:
        return None
    return m["game"], m["algo"], m["variant"], int(m["seed"])


def _identity_key(game: str, algo: str, variant: str, seed: int) -> tuple[str, str, str, int]:
    # Compare games by their letters and digits only, so a manifest saying "ms_pacman" or
    # "coordrl/PointAtDot-v0" matches the run directory "MsPacman_..." or
    # "coordrl-PointAtDot-v0_...".
    return re.sub(r"[^a-z0-9]", "", game.lower()), algo, variant, seed


def _find_run_dirs(root: Path, exclude: Path | None) -> list[Path]:
    markers = {RESULT_FILE, ERROR_FILE, CONFIG_FILE}
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        if exclude is not None and here.resolve() == exclude:
            dirnames[:] = []
            continue
        if markers & set(filenames):
            found.append(here)
            dirnames[:] = []  # a run dir's checkpoints/ and tb/ hold no runs
        else:
            dirnames.sort()
    return sorted(found)


def _error_reason(run_dir: Path) -> str:
    try:
        data = read_json(run_dir / ERROR_FILE)
    except (CorruptRunError, OSError) as e:
        return f"failed ({ERROR_FILE} unreadable: {e})"
    reason = "failed"
    if isinstance(data, dict):
        for key in ("error", "message", "reason", "returncode"):
            if key in data:
                text = str(data[key]).strip().splitlines()
                reason = "failed: " + (text[-1][:200] if text else "")
                break
        if data.get("log"):
            reason += f" (log: {data['log']})"
    return reason


def _check_result(result: RunResult, path: Path) -> None:
    """What compare needs beyond :func:`coordrl.runs.read_result`'s checks."""
    if not result.final_returns:
        raise CorruptRunError(f"{path}: 'final_returns' is empty (no final evaluation episode)")
    numbers = (int, float)
    if not all(isinstance(s, numbers) for s in result.curve_steps) or not all(
        isinstance(r, list) and r and all(isinstance(x, numbers) for x in r)
        for r in result.curve_returns
    ):
        raise CorruptRunError(
            f"{path}: 'curve_steps' must be numbers and 'curve_returns' non-empty lists of numbers"
        )
    values = list(result.final_returns) + [x for r in result.curve_returns for x in r]
    if not all(math.isfinite(x) for x in values):
        raise CorruptRunError(f"{path}: returns contain NaN or infinite values")
    if any(b <= a for a, b in itertools.pairwise(result.curve_steps)):
        raise CorruptRunError(f"{path}: 'curve_steps' must be strictly increasing")


def _expected_runs(manifest: dict[str, Any]) -> list[tuple[str, str, str, int]]:
    """The (game, algo, variant, seed) runs a manifest lists: an explicit ``runs`` list (of run
    names or of objects with game/algo/variant/seed), or the product of ``games``, ``algos``,
    ``variants`` and ``seeds``."""
    runs = manifest.get("runs")
    expected = []
    if isinstance(runs, list):
        for entry in runs:
            if isinstance(entry, str):
                parsed = parse_run_name(entry)
            elif isinstance(entry, dict) and {"game", "algo", "variant", "seed"} <= set(entry):
                parsed = (
                    str(entry["game"]),
                    str(entry["algo"]),
                    str(entry["variant"]),
                    int(entry["seed"]),
                )
            elif isinstance(entry, dict) and "run_name" in entry:
                parsed = parse_run_name(str(entry["run_name"]))
            else:
                parsed = None
            if parsed is not None:
                expected.append(parsed)
        return expected
    keys = ("games", "algos", "variants", "seeds")
    if all(isinstance(manifest.get(k), list) for k in keys):
        for game, algo, variant, seed in itertools.product(*(manifest[k] for k in keys)):
            expected.append((str(game), str(algo), str(variant), int(seed)))
    return expected


def collect_runs(
    sweep_dir: str | os.PathLike, exclude: str | os.PathLike | None = None
) -> SweepRuns:
    """Find every run directory under ``sweep_dir`` and classify it.

    :param sweep_dir: the sweep directory (or any directory tree of run directories).
    :param exclude: a directory not to search (the report output directory).
    :raises CorruptRunError: a ``result.json`` or ``manifest.json`` that cannot be read, named.
    """
    root = Path(sweep_dir)
    out = SweepRuns(root=root)
    manifest_path = root / MANIFEST_FILE
    if manifest_path.exists():
        data = read_json(manifest_path)
        if not isinstance(data, dict):
            raise CorruptRunError(f"{manifest_path}: expected a JSON object")
        out.manifest = data
    excluded = Path(exclude).resolve() if exclude is not None else None
    seen: dict[tuple[str, str, str, int], RunRecord] = {}
    search = root / RUNS_DIR if (root / RUNS_DIR).is_dir() else root
    if search != root and (root / FAILED_DIR).is_dir():
        out.earlier_failures = sorted((root / FAILED_DIR).iterdir())
    for run_dir in _find_run_dirs(search, excluded):
        status = run_status(run_dir)
        parsed = parse_run_name(run_dir.name)
        record = RunRecord(name=run_dir.name, status=status, path=run_dir)
        if parsed is not None:
            record.game, record.algo, record.variant, record.seed = parsed
        if status == "complete":
            result = read_result(run_dir)  # CorruptRunError names the file
            _check_result(result, run_dir / RESULT_FILE)
            record.result = result
            record.game, record.algo = result.game, result.algo
            record.variant, record.seed = result.variant, result.seed
            key = _identity_key(result.game, result.algo, result.variant, result.seed)
            if key in seen:
                record.status = "duplicate"
                record.reason = f"same game/algo/variant/seed as {seen[key].path}; not used"
                out.not_usable.append(record)
                continue
            seen[key] = record
            out.complete.append(record)
            continue
        if status == "failed":
            record.reason = _error_reason(run_dir)
        elif status == "interrupted":
            record.reason = "interrupted (config.yaml but no result.json; resume it)"
        else:
            record.reason = "empty run directory"
        out.not_usable.append(record)
        if parsed is not None:
            seen.setdefault(_identity_key(*parsed), record)
    if out.manifest is not None:
        for game, algo, variant, seed in _expected_runs(out.manifest):
            if _identity_key(game, algo, variant, seed) not in seen:
                out.not_usable.append(
                    RunRecord(
                        name=run_name(game, algo, variant, seed),
                        status="missing",
                        game=game,
                        algo=algo,
                        variant=variant,
                        seed=seed,
                        reason="listed in manifest.json, no run directory",
                    )
                )
    return out
