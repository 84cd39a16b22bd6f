"""From the runs of a sweep to the numbers of the comparison report (no file writing here).

Per (algo, game): each run's score is the mean of its final-evaluation episode returns, and
its sample efficiency is :func:`coordrl.analysis.stats.curve_auc` of its learning curve. Per variant
these per-seed numbers are summarised; treatment versus baseline is compared per game, with
Holm-Bonferroni adjustment across the games of one algorithm (final returns and AUC are two
separate families). Across games, normalised scores are aggregated with rliable.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np

from coordrl.analysis import aggregate, stats
from coordrl.runs import RunResult
from coordrl.sweeps.results import SweepRuns

FINAL = "final return"
AUC = "AUC (mean return over training)"


@dataclass(frozen=True)
class Settings:
    """:param baseline: baseline variant. :param treatment: treatment variant.
    :param alpha: significance level. :param reps: bootstrap resamples. :param seed: bootstrap seed.
    :param group_by: what baseline and treatment name (``variant``, or ``env_backend`` when the
        runs' variant labels were replaced by their backend, see ``sweeps.results.collect_runs``).
    """

    baseline: str = "conv"
    treatment: str = "coordconv"
    alpha: float = 0.05
    reps: int = 5000
    seed: int = 0
    group_by: str = "variant"


@dataclass
class SummaryRow:
    algo: str
    game: str
    variant: str
    metric: str
    seeds: list[int]
    summary: stats.Summary


@dataclass
class ComparisonRow:
    algo: str
    game: str
    metric: str
    baseline: str
    treatment: str
    mean_baseline: float
    mean_treatment: float
    comparison: stats.Comparison
    welch_p_holm: float = math.nan
    mannwhitney_p_holm: float = math.nan
    verdict: str = stats.NO_TEST
    note: str = ""


@dataclass
class AggregateRow:
    algo: str
    variant: str
    metric: str
    estimate: float
    ci_low: float
    ci_high: float
    n_runs: int
    n_games: int


@dataclass
class PoiRow:
    algo: str
    x: str
    y: str
    estimate: float
    ci_low: float
    ci_high: float
    n_games: int
    permutation_p: float  # stats.stratified_permutation_p
    permutation_exact: bool


@dataclass
class CurveData:
    """Per (algo, game, variant): evaluation steps and the mean curve with its CI band."""

    steps: np.ndarray
    mean: np.ndarray
    ci: np.ndarray
    n_runs: int


@dataclass
class AlgoAggregate:
    """What the aggregate plots of one algorithm need."""

    games: list[str]
    normalisation: dict[str, str]
    matrices: dict[str, np.ndarray]
    points: dict[str, np.ndarray]
    intervals: dict[str, np.ndarray]
    poi_points: dict[str, float]
    poi_intervals: dict[str, np.ndarray]
    tau: np.ndarray
    profiles: dict[str, np.ndarray]
    profile_cis: dict[str, np.ndarray]


@dataclass
class Analysis:
    settings: Settings
    runs: SweepRuns
    algos: list[str] = field(default_factory=list)
    summaries: list[SummaryRow] = field(default_factory=list)
    comparisons: list[ComparisonRow] = field(default_factory=list)
    auc_comparisons: list[ComparisonRow] = field(default_factory=list)
    aggregates: list[AggregateRow] = field(default_factory=list)
    poi: list[PoiRow] = field(default_factory=list)
    curves: dict[tuple[str, str], dict[str, CurveData]] = field(default_factory=dict)
    algo_aggregates: dict[str, AlgoAggregate] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def variants_present(runs: SweepRuns) -> list[str]:
    """Variants with at least one complete run."""
    return sorted({r.result.variant for r in runs.complete if r.result is not None})


def _group(runs: SweepRuns) -> dict[str, dict[str, dict[str, list[RunResult]]]]:
    """algo -> game -> variant -> results sorted by seed."""
    grouped: dict[str, dict[str, dict[str, list[RunResult]]]] = defaultdict(
        lambda: defaultdict(lambda: defaultdict(list))
    )
    for record in runs.complete:
        res = record.result
        assert res is not None
        grouped[res.algo][res.game][res.variant].append(res)
    for games in grouped.values():
        for variants in games.values():
            for results in variants.values():
                results.sort(key=lambda r: r.seed)
    return grouped


def run_score(result: RunResult) -> float:
    """A run's score: the mean of its final-evaluation episode returns."""
    return float(np.mean(result.final_returns))


def _run_auc(result: RunResult) -> float | None:
    if not result.curve_steps:
        return None
    try:
        return stats.curve_auc(result.curve_steps, result.curve_returns)
    except ValueError as e:
        raise ValueError(
            f"learning curve of {result.algo}/{result.game}/{result.variant} "
            f"seed {result.seed}: {e}"
        ) from e


def _check_budgets(algo: str, game: str, variants: dict[str, list[RunResult]], notes: list[str]):
    results = [r for rs in variants.values() for r in rs]
    targets = sorted({r.timesteps for r in results})
    if len(targets) > 1:
        detail = ", ".join(
            f"{v} s{r.seed}: {r.timesteps}" for v, rs in sorted(variants.items()) for r in rs
        )
        notes.append(f"{algo}/{game}: runs have different target timesteps ({detail}).")
    short = [r for r in results if r.steps_done < r.timesteps]
    if short:
        detail = ", ".join(f"{r.variant} s{r.seed}: {r.steps_done}/{r.timesteps}" for r in short)
        notes.append(f"{algo}/{game}: runs trained fewer steps than their target ({detail}).")


def _compare_rows(
    algo: str,
    per_game: dict[str, dict[str, np.ndarray]],
    metric: str,
    settings: Settings,
    rng: np.random.Generator,
    notes: list[str],
) -> list[ComparisonRow]:
    rows = []
    b_name, t_name = settings.baseline, settings.treatment
    for game, by_variant in sorted(per_game.items()):
        b, t = by_variant.get(b_name), by_variant.get(t_name)
        if b is None or t is None or len(b) == 0 or len(t) == 0:
            lacking = " and ".join(
                n for n, x in ((b_name, b), (t_name, t)) if x is None or not len(x)
            )
            notes.append(f"{algo}/{game}: no {metric} comparison: no usable run of {lacking}.")
            continue
        comp = stats.compare(b, t, rng, settings.reps)
        note = ""
        if len(b) < 2 or len(t) < 2:
            note = f"fewer than 2 seeds per variant ({b_name} n={len(b)}, {t_name} n={len(t)})"
        rows.append(
            ComparisonRow(
                algo,
                game,
                metric,
                b_name,
                t_name,
                float(np.mean(b)),
                float(np.mean(t)),
                comp,
                note=note,
            )
        )
    welch_adj = stats.holm([r.comparison.welch_p for r in rows])
    mw_adj = stats.holm([r.comparison.mannwhitney_p for r in rows])
    for row, pw, pm in zip(rows, welch_adj, mw_adj, strict=True):
        row.welch_p_holm, row.mannwhitney_p_holm = float(pw), float(pm)
        row.verdict = stats.verdict(row.comparison.diff, row.welch_p_holm, settings.alpha)
    return rows


def _align_curves(results: list[RunResult]) -> tuple[np.ndarray, np.ndarray, bool]:
    """Runs' mean evaluation returns on common steps; interpolated if their steps differ."""
    curves = [
        (np.asarray(r.curve_steps, float), np.array([np.mean(x) for x in r.curve_returns]))
        for r in results
    ]
    first = curves[0][0]
    if all(len(s) == len(first) and np.array_equal(s, first) for s, _ in curves):
        return first, np.vstack([m for _, m in curves]), False
    lo = max(s[0] for s, _ in curves)
    hi = min(s[-1] for s, _ in curves)
    longest = max((s for s, _ in curves), key=len)
    grid = longest[(longest >= lo) & (longest <= hi)]
    if grid.size == 0:
        grid = np.array([lo])
    return grid, np.vstack([np.interp(grid, s, m) for s, m in curves]), True


def _curves(
    algo: str, game: str, variants: dict[str, list[RunResult]], settings: Settings, notes: list[str]
) -> dict[str, CurveData]:
    out = {}
    for variant, results in sorted(variants.items()):
        with_curve = [r for r in results if r.curve_steps]
        if len(with_curve) < len(results):
            missing = [f"s{r.seed}" for r in results if not r.curve_steps]
            notes.append(
                f"{algo}/{game}/{variant}: no learning curve in {', '.join(missing)}; "
                "left out of the curve plot and the AUC comparison."
            )
        if not with_curve:
            continue
        steps, matrix, interpolated = _align_curves(with_curve)
        if interpolated:
            notes.append(
                f"{algo}/{game}/{variant}: runs were evaluated at different steps; curves "
                "were linearly interpolated onto common steps for the plot."
            )
        # The bands are only drawn, not tested: 2000 resamples are plenty.
        mean, ci = aggregate.curve_band(matrix, min(settings.reps, 2000), settings.seed)
        out[variant] = CurveData(steps, mean, ci, len(with_curve))
    return out


def _aggregate_algo(
    algo: str,
    games: dict[str, dict[str, list[RunResult]]],
    analysis: Analysis,
) -> None:
    s = analysis.settings
    b_name, t_name = s.baseline, s.treatment
    agg_games = sorted(g for g, v in games.items() if v.get(b_name) and v.get(t_name))
    if not agg_games:
        analysis.notes.append(
            f"{algo}: no game has runs of both {b_name} and {t_name}; no aggregate metrics."
        )
        return
    # Games with a single seed of either variant would cut every game of the aggregate down to
    # one seed (rliable needs as many runs per game), so they are left out when any game has
    # 2 or more seeds of both.
    tested = [g for g in agg_games if min(len(games[g][b_name]), len(games[g][t_name])) >= 2]
    if tested and len(tested) < len(agg_games):
        one_seed = sorted(set(agg_games) - set(tested))
        analysis.notes.append(
            f"{algo}: games {', '.join(one_seed)} have fewer than 2 seeds of {b_name} or "
            f"{t_name} and are left out of the aggregate metrics."
        )
        agg_games = tested
    others = sorted({v for g in agg_games for v in games[g]} - {b_name, t_name})
    variants = [b_name, t_name] + [v for v in others if all(games[g].get(v) for g in agg_games)]
    left_out = [v for v in others if v not in variants]
    if left_out:
        analysis.notes.append(
            f"{algo}: variants {', '.join(left_out)} are not run on every game of the "
            "aggregate and are left out of it."
        )
    left_out_games = sorted(g for g in games if not (games[g].get(b_name) and games[g].get(t_name)))
    if left_out_games:
        analysis.notes.append(
            f"{algo}: games {', '.join(left_out_games)} lack runs of {b_name} or {t_name} and "
            "are left out of the aggregate metrics."
        )
    normalised: dict[str, dict[str, np.ndarray]] = {}
    method: dict[str, str] = {}
    for g in agg_games:
        first = games[g][variants[0]][0]
        raw = {v: np.array([run_score(r) for r in games[g][v]]) for v in variants}
        normalised[g], method[g] = aggregate.normalize_game(g, first.is_atari, raw)
    # rliable wants a (runs x games) matrix per variant: use the first k seeds of every game,
    # k = the fewest seeds any game has for that variant.
    matrices = {}
    for v in variants:
        k = min(len(normalised[g][v]) for g in agg_games)
        dropped = [g for g in agg_games if len(normalised[g][v]) > k]
        if dropped:
            analysis.notes.append(
                f"{algo}/{v}: aggregates use the first {k} seeds of every game (the fewest any "
                f"game has); extra seeds of {', '.join(dropped)} are not in the aggregate."
            )
        matrices[v] = np.column_stack([normalised[g][v][:k] for g in agg_games])
    points, intervals = aggregate.aggregate_estimates(matrices, s.reps, s.seed)
    for v in variants:
        for i, name in enumerate(aggregate.AGGREGATE_METRICS):
            analysis.aggregates.append(
                AggregateRow(
                    algo,
                    v,
                    name,
                    float(points[v][i]),
                    float(intervals[v][0, i]),
                    float(intervals[v][1, i]),
                    matrices[v].shape[0],
                    len(agg_games),
                )
            )
    pairs = [(v, b_name) for v in variants if v != b_name]
    # rliable's probability of improvement runs one Mann-Whitney U per game per resample
    # (~4 ms each); like rliable's own examples, cap its resamples (and the profiles') at 2000.
    small_reps = min(s.reps, 2000)
    poi_points, poi_intervals = aggregate.probability_of_improvement(
        matrices, pairs, small_reps, s.seed
    )
    for x, y in pairs:
        key = f"{x},{y}"
        lo, hi = poi_intervals[key]
        p, exact = stats.stratified_permutation_p(
            list(matrices[x].T), list(matrices[y].T), np.random.default_rng(s.seed)
        )
        analysis.poi.append(
            PoiRow(algo, x, y, poi_points[key], float(lo), float(hi), len(agg_games), p, exact)
        )
    all_scores = np.concatenate([m.ravel() for m in matrices.values()])
    tau = np.linspace(min(0.0, float(all_scores.min())), max(1.0, float(all_scores.max())), 101)
    profiles, profile_cis = aggregate.performance_profiles(matrices, tau, small_reps, s.seed)
    analysis.algo_aggregates[algo] = AlgoAggregate(
        agg_games,
        method,
        matrices,
        points,
        intervals,
        poi_points,
        poi_intervals,
        tau,
        profiles,
        profile_cis,
    )


def analyse(runs: SweepRuns, settings: Settings) -> Analysis:
    """All tables and plot data of the report.

    :raises ValueError: with a user-facing message when the runs cannot be compared.
    """
    present = variants_present(runs)
    for role, name in (("baseline", settings.baseline), ("treatment", settings.treatment)):
        if name not in present:
            raise ValueError(
                f"{role} variant {name!r} has no complete run in "
                f"{', '.join(map(str, runs.roots))}; variants present: "
                f"{', '.join(present) or 'none'} (choose with --baseline/--treatment)"
            )
    if settings.baseline == settings.treatment:
        raise ValueError("--baseline and --treatment must be different variants")
    analysis = Analysis(settings=settings, runs=runs)
    rng = np.random.default_rng(settings.seed)
    grouped = _group(runs)
    analysis.algos = sorted(grouped)
    for algo in analysis.algos:
        games = grouped[algo]
        final: dict[str, dict[str, np.ndarray]] = {}
        auc: dict[str, dict[str, np.ndarray]] = {}
        for game, variants in sorted(games.items()):
            _check_budgets(algo, game, variants, analysis.notes)
            final[game], auc[game] = {}, {}
            for variant, results in sorted(variants.items()):
                scores = np.array([run_score(r) for r in results])
                final[game][variant] = scores
                analysis.summaries.append(
                    SummaryRow(
                        algo,
                        game,
                        variant,
                        FINAL,
                        [r.seed for r in results],
                        stats.summarize(scores, rng, settings.reps),
                    )
                )
                with_auc = [(r.seed, a) for r in results if (a := _run_auc(r)) is not None]
                if with_auc:
                    auc[game][variant] = np.array([a for _, a in with_auc])
                    analysis.summaries.append(
                        SummaryRow(
                            algo,
                            game,
                            variant,
                            AUC,
                            [sd for sd, _ in with_auc],
                            stats.summarize(auc[game][variant], rng, settings.reps),
                        )
                    )
            analysis.curves[(algo, game)] = _curves(algo, game, variants, settings, analysis.notes)
        comparisons = _compare_rows(algo, final, FINAL, settings, rng, analysis.notes)
        if not comparisons:
            analysis.notes.append(
                f"{algo}: no game has runs of both {settings.baseline} and {settings.treatment}."
            )
        analysis.comparisons += comparisons
        analysis.auc_comparisons += _compare_rows(algo, auc, AUC, settings, rng, analysis.notes)
        _aggregate_algo(algo, games, analysis)
    return analysis
