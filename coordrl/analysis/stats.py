"""Per-game statistics for comparing two variants: small pure functions over numpy arrays.

Every function takes plain 1-D arrays of per-seed scores (one number per training run) and
can be checked by hand. Confidence intervals are 95% percentile bootstraps computed with
:func:`scipy.stats.bootstrap` from a caller-supplied :class:`numpy.random.Generator`, so
results are reproducible. Aggregates across games (IQM, probability of improvement ...) and
their bootstrap CIs come from rliable (see :mod:`coordrl.analysis.aggregate`); the permutation
test of the probability of improvement (:func:`stratified_permutation_p`) is here.

Conventions (higher return is better):

* ``diff = mean(treatment) - mean(baseline)``.
* The **verdict** of a game is driven by the Holm-adjusted Welch t-test p-value: ``better``
  if ``p_holm < alpha`` and ``diff > 0``, ``worse`` if ``p_holm < alpha`` and ``diff < 0``,
  else ``no significant difference``. Mann-Whitney U and Hedges' g are reported alongside
  as a robustness check and an effect size; they do not change the verdict.
* Area under the learning curve (:func:`curve_auc`) is normalised by the step span, so it is
  the *mean return over training* and has the units of a return.
"""

from __future__ import annotations

import inspect
import itertools
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import scipy.integrate
import scipy.stats

BETTER = "better"
WORSE = "worse"
NO_DIFFERENCE = "no significant difference"
NO_TEST = "no test"

# scipy >= 1.15 takes the generator as ``rng``; older releases call it ``random_state``.
_RNG_KEYWORD = (
    "rng" if "rng" in inspect.signature(scipy.stats.bootstrap).parameters else "random_state"
)


def _as_1d(x: Sequence[float] | np.ndarray, name: str = "x") -> np.ndarray:
    arr = np.asarray(x, dtype=float)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array of per-seed scores, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or infinite values: {arr.tolist()}")
    return arr


@dataclass(frozen=True)
class Summary:
    """Summary of one variant's per-seed scores on one game.

    :param n: number of seeds.
    :param mean: sample mean.
    :param std: sample standard deviation (ddof=1; NaN when n < 2).
    :param median: sample median.
    :param ci_low: lower end of the 95% percentile-bootstrap CI of the mean (NaN when n < 2).
    :param ci_high: upper end of that CI.
    """

    n: int
    mean: float
    std: float
    median: float
    ci_low: float
    ci_high: float


@dataclass(frozen=True)
class Comparison:
    """Treatment versus baseline on one game.

    :param n_baseline: seeds of the baseline.
    :param n_treatment: seeds of the treatment.
    :param diff: ``mean(treatment) - mean(baseline)``.
    :param diff_ci_low: lower end of the 95% bootstrap CI of ``diff`` (seeds of each variant
        resampled independently).
    :param diff_ci_high: upper end of that CI.
    :param welch_p: two-sided Welch t-test p-value (unadjusted).
    :param mannwhitney_p: two-sided Mann-Whitney U p-value (unadjusted).
    :param hedges_g: bias-corrected standardised mean difference (see :func:`hedges_g`).
    """

    n_baseline: int
    n_treatment: int
    diff: float
    diff_ci_low: float
    diff_ci_high: float
    welch_p: float
    mannwhitney_p: float
    hedges_g: float


def bootstrap_ci(
    x: Sequence[float] | np.ndarray,
    rng: np.random.Generator,
    n_resamples: int = 5000,
    confidence: float = 0.95,
) -> tuple[float, float]:
    """Percentile-bootstrap confidence interval of the mean of ``x``.

    :param x: per-seed scores.
    :param rng: random generator (seed it for reproducible intervals).
    :param n_resamples: bootstrap resamples.
    :param confidence: coverage of the interval.
    :return: ``(low, high)``; ``(nan, nan)`` when ``len(x) < 2`` (no spread to resample).
    """
    arr = _as_1d(x)
    if arr.size < 2:
        return math.nan, math.nan
    res = scipy.stats.bootstrap(
        (arr,),
        np.mean,
        n_resamples=n_resamples,
        confidence_level=confidence,
        method="percentile",
        **{_RNG_KEYWORD: rng},
    )
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def summarize(
    x: Sequence[float] | np.ndarray, rng: np.random.Generator, n_resamples: int = 5000
) -> Summary:
    """n, mean, std (ddof=1), median and the 95% bootstrap CI of the mean of ``x``.

    :param x: per-seed scores (at least one).
    :param rng: random generator for the bootstrap.
    :param n_resamples: bootstrap resamples.
    """
    arr = _as_1d(x)
    if arr.size == 0:
        raise ValueError("cannot summarise an empty array of scores")
    low, high = bootstrap_ci(arr, rng, n_resamples)
    std = float(np.std(arr, ddof=1)) if arr.size > 1 else math.nan
    return Summary(int(arr.size), float(arr.mean()), std, float(np.median(arr)), low, high)


def diff_of_means_ci(
    baseline: Sequence[float] | np.ndarray,
    treatment: Sequence[float] | np.ndarray,
    rng: np.random.Generator,
    n_resamples: int = 5000,
    confidence: float = 0.95,
) -> tuple[float, float]:
    """Percentile-bootstrap CI of ``mean(treatment) - mean(baseline)``, resampling the seeds of
    each variant independently. ``(nan, nan)`` when either sample has fewer than 2 seeds."""
    b, t = _as_1d(baseline, "baseline"), _as_1d(treatment, "treatment")
    if b.size < 2 or t.size < 2:
        return math.nan, math.nan

    def stat(bb: np.ndarray, tt: np.ndarray, axis: int = -1) -> np.ndarray:
        return np.mean(tt, axis=axis) - np.mean(bb, axis=axis)

    res = scipy.stats.bootstrap(
        (b, t),
        stat,
        n_resamples=n_resamples,
        confidence_level=confidence,
        method="percentile",
        vectorized=True,
        **{_RNG_KEYWORD: rng},
    )
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def welch_p(
    baseline: Sequence[float] | np.ndarray, treatment: Sequence[float] | np.ndarray
) -> float:
    """Two-sided Welch t-test p-value (:func:`scipy.stats.ttest_ind`, ``equal_var=False``).

    When both samples are constant the t statistic is undefined; we return 1.0 if the two
    constants are equal (no evidence of a difference) and 0.0 if they differ.
    """
    b, t = _as_1d(baseline, "baseline"), _as_1d(treatment, "treatment")
    if b.size < 2 or t.size < 2:
        raise ValueError("Welch's t-test needs at least 2 seeds per variant")
    if np.ptp(b) == 0 and np.ptp(t) == 0:
        return 1.0 if b[0] == t[0] else 0.0
    with warnings.catch_warnings():
        # scipy warns about precision loss when one sample is (nearly) constant; the
        # p-value is still the right limit.
        warnings.simplefilter("ignore", RuntimeWarning)
        return float(scipy.stats.ttest_ind(t, b, equal_var=False).pvalue)


def mannwhitney_p(
    baseline: Sequence[float] | np.ndarray, treatment: Sequence[float] | np.ndarray
) -> float:
    """Two-sided Mann-Whitney U p-value (:func:`scipy.stats.mannwhitneyu`, scipy's default
    method: exact for small samples without ties, normal approximation otherwise)."""
    b, t = _as_1d(baseline, "baseline"), _as_1d(treatment, "treatment")
    if b.size < 1 or t.size < 1:
        raise ValueError("Mann-Whitney U needs at least 1 seed per variant")
    if np.ptp(np.concatenate([b, t])) == 0:
        return 1.0  # all values tied: scipy returns NaN, there is no evidence of a difference
    return float(scipy.stats.mannwhitneyu(t, b, alternative="two-sided").pvalue)


def hedges_g(
    baseline: Sequence[float] | np.ndarray, treatment: Sequence[float] | np.ndarray
) -> float:
    """Hedges' g: Cohen's d with the pooled standard deviation and the small-sample correction.

    ``s_p = sqrt(((n_b - 1) s_b^2 + (n_t - 1) s_t^2) / (n_b + n_t - 2))`` (``s`` with ddof=1),
    ``d = (mean_t - mean_b) / s_p`` and ``g = J d`` with Hedges' (1981) approximation
    ``J = 1 - 3 / (4 (n_b + n_t) - 9)``. Positive g means the treatment scores higher.
    When ``s_p == 0``: 0.0 if the means are equal, else +/-inf.
    """
    b, t = _as_1d(baseline, "baseline"), _as_1d(treatment, "treatment")
    nb, nt = b.size, t.size
    if nb < 2 or nt < 2:
        raise ValueError("Hedges' g needs at least 2 seeds per variant")
    diff = float(t.mean() - b.mean())
    pooled_var = ((nb - 1) * b.var(ddof=1) + (nt - 1) * t.var(ddof=1)) / (nb + nt - 2)
    if pooled_var == 0:
        return 0.0 if diff == 0 else math.copysign(math.inf, diff)
    correction = 1.0 - 3.0 / (4.0 * (nb + nt) - 9.0)
    return correction * diff / math.sqrt(pooled_var)


def holm(p_values: Sequence[float] | np.ndarray) -> np.ndarray:
    """Holm-Bonferroni adjusted p-values (same order as the input).

    Written by hand because statsmodels is not a dependency and scipy only ships the
    Benjamini-Hochberg/Yekutieli FDR adjustment (``scipy.stats.false_discovery_control``),
    which controls a different error rate. Holm controls the family-wise error rate:
    sort ascending, multiply the i-th smallest (0-based) by ``m - i``, take the running
    maximum, cap at 1. NaN entries (no test) are left NaN and do not count towards ``m``.
    """
    p = np.asarray(p_values, dtype=float)
    adjusted = np.full_like(p, np.nan)
    valid = np.flatnonzero(~np.isnan(p))
    m = valid.size
    order = valid[np.argsort(p[valid], kind="stable")]
    scaled = p[order] * (m - np.arange(m))
    adjusted[order] = np.minimum(1.0, np.maximum.accumulate(scaled))
    return adjusted


def verdict(diff: float, p_adjusted: float, alpha: float = 0.05) -> str:
    """``better`` / ``worse`` / ``no significant difference`` from the Holm-adjusted Welch p;
    ``no test`` when the p-value is NaN (fewer than 2 seeds)."""
    if math.isnan(p_adjusted):
        return NO_TEST
    if p_adjusted < alpha and diff > 0:
        return BETTER
    if p_adjusted < alpha and diff < 0:
        return WORSE
    return NO_DIFFERENCE


def compare(
    baseline: Sequence[float] | np.ndarray,
    treatment: Sequence[float] | np.ndarray,
    rng: np.random.Generator,
    n_resamples: int = 5000,
) -> Comparison:
    """All per-game statistics of treatment versus baseline (p-values unadjusted).

    With fewer than 2 seeds in either variant only ``diff`` is computed; the CI, p-values and
    effect size are NaN (the caller reports why).
    """
    b, t = _as_1d(baseline, "baseline"), _as_1d(treatment, "treatment")
    if b.size == 0 or t.size == 0:
        raise ValueError("both variants need at least one seed to be compared")
    diff = float(t.mean() - b.mean())
    if b.size < 2 or t.size < 2:
        nan = math.nan
        return Comparison(int(b.size), int(t.size), diff, nan, nan, nan, nan, nan)
    low, high = diff_of_means_ci(b, t, rng, n_resamples)
    return Comparison(
        n_baseline=int(b.size),
        n_treatment=int(t.size),
        diff=diff,
        diff_ci_low=low,
        diff_ci_high=high,
        welch_p=welch_p(b, t),
        mannwhitney_p=mannwhitney_p(b, t),
        hedges_g=hedges_g(b, t),
    )


def curve_auc(
    steps: Sequence[float] | np.ndarray, returns: Sequence[Sequence[float]] | np.ndarray
) -> float:
    """Normalised area under one run's learning curve: its mean return over training.

    ``m_k`` is the mean over episodes of evaluation ``k`` made at step ``s_k``; the area is
    the trapezoid rule over ``(s_k, m_k)`` divided by ``s_last - s_first``, so a flat curve at
    ``c`` gives ``c``. A single evaluation gives its mean return.

    :param steps: increasing training steps of the evaluations.
    :param returns: per evaluation, the per-episode returns (ragged lists are fine).
    """
    s = np.asarray(steps, dtype=float)
    if s.ndim != 1 or s.size == 0:
        raise ValueError("a learning curve needs at least one evaluation step")
    if len(returns) != s.size:
        raise ValueError(f"{s.size} evaluation steps but {len(returns)} lists of returns")
    if np.any(np.diff(s) <= 0):
        raise ValueError(f"evaluation steps must be strictly increasing, got {s.tolist()}")
    means = np.array([float(np.mean(r)) if len(r) else math.nan for r in returns])
    if np.any(np.isnan(means)):
        raise ValueError("an evaluation of the learning curve has no episode returns")
    if s.size == 1:
        return float(means[0])
    return float(scipy.integrate.trapezoid(means, s) / (s[-1] - s[0]))


def _share_better(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Over the last axis of ``a`` and of ``b`` (leading axes broadcast): the share of pairs with
    a > b, ties counting one half."""
    a, b = a[..., :, None], b[..., None, :]
    return np.mean((a > b) + 0.5 * (a == b), axis=(-2, -1))


def probability_x_better(x: Sequence[float] | np.ndarray, y: Sequence[float] | np.ndarray) -> float:
    """P(X > Y) + P(X = Y) / 2 over all pairs of one game's runs: the Mann-Whitney U statistic of
    ``x`` divided by ``len(x) * len(y)`` (rliable's per-game probability of improvement)."""
    a, b = _as_1d(x, "x"), _as_1d(y, "y")
    if a.size == 0 or b.size == 0:
        raise ValueError("both variants need at least one run")
    return float(_share_better(a, b))


def _split_statistics(pooled: np.ndarray, n_x: int) -> np.ndarray:
    """:func:`probability_x_better` for every way of labelling ``n_x`` of ``pooled`` as X."""
    chosen = np.zeros((math.comb(pooled.size, n_x), pooled.size), dtype=bool)
    for row, labelled_x in enumerate(itertools.combinations(range(pooled.size), n_x)):
        chosen[row, list(labelled_x)] = True
    n_y = pooled.size - n_x
    x = np.broadcast_to(pooled, chosen.shape)[chosen].reshape(-1, n_x)
    y = np.broadcast_to(pooled, chosen.shape)[~chosen].reshape(-1, n_y)
    return _share_better(x, y)


def stratified_permutation_p(
    x_by_game: Sequence[Sequence[float] | np.ndarray],
    y_by_game: Sequence[Sequence[float] | np.ndarray],
    rng: np.random.Generator,
    n_resamples: int = 10_000,
    max_exact: int = 5_000_000,
) -> tuple[float, bool]:
    """Two-sided permutation test of the probability of improvement averaged over games.

    Null hypothesis: within each game the two variants' runs are exchangeable (the labels X and
    Y could be swapped without changing the distribution). The statistic is the mean over games
    of :func:`probability_x_better`; the p-value is the share of relabellings, each game's runs
    relabelled within that game only (stratified), whose statistic is at least as far from 1/2
    as the observed one. Exact (every relabelling) when there are at most ``max_exact`` of them,
    otherwise ``n_resamples`` random relabellings and p = (1 + hits) / (1 + n_resamples).

    Written by hand: scipy's ``permutation_test`` has no strata, and rliable gives bootstrap
    CIs, which are too narrow with 3 to 5 runs per game; a permutation test is exact there.

    :param x_by_game: per game, the per-run scores of X (the treatment).
    :param y_by_game: per game, the per-run scores of Y (the baseline), same game order.
    :param rng: generator for the random relabellings (unused when exact).
    :param n_resamples: random relabellings when the test is not exact.
    :param max_exact: largest number of relabellings enumerated exactly.
    :return: ``(p, exact)``.
    """
    if len(x_by_game) != len(y_by_game) or not x_by_game:
        raise ValueError("need the runs of both variants on the same one or more games")
    xs = [_as_1d(x, "x") for x in x_by_game]
    ys = [_as_1d(y, "y") for y in y_by_game]
    observed = np.mean([probability_x_better(x, y) for x, y in zip(xs, ys, strict=True)])
    distance = abs(observed - 0.5) - 1e-12  # ties in floating point count as "as far"
    n_games = len(xs)
    arrangements = math.prod(
        math.comb(x.size + y.size, x.size) for x, y in zip(xs, ys, strict=True)
    )
    if arrangements <= max_exact:
        total = np.zeros(1)
        for x, y in zip(xs, ys, strict=True):
            game = _split_statistics(np.concatenate([x, y]), x.size)
            total = np.add.outer(total, game).ravel()
        return float(np.mean(np.abs(total / n_games - 0.5) >= distance)), True
    total = np.zeros(n_resamples)
    for x, y in zip(xs, ys, strict=True):
        shuffled = rng.permuted(np.tile(np.concatenate([x, y]), (n_resamples, 1)), axis=1)
        total += _share_better(shuffled[:, : x.size], shuffled[:, x.size :])
    hits = int(np.sum(np.abs(total / n_games - 0.5) >= distance))
    return (1 + hits) / (1 + n_resamples), False
