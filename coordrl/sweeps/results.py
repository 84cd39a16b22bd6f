"""The runs of a sweep as results: which runs completed, failed, were interrupted or are
missing, with the :class:`~coordrl.runs.RunResult` of each completed one
(:func:`collect_runs`, what ``compare`` reads), and the summary table printed at the end of a
sweep (:func:`summary_table`).

A sweep directory is ``SWEEP/manifest.json`` plus ``SWEEP/runs/<run_name>/`` (see
:mod:`coordrl.sweeps.layout` and :mod:`coordrl.runs`); only ``SWEEP/runs`` is searched then
(earlier failed attempts that the sweep moved to ``SWEEP/failed/`` are counted, not used).
Without a ``runs/`` folder any directory tree of run directories works: every directory holding
``result.json``, ``error.json`` or ``config.yaml`` is a run directory. The manifest, when
present, says which runs were expected, so runs that never started are reported as missing.
"""

from __future__ import annotations

import itertools
import math
import os
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from coordrl.runs import (
    CONFIG_FILE,
    ERROR_FILE,
    RESULT_FILE,
    CorruptRunError,
    RunResult,
    game_key,
    parse_run_name,
    read_config,
    read_error,
    read_result,
    run_name,
    run_status,
)
from coordrl.sweeps.definition import RunSpec, SweepDefinition
from coordrl.sweeps.layout import (
    FAILED_DIR,
    MANIFEST_FILE,
    RUNS_DIR,
    SweepDir,
    read_manifest_data,
)

__all__ = [
    "GROUP_BY",
    "RunRecord",
    "SweepRuns",
    "collect_runs",
    "failed_runs_report",
    "format_table",
    "mean_final_return",
    "merge_runs",
    "summary_rows",
    "summary_table",
]


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
    :param parts: the sweep directories :func:`merge_runs` put together (empty for one).
    """

    root: Path
    complete: list[RunRecord] = field(default_factory=list)
    not_usable: list[RunRecord] = field(default_factory=list)
    manifest: dict[str, Any] | None = None
    earlier_failures: list[Path] = field(default_factory=list)
    parts: list[SweepRuns] = field(default_factory=list)

    @property
    def roots(self) -> list[Path]:
        """The sweep directories these runs come from."""
        return [part.root for part in self.parts] or [self.root]


def _identity(game: str, algo: str, variant: str, seed: int) -> tuple[str, str, str, int]:
    # A manifest saying "ms_pacman" or "coordrl/PointAtDot-v0" matches the run directory
    # "MsPacman_..." or "coordrl-PointAtDot-v0_...".
    return game_key(game), algo, variant, seed


def _unreadable(error: OSError) -> None:
    """A directory of the sweep that cannot be listed: an error, not silently no runs."""
    raise CorruptRunError(
        f"{error.filename}: cannot be read ({error.strerror or error}); fix its permissions"
    )


def _find_run_dirs(root: Path, exclude: Path | None) -> list[Path]:
    markers = {RESULT_FILE, ERROR_FILE, CONFIG_FILE}
    found = []
    for dirpath, dirnames, filenames in os.walk(root, onerror=_unreadable):
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
        data = read_error(run_dir)
    except (CorruptRunError, OSError) as e:
        return f"failed ({ERROR_FILE} unreadable: {e})"
    reason = "failed"
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
    if not all(result.curve_returns):  # (types: read_result)
        raise CorruptRunError(f"{path}: 'curve_returns' must be non-empty lists of numbers")
    values = list(result.final_returns) + [x for r in result.curve_returns for x in r]
    if not all(math.isfinite(x) for x in values):
        raise CorruptRunError(f"{path}: returns contain NaN or infinite values")
    if any(b <= a for a, b in itertools.pairwise(result.curve_steps)):
        raise CorruptRunError(f"{path}: 'curve_steps' must be strictly increasing")


def _grid(spec: Any) -> list[tuple[str, str, str, int]] | None:
    """The product of a mapping's ``games``, ``algos``, ``variants`` and ``seeds`` lists
    (``None`` if it has not all four)."""
    keys = ("games", "algos", "variants", "seeds")
    if not isinstance(spec, dict) or not all(isinstance(spec.get(k), list) for k in keys):
        return None
    if not all(isinstance(x, str) for k in keys[:3] for x in spec[k]) or not all(
        isinstance(x, int) and not isinstance(x, bool) for x in spec["seeds"]
    ):
        raise TypeError("games, algos and variants must be lists of names, seeds of integers")
    return [
        (game, algo, variant, seed)
        for game, algo, variant, seed in itertools.product(*(spec[k] for k in keys))
    ]


def _expected_runs(manifest: dict[str, Any]) -> list[tuple[str, str, str, int]]:
    """The (game, algo, variant, seed) runs a manifest lists: the grid of its sweep
    ``definition`` (the games by their real names, ``coordrl/PointAtDot-v0``), else an
    explicit ``runs`` list (of run names, whose games are the sanitised directory form, or of
    objects with game/algo/variant/seed), else the product of top-level ``games``, ``algos``,
    ``variants`` and ``seeds``."""
    grid = _grid(manifest.get("definition"))
    if grid is not None:
        return grid
    listed = manifest.get("runs")
    expected = []
    if isinstance(listed, list):
        for entry in listed:
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
    return _grid(manifest) or []


def _manifest_runs(root: Path, manifest: dict[str, Any]) -> list[tuple[str, str, str, int]]:
    """:func:`_expected_runs`, a manifest whose values are of the wrong types named."""
    try:
        return _expected_runs(manifest)
    except (TypeError, ValueError) as e:
        raise CorruptRunError(
            f"{root / MANIFEST_FILE}: the runs it lists cannot be read ({e})"
        ) from None


#: What runs can be grouped by for a comparison: their variant, or a train option that every
#: run's config.yaml records (e.g. the Atari env backend, to compare two sweeps of one variant).
GROUP_BY: tuple[str, ...] = ("variant", "env_backend")


def collect_runs(
    sweep_dir: str | os.PathLike,
    exclude: str | os.PathLike | None = None,
    group_by: str = "variant",
) -> SweepRuns:
    """Find every run directory under ``sweep_dir`` and classify it.

    :param sweep_dir: the sweep directory (or any directory tree of run directories).
    :param exclude: a directory not to search (the report output directory).
    :param group_by: one of :data:`GROUP_BY`. With ``"env_backend"``, each run's ``variant``
        (what the comparison groups by) is replaced by the backend its config.yaml records
        (``native``, ``sb3``), and runs missing from the manifest by the manifest's backend.
    :raises CorruptRunError: a ``result.json``, ``config.yaml`` or ``manifest.json`` that
        cannot be read, named.
    """
    if group_by not in GROUP_BY:
        raise ValueError(f"cannot group runs by {group_by!r}; choose one of {', '.join(GROUP_BY)}")
    runs = _collect_runs(sweep_dir, exclude)
    if group_by != "variant":
        definition = (runs.manifest or {}).get("definition") or {}
        default = (definition.get("train_options") or {}).get(group_by)
        for record in runs.complete + runs.not_usable:
            label = default
            if record.path is not None and (record.path / CONFIG_FILE).is_file():
                label = getattr(read_config(record.path), group_by)
            if label is not None:
                record.variant = str(label)
                if record.result is not None:
                    record.result.variant = str(label)
    return runs


def _add_complete(
    out: SweepRuns, seen: dict[tuple[str, str, str, int], RunRecord], record: RunRecord
) -> None:
    """Add a complete run to ``out``, or list it as a duplicate of the run ``seen`` holds for
    the same game/algo/variant/seed."""
    result = record.result
    assert result is not None
    key = _identity(result.game, result.algo, result.variant, result.seed)
    if key in seen:
        record.status = "duplicate"
        record.reason = f"same game/algo/variant/seed as {seen[key].path}; not used"
        out.not_usable.append(record)
        return
    seen[key] = record
    out.complete.append(record)


def merge_runs(parts: Sequence[SweepRuns]) -> SweepRuns:
    """The runs of several sweep directories as one (the root of the first; a run found in
    two of them is used once, the second listed as a duplicate)."""
    out = SweepRuns(root=parts[0].root, manifest=parts[0].manifest if len(parts) == 1 else None)
    seen: dict[tuple[str, str, str, int], RunRecord] = {}
    out.parts = list(parts) if len(parts) > 1 else []
    for part in parts:
        for record in part.complete:
            _add_complete(out, seen, record)
        out.not_usable.extend(part.not_usable)
        out.earlier_failures.extend(part.earlier_failures)
    return out


def _collect_runs(sweep_dir: str | os.PathLike, exclude: str | os.PathLike | None) -> SweepRuns:
    root = Path(sweep_dir)
    out = SweepRuns(root=root, manifest=read_manifest_data(root))
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
            _add_complete(out, seen, record)
            continue
        if status == "failed":
            record.reason = _error_reason(run_dir)
        elif status == "interrupted":
            record.reason = "interrupted (config.yaml but no result.json; resume it)"
        else:
            record.reason = "empty run directory"
        out.not_usable.append(record)
        if parsed is not None:
            seen.setdefault(_identity(*parsed), record)
    if out.manifest is not None:
        for game, algo, variant, seed in _manifest_runs(root, out.manifest):
            if _identity(game, algo, variant, seed) not in seen:
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


# ---------------------------------------------------------------------------- end of a sweep
def mean_final_return(run_dir: str | os.PathLike) -> float | None:
    """The mean of a complete run's final evaluation returns (``None`` if unreadable/empty)."""
    try:
        result = read_result(run_dir)
    except (OSError, CorruptRunError):
        return None
    return statistics.fmean(result.final_returns) if result.final_returns else None


def summary_rows(sweep: SweepDir, definition: SweepDefinition) -> list[dict[str, Any]]:
    """Per (game, algo, variant): final mean return over seeds (mean of each seed's final
    evaluation returns), with sample std and the number of complete seeds."""
    rows = []
    for game, algo, variant in itertools.product(
        definition.games, definition.algos, definition.variants
    ):
        values = []
        for seed in definition.seeds:
            run_dir = sweep.run_dir(RunSpec(game, algo, variant, seed))
            if run_status(run_dir) == "complete":
                value = mean_final_return(run_dir)
                if value is not None:
                    values.append(value)
        rows.append(
            {
                "game": game,
                "algo": algo,
                "variant": variant,
                "n": len(values),
                "seeds": len(definition.seeds),
                "mean": statistics.fmean(values) if values else None,
                "std": statistics.stdev(values) if len(values) > 1 else None,
            }
        )
    return rows


def format_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A plain-text table: columns padded to their widest cell, a dashed line under the header."""
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows, strict=True)]
    lines = [
        "  ".join(str(x).ljust(w) for x, w in zip(r, widths, strict=True)).rstrip()
        for r in [header, *rows]
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def summary_table(sweep: SweepDir, definition: SweepDefinition) -> str:
    """The table printed at the end of a sweep: per (game, algo, variant) the complete seeds
    and the mean ± std over seeds of the final mean return."""
    rows = []
    for r in summary_rows(sweep, definition):
        if r["mean"] is None:
            value = "-"
        elif r["std"] is None:
            value = f"{r['mean']:.4g}"
        else:
            value = f"{r['mean']:.4g} ± {r['std']:.3g}"
        rows.append([r["game"], r["algo"], r["variant"], f"{r['n']}/{r['seeds']}", value])
    return format_table(["game", "algo", "variant", "seeds", "final mean return"], rows)


def failed_runs_report(sweep: SweepDir, specs: Sequence[RunSpec]) -> list[str]:
    """Two lines per failed run: its exit code and error, and where its log is."""
    lines = []
    for spec in specs:
        run_dir = sweep.run_dir(spec)
        try:
            err = read_error(run_dir)
            lines.append(f"  {spec.name}: exit {err.get('returncode')}: {err.get('error')}")
            lines.append(f"    log: {err.get('log')}")
        except (OSError, CorruptRunError):
            lines.append(f"  {spec.name}: see {run_dir}")
    return lines
