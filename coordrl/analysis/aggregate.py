"""Aggregate metrics across games with rliable: thin wrappers that fix shapes and seeding.

rliable (Agarwal et al., 2021) does the statistics: stratified-bootstrap CIs of IQM, median,
mean and optimality gap (``rliable.library.get_interval_estimates`` with
``rliable.metrics.aggregate_*``), probability of improvement and performance profiles.

Seeding: rliable's bootstraps draw their indices with the module-level ``np.random.choice``
(its ``random_state`` argument does not reach them), so :func:`seeded_global_numpy` seeds the
global NumPy generator for the duration of a call and restores its previous state afterwards.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping

import numpy as np
from rliable import library as rly
from rliable import metrics

from coordrl.analysis.atari_scores import has_reference_scores, human_normalized
from coordrl.analysis.minatar_scores import has_minatar_scores, minatar_normalized

AGGREGATE_METRICS = ("IQM", "Median", "Mean", "Optimality gap")
HUMAN = "human-normalised"
MINATAR = "MinAtar-normalised"
MIN_MAX = "min-max"


@contextlib.contextmanager
def seeded_global_numpy(seed: int) -> Iterator[None]:
    """Seed ``np.random`` (legacy global generator) inside the block, restore it after."""
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        yield
    finally:
        np.random.set_state(state)


def normalize_game(
    game: str, is_atari: bool, scores: Mapping[str, np.ndarray]
) -> tuple[dict[str, np.ndarray], str]:
    """Normalise one game's per-run scores of every variant.

    Atari games of the 57-game table: human-normalised, ``(x - random) / (human - random)``.
    MinAtar games: ``(x - random) / (reference - random)`` with the fixed scores of
    :mod:`coordrl.analysis.minatar_scores` (0 = random play, 1 = the MinAtar paper's DQN).
    Anything else: min-max over all runs of that game (all variants pooled),
    ``(x - min) / (max - min)``, so 0 is the worst and 1 the best run; all scores 0 when every
    run scored the same.

    :param game: game name.
    :param is_atari: whether the runs say the game is Atari.
    :param scores: variant -> per-run scores.
    :return: the normalised scores and the method used (:data:`HUMAN`, :data:`MINATAR` or
        :data:`MIN_MAX`).
    """
    if is_atari and has_reference_scores(game):
        return {
            v: np.array([human_normalized(game, x) for x in s]) for v, s in scores.items()
        }, HUMAN
    if has_minatar_scores(game):
        return {
            v: np.array([minatar_normalized(game, x) for x in s]) for v, s in scores.items()
        }, MINATAR
    pooled = np.concatenate([np.asarray(s, dtype=float) for s in scores.values()])
    lo, hi = float(pooled.min()), float(pooled.max())
    span = hi - lo
    return {
        v: (np.asarray(s, dtype=float) - lo) / span if span > 0 else np.zeros(len(s))
        for v, s in scores.items()
    }, MIN_MAX


def _all_metrics(scores: np.ndarray) -> np.ndarray:
    return np.array(
        [
            metrics.aggregate_iqm(scores),
            metrics.aggregate_median(scores),
            metrics.aggregate_mean(scores),
            metrics.aggregate_optimality_gap(scores),
        ]
    )


def aggregate_estimates(
    matrices: Mapping[str, np.ndarray], reps: int, seed: int
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """IQM, median, mean and optimality gap (gamma=1) with 95% stratified-bootstrap CIs.

    :param matrices: variant -> normalised scores of shape ``(num_runs, num_games)``.
    :return: ``(points, intervals)``: variant -> array of the 4 metrics (order
        :data:`AGGREGATE_METRICS`), variant -> ``(2, 4)`` array of lower/upper CI bounds.
    """
    with seeded_global_numpy(seed):
        return rly.get_interval_estimates(dict(matrices), _all_metrics, reps=reps)


def probability_of_improvement(
    matrices: Mapping[str, np.ndarray], pairs: list[tuple[str, str]], reps: int, seed: int
) -> tuple[dict[str, float], dict[str, np.ndarray]]:
    """P(X > Y) averaged over games, with 95% stratified independent-bootstrap CIs.

    :param pairs: ``(x, y)`` variant pairs; result keys are ``"x,y"``.
    :return: ``(points, intervals)`` with intervals of shape ``(2,)``.
    """
    data = {f"{x},{y}": [matrices[x], matrices[y]] for x, y in pairs}
    with seeded_global_numpy(seed):
        points, intervals = rly.get_interval_estimates(
            data, metrics.probability_of_improvement, reps=reps
        )
    return {k: float(v) for k, v in points.items()}, {
        k: np.asarray(v, dtype=float).reshape(2) for k, v in intervals.items()
    }


def performance_profiles(
    matrices: Mapping[str, np.ndarray], tau: np.ndarray, reps: int, seed: int
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Score-distribution performance profiles (fraction of runs with score > tau) with CIs."""
    with seeded_global_numpy(seed):
        return rly.create_performance_profile(dict(matrices), tau, reps=reps)


def curve_band(curves: np.ndarray, reps: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean learning curve over runs and its pointwise 95% bootstrap CI (resampling runs).

    :param curves: ``(num_runs, num_points)`` mean evaluation return per run and point.
    :return: ``(mean, ci)`` with shapes ``(num_points,)`` and ``(2, num_points)``.
    """
    curves = np.asarray(curves, dtype=float)
    if curves.shape[0] < 2:
        return curves.mean(axis=0), np.vstack([curves.mean(axis=0)] * 2)
    with seeded_global_numpy(seed):
        points, intervals = rly.get_interval_estimates(
            {"x": curves[:, None, :]}, lambda s: np.mean(s, axis=0)[0], reps=reps
        )
    return points["x"], intervals["x"]
