"""PNG plots of the comparison report, drawn with ``rliable.plot_utils``.

The caller picks the matplotlib backend (``python -m coordrl.compare`` uses Agg). Every
function writes one PNG and closes its figure.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns
from rliable import plot_utils

from coordrl.analysis.aggregate import AGGREGATE_METRICS

DPI = 120


def variant_colors(variants: Sequence[str]) -> dict[str, tuple[float, float, float]]:
    """One colour-blind-safe colour per variant, the same in every plot."""
    names = sorted(set(variants))
    return dict(
        zip(names, sns.color_palette("colorblind", n_colors=max(len(names), 1)), strict=False)
    )


def _save(fig: plt.Figure, path: str | os.PathLike) -> None:
    fig.savefig(path, dpi=DPI, bbox_inches="tight")
    plt.close(fig)


def plot_learning_curves(
    curves: Mapping[str, Mapping[str, tuple[np.ndarray, np.ndarray, np.ndarray, int]]],
    colors: Mapping[str, tuple[float, float, float]],
    title: str,
    path: str | os.PathLike,
) -> None:
    """One panel per game: mean evaluation return per variant with its 95% CI band.

    :param curves: game -> variant -> ``(steps, mean, ci (2 x points), n_runs)``.
    :param colors: variant -> colour.
    :param title: figure title (e.g. the algorithm).
    :param path: output PNG.
    """
    games = sorted(curves)
    ncols = min(3, max(len(games), 1))
    nrows = max(1, math.ceil(len(games) / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(5.5 * ncols, 4.0 * nrows), squeeze=False)
    for ax, game in zip(axes.flat, games, strict=False):
        for variant, (steps, mean, ci, n_runs) in sorted(curves[game].items()):
            label = f"{variant} (n={n_runs})"
            plot_utils.plot_sample_efficiency_curve(
                steps,
                {label: mean},
                {label: ci},
                algorithms=[label],
                colors={label: colors[variant]},
                ax=ax,
                xlabel="environment steps",
                ylabel="evaluation return",
                labelsize="large",
                ticklabelsize="medium",
                marker="o" if len(steps) < 30 else "",
            )
        ax.set_title(game, fontsize="x-large")
        ax.legend(fontsize="medium", loc="best")
    for ax in list(axes.flat)[len(games) :]:
        ax.set_visible(False)
    fig.suptitle(f"{title}: mean and 95% bootstrap CI over seeds", fontsize="x-large")
    fig.tight_layout()
    _save(fig, path)


def plot_aggregates(
    points: Mapping[str, np.ndarray],
    intervals: Mapping[str, np.ndarray],
    colors: Mapping[str, tuple[float, float, float]],
    xlabel: str,
    path: str | os.PathLike,
) -> None:
    """IQM / median / mean / optimality gap with stratified-bootstrap CIs, one row per variant."""
    variants = list(points)
    fig, _ = plot_utils.plot_interval_estimates(
        dict(points),
        dict(intervals),
        metric_names=list(AGGREGATE_METRICS),
        algorithms=variants,
        colors={v: colors[v] for v in variants},
        xlabel=xlabel,
        subfigure_width=3.6,
        row_height=0.7,
        xlabel_y_coordinate=-0.35 if len(variants) <= 2 else -0.15,
    )
    _save(fig, path)


def plot_probability_of_improvement(
    points: Mapping[str, float],
    intervals: Mapping[str, np.ndarray],
    path: str | os.PathLike,
) -> None:
    """P(X > Y) with its CI for each ``"x,y"`` pair."""
    pairs = list(points)
    fig, ax = plt.subplots(figsize=(5.0, 0.8 + 0.7 * len(pairs)))
    plot_utils.plot_probability_of_improvement(
        {k: points[k] for k in pairs},
        {k: intervals[k] for k in pairs},
        ax=ax,
        xticks=[0.0, 0.25, 0.5, 0.75, 1.0],
        left_ylabel="Variant X",
        right_ylabel="Variant Y",
    )
    ax.set_xlim(0.0, 1.0)
    ax.axvline(0.5, color="grey", linestyle="--", linewidth=1)
    _save(fig, path)


def plot_performance_profile(
    tau: np.ndarray,
    profiles: Mapping[str, np.ndarray],
    profile_cis: Mapping[str, np.ndarray],
    colors: Mapping[str, tuple[float, float, float]],
    xlabel: str,
    path: str | os.PathLike,
) -> None:
    """Fraction of runs with normalised score above tau, per variant, with CI bands."""
    fig, ax = plt.subplots(figsize=(7, 4.5))
    plot_utils.plot_performance_profiles(
        dict(profiles),
        tau,
        performance_profile_cis=dict(profile_cis),
        colors={v: colors[v] for v in profiles},
        xlabel=xlabel + r" ($\tau$)",
        ax=ax,
        legend=True,
        labelsize="large",
        ticklabelsize="medium",
        legendsize="medium",
    )
    _save(fig, path)
