"""Write an :class:`~coordrl.analysis.comparison.Analysis` as a report directory: ``report.md``, CSV
tables and PNG plots; and format its main table for the terminal."""

from __future__ import annotations

import csv
import io
import math
import os
import re
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

from coordrl.analysis import plots, stats
from coordrl.analysis.aggregate import AGGREGATE_METRICS, MIN_MAX
from coordrl.analysis.comparison import AUC, FINAL, Analysis, ComparisonRow, PoiRow
from coordrl.files import atomic_write_text

REPORT_FILE = "report.md"
RUNS_CSV = "runs.csv"
SUMMARY_CSV = "summary.csv"
COMPARISON_CSV = "comparison.csv"
AUC_COMPARISON_CSV = "auc_comparison.csv"
AGGREGATES_CSV = "aggregates.csv"
POI_CSV = "probability_of_improvement.csv"


def _num(x: float, digits: int = 4) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    if isinstance(x, float) and math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return f"{x:.{digits}g}"


def _p(x: float) -> str:
    return _num(x, 3)


def _ci(low: float, high: float) -> str:
    if math.isnan(low):
        return "–"
    return f"[{_num(low)}, {_num(high)}]"


def _perm_p(row: PoiRow) -> str:
    return f"{_p(row.permutation_p)} ({'exact' if row.permutation_exact else 'sampled'})"


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "-", name)


def _write_csv(path: Path, header: list[str], rows: list[list]) -> None:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow(["" if isinstance(v, float) and math.isnan(v) else v for v in row])
    atomic_write_text(path, buf.getvalue())


def _md_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


_COMPARISON_HEADER = [
    "algo",
    "game",
    "metric",
    "baseline",
    "treatment",
    "n_baseline",
    "n_treatment",
    "mean_baseline",
    "mean_treatment",
    "diff",
    "diff_ci_low",
    "diff_ci_high",
    "welch_p",
    "welch_p_holm",
    "mannwhitney_p",
    "mannwhitney_p_holm",
    "hedges_g",
    "verdict",
    "note",
]


def _comparison_csv_rows(rows: list[ComparisonRow]) -> list[list]:
    out = []
    for r in rows:
        c = r.comparison
        out.append(
            [
                r.algo,
                r.game,
                r.metric,
                r.baseline,
                r.treatment,
                c.n_baseline,
                c.n_treatment,
                r.mean_baseline,
                r.mean_treatment,
                c.diff,
                c.diff_ci_low,
                c.diff_ci_high,
                c.welch_p,
                r.welch_p_holm,
                c.mannwhitney_p,
                r.mannwhitney_p_holm,
                c.hedges_g,
                r.verdict,
                r.note,
            ]
        )
    return out


def write_tables(analysis: Analysis, out_dir: Path) -> list[Path]:
    """Write the CSV tables; returns their paths."""
    runs = analysis.runs
    run_rows = [
        [r.name, r.status, r.algo, r.game, r.variant, r.seed, str(r.path or ""), r.reason]
        for r in runs.complete + runs.not_usable
    ]
    _write_csv(
        out_dir / RUNS_CSV,
        ["run", "status", "algo", "game", "variant", "seed", "path", "reason"],
        run_rows,
    )
    _write_csv(
        out_dir / SUMMARY_CSV,
        [
            "algo",
            "game",
            "variant",
            "metric",
            "n",
            "seeds",
            "mean",
            "std",
            "median",
            "ci_low",
            "ci_high",
        ],
        [
            [
                r.algo,
                r.game,
                r.variant,
                r.metric,
                r.summary.n,
                " ".join(map(str, r.seeds)),
                r.summary.mean,
                r.summary.std,
                r.summary.median,
                r.summary.ci_low,
                r.summary.ci_high,
            ]
            for r in analysis.summaries
        ],
    )
    _write_csv(
        out_dir / COMPARISON_CSV, _COMPARISON_HEADER, _comparison_csv_rows(analysis.comparisons)
    )
    _write_csv(
        out_dir / AUC_COMPARISON_CSV,
        _COMPARISON_HEADER,
        _comparison_csv_rows(analysis.auc_comparisons),
    )
    _write_csv(
        out_dir / AGGREGATES_CSV,
        [
            "algo",
            "variant",
            "metric",
            "estimate",
            "ci_low",
            "ci_high",
            "n_runs_per_game",
            "n_games",
            "normalisation",
        ],
        [
            [
                a.algo,
                a.variant,
                a.metric,
                a.estimate,
                a.ci_low,
                a.ci_high,
                a.n_runs,
                a.n_games,
                _normalisation_label(analysis, a.algo),
            ]
            for a in analysis.aggregates
        ],
    )
    _write_csv(
        out_dir / POI_CSV,
        [
            "algo",
            "x",
            "y",
            "probability_x_better",
            "ci_low",
            "ci_high",
            "n_games",
            "permutation_p",
            "permutation_exact",
        ],
        [
            [p.algo, p.x, p.y, p.estimate, p.ci_low, p.ci_high, p.n_games]
            + [p.permutation_p, p.permutation_exact]
            for p in analysis.poi
        ],
    )
    names = [RUNS_CSV, SUMMARY_CSV, COMPARISON_CSV, AUC_COMPARISON_CSV, AGGREGATES_CSV, POI_CSV]
    return [out_dir / n for n in names]


def _normalisation_label(analysis: Analysis, algo: str) -> str:
    agg = analysis.algo_aggregates.get(algo)
    if agg is None:
        return ""
    methods = set(agg.normalisation.values())
    if len(methods) == 1:
        (method,) = methods
        return "min-max normalised" if method == MIN_MAX else method
    return "normalised (" + ", ".join(sorted(methods)) + ")"


def write_plots(analysis: Analysis, out_dir: Path) -> dict[str, list[Path]]:
    """Write the PNG plots; returns algo -> paths."""
    all_variants = sorted({r.variant for r in analysis.summaries})
    colors = plots.variant_colors(all_variants)
    written: dict[str, list[Path]] = {}
    for algo in analysis.algos:
        paths = []
        curves = {
            game: {v: (c.steps, c.mean, c.ci, c.n_runs) for v, c in by_variant.items()}
            for (a, game), by_variant in analysis.curves.items()
            if a == algo and by_variant
        }
        if curves:
            path = out_dir / f"curves_{_safe(algo)}.png"
            plots.plot_learning_curves(curves, colors, f"{algo} learning curves", path)
            paths.append(path)
        agg = analysis.algo_aggregates.get(algo)
        if agg is not None:
            label = _normalisation_label(analysis, algo) + " score"
            path = out_dir / f"aggregates_{_safe(algo)}.png"
            plots.plot_aggregates(agg.points, agg.intervals, colors, label, path)
            paths.append(path)
            path = out_dir / f"probability_of_improvement_{_safe(algo)}.png"
            plots.plot_probability_of_improvement(agg.poi_points, agg.poi_intervals, path)
            paths.append(path)
            path = out_dir / f"performance_profile_{_safe(algo)}.png"
            plots.plot_performance_profile(
                agg.tau, agg.profiles, agg.profile_cis, colors, label, path
            )
            paths.append(path)
        written[algo] = paths
    return written


def comparison_table(
    rows: list[ComparisonRow], unit: str = "return"
) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the main comparison table (markdown/terminal)."""
    header = [
        "algo",
        "game",
        "n (b/t)",
        f"baseline mean {unit}",
        f"treatment mean {unit}",
        "diff [95% CI]",
        "Welch p",
        "Holm p",
        "MWU p",
        "Hedges g",
        "verdict",
    ]
    body = []
    for r in rows:
        c = r.comparison
        body.append(
            [
                r.algo,
                r.game,
                f"{c.n_baseline}/{c.n_treatment}",
                _num(r.mean_baseline),
                _num(r.mean_treatment),
                f"{_num(c.diff)} {_ci(c.diff_ci_low, c.diff_ci_high)}",
                _p(c.welch_p),
                _p(r.welch_p_holm),
                _p(c.mannwhitney_p),
                _num(c.hedges_g, 3),
                r.verdict + (f" ({r.note})" if r.note else ""),
            ]
        )
    return header, body


def terminal_table(analysis: Analysis) -> str:
    """The main table (final returns, treatment vs baseline per game) as plain text."""
    header, body = comparison_table(analysis.comparisons)
    if not body:
        return "no game has runs of both variants: nothing to compare"
    widths = [max(len(str(x)) for x in col) for col in zip(header, *body, strict=True)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    lines = [fmt.format(*header), fmt.format(*("-" * w for w in widths))]
    lines += [fmt.format(*row) for row in body]
    s = analysis.settings
    title = (
        f"{s.treatment} vs {s.baseline}: final evaluation return per game "
        f"(verdict from Holm-adjusted Welch p at alpha={s.alpha})"
    )
    return title + "\n" + "\n".join(lines)


def _method_section(analysis: Analysis) -> str:
    s = analysis.settings
    return f"""## Method

* A run's **score** is the mean of its final-evaluation episode returns (full games,
  unclipped). Its **AUC** is the area under its learning curve (mean evaluation return
  against training steps, trapezoid rule) divided by the step span: the mean return over
  training, a sample-efficiency measure in units of return.
* Per game and variant: number of seeds, mean, standard deviation (ddof=1), median and a 95%
  percentile-bootstrap CI of the mean ({s.reps} resamples, seed {s.seed}; with few
  seeds percentile intervals are narrower than t intervals, so read them with the p-values).
* Per game, **{s.treatment}** (treatment) minus **{s.baseline}** (baseline): difference of
  means with a 95% bootstrap CI (seeds of each variant resampled independently), Welch's
  t-test p, Mann-Whitney U p (two-sided), Hedges' g (pooled-SD standardised difference times
  1 - 3/(4(n_b+n_t)-9)).
* p-values are Holm-Bonferroni adjusted across the games of one algorithm (final returns and
  AUC are separate families). **Verdict**: `better` / `worse` when the Holm-adjusted **Welch**
  p < {s.alpha} (sign of the difference), otherwise `no significant difference`; games with
  fewer than 2 seeds per variant get `no test`. Mann-Whitney U and Hedges' g are reported for
  robustness and effect size; they do not change the verdict.
* Across games (rliable): IQM, median, mean and optimality gap (gamma = 1) of normalised
  scores with 95% stratified-bootstrap CIs, probability of improvement P({s.treatment} >
  {s.baseline}) and performance profiles (these two, and the learning-curve bands, with at
  most 2000 resamples). With few runs per game, bootstrap CIs are narrow; the probability of
  improvement is therefore also tested by stratified permutation: under the null hypothesis
  that within each game the two variants' runs are exchangeable, p is the share of
  relabellings (runs relabelled within their game) whose P(X > Y) is at least as far from
  0.5 as the observed one; every relabelling when there are at most 5,000,000, else 10,000
  random ones. Atari games are human-normalised with the DQN Zoo random/human table;
  MinAtar games with fixed references (0 = a random policy measured here, 1 = the MinAtar
  paper's DQN at 5M frames; coordrl/analysis/minatar_scores.py); other environments are
  min-max normalised over all runs of that environment (and algorithm), so 0 = the worst run
  and 1 = the best run of that game. Aggregates need the
  same number of runs per game: each variant uses the first k seeds of every game, k = the
  fewest seeds any game has (games with one seed are left out when others have more).
"""


def _runs_section(analysis: Analysis) -> str:
    runs = analysis.runs
    counts = Counter(r.status for r in runs.complete + runs.not_usable)
    counted = ", ".join(f"{k}: {v}" for k, v in sorted(counts.items()))
    if runs.parts:
        listed = "\n".join(
            f"* `{part.root}` (manifest.json: {'present' if part.manifest else 'absent'})"
            for part in runs.parts
        )
        parts = [f"## Runs\n\nSweep directories:\n\n{listed}", f"Runs: {counted}"]
    else:
        parts = [f"## Runs\n\nSweep directory: `{runs.root}`"]
        parts.append(
            ("manifest.json: present" if runs.manifest is not None else "manifest.json: absent")
            + " — "
            + counted
        )
    if runs.earlier_failures:
        kept = ", ".join(f"`{root / 'failed'}`" for root in runs.roots)
        parts.append(
            f"{len(runs.earlier_failures)} earlier failed attempt(s) of retried runs are kept in "
            f"{kept} and not used."
        )
    if runs.not_usable:
        parts.append(
            "**Excluded runs** (not in any statistic below):\n\n"
            + _md_table(
                ["run", "status", "reason", "path"],
                [
                    [r.name, r.status, r.reason, f"`{r.path}`" if r.path else "–"]
                    for r in runs.not_usable
                ],
            )
        )
    else:
        parts.append("No failed, interrupted or missing runs.")
    return "\n\n".join(parts) + "\n"


def _algo_section(analysis: Analysis, algo: str, pngs: list[Path]) -> str:
    s = analysis.settings
    parts = [f"## {algo}"]
    rows = [r for r in analysis.comparisons if r.algo == algo]
    if rows:
        header, body = comparison_table(rows)
        parts.append(
            f"### {s.treatment} vs {s.baseline}: final return\n\n" + _md_table(header, body)
        )
    auc_rows = [r for r in analysis.auc_comparisons if r.algo == algo]
    if auc_rows:
        header, body = comparison_table(auc_rows, unit="AUC")
        parts.append(
            f"### {s.treatment} vs {s.baseline}: sample efficiency ({AUC})\n\n"
            + _md_table(header, body)
        )
    for metric in (FINAL, AUC):
        summ = [r for r in analysis.summaries if r.algo == algo and r.metric == metric]
        if summ:
            parts.append(
                f"### Per-variant summary: {metric}\n\n"
                + _md_table(
                    ["game", "variant", "n", "seeds", "mean", "std", "median", "95% CI of mean"],
                    [
                        [
                            r.game,
                            r.variant,
                            r.summary.n,
                            " ".join(map(str, r.seeds)),
                            _num(r.summary.mean),
                            _num(r.summary.std),
                            _num(r.summary.median),
                            _ci(r.summary.ci_low, r.summary.ci_high),
                        ]
                        for r in summ
                    ],
                )
            )
    agg = analysis.algo_aggregates.get(algo)
    if agg is not None:
        norm = ", ".join(f"{g}: {m}" for g, m in sorted(agg.normalisation.items()))
        rows_a = [a for a in analysis.aggregates if a.algo == algo]
        parts.append(
            f"### Aggregate over {len(agg.games)} game(s) (rliable)\n\nNormalisation: {norm}.\n\n"
            + _md_table(
                ["variant", "runs/game"] + list(AGGREGATE_METRICS),
                [
                    [v, next(a.n_runs for a in rows_a if a.variant == v)]
                    + [
                        f"{_num(a.estimate, 3)} {_ci(a.ci_low, a.ci_high)}"
                        for m in AGGREGATE_METRICS
                        for a in rows_a
                        if a.variant == v and a.metric == m
                    ]
                    for v in agg.matrices
                ],
            )
        )
        poi = [p for p in analysis.poi if p.algo == algo]
        parts.append(
            "Probability of improvement (P(X > Y) over runs, averaged over games; permutation p:"
            " X and Y relabelled within each game, two-sided):\n\n"
            + _md_table(
                ["X", "Y", "P(X > Y)", "95% CI", "permutation p"],
                [
                    [p.x, p.y, _num(p.estimate, 3), _ci(p.ci_low, p.ci_high), _perm_p(p)]
                    for p in poi
                ],
            )
        )
    if pngs:
        parts.append("### Plots\n\n" + "\n\n".join(f"![{p.stem}]({p.name})" for p in pngs))
    return "\n\n".join(parts) + "\n"


def write_report(analysis: Analysis, out_dir: str | os.PathLike, command: str = "") -> list[Path]:
    """Write the whole report directory; returns every file written."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = write_tables(analysis, out)
    pngs = write_plots(analysis, out)
    s = analysis.settings
    now = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    sections = [
        (
            f"# CoordConv comparison: {s.treatment} vs {s.baseline}"
            if s.group_by == "variant"
            else f"# Comparison by {s.group_by}: {s.treatment} vs {s.baseline} (the variant "
            f"column names the {s.group_by})"
        )
        + f"\n\nGenerated {now}"
        + (f" by `{command}`" if command else "")
        + f". alpha = {s.alpha}, bootstrap resamples = {s.reps}, bootstrap seed = {s.seed}.\n",
        _verdict_overview(analysis),
        _runs_section(analysis),
    ]
    if analysis.notes:
        sections.append("## Notes\n\n" + "\n".join(f"* {n}" for n in analysis.notes) + "\n")
    sections += [_algo_section(analysis, algo, pngs.get(algo, [])) for algo in analysis.algos]
    sections.append(_method_section(analysis))
    sections.append(
        "## Files\n\n"
        + "\n".join(f"* `{p.name}`" for p in files + [p for ps in pngs.values() for p in ps])
        + "\n"
    )
    atomic_write_text(out / REPORT_FILE, "\n".join(sections))
    return [out / REPORT_FILE, *files, *(p for ps in pngs.values() for p in ps)]


def _verdict_overview(analysis: Analysis) -> str:
    s = analysis.settings
    lines = ["## Answer"]
    for algo in analysis.algos:
        for label, rows in (
            ("final return", analysis.comparisons),
            ("AUC", analysis.auc_comparisons),
        ):
            counts = Counter(r.verdict for r in rows if r.algo == algo)
            if not counts:
                continue
            order = [stats.BETTER, stats.WORSE, stats.NO_DIFFERENCE, stats.NO_TEST]
            text = ", ".join(f"{counts[v]} {v}" for v in order if counts[v])
            lines.append(f"* **{algo}**, {label}: {s.treatment} vs {s.baseline} per game: {text}.")
        poi = [p for p in analysis.poi if p.algo == algo and p.x == s.treatment]
        for p in poi:
            lines.append(
                f"* **{algo}**: P({p.x} > {p.y}) = {_num(p.estimate, 3)} "
                f"{_ci(p.ci_low, p.ci_high)} over {p.n_games} game(s); stratified permutation "
                f"test p = {_perm_p(p)}."
            )
    return "\n".join(lines) + "\n"
