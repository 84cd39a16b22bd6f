"""PNG plots of the comparison report, drawn with ``rliable.plot_utils``.

The caller picks the matplotlib backend (``python -m coordrl.compare`` uses Agg). Every
function writes one PNG and closes its figure.

Readability: every figure uses matplotlib's constrained layout (titles, legends and tick
labels get room inside the figure instead of overlapping their neighbours), figure sizes grow
with the number of games, variants and pairs, and :func:`_fit_ticks` lowers the number of
ticks of an axis until its tick labels no longer touch, whatever the data's range.
"""

from __future__ import annotations

import math
import os
import textwrap
from collections import Counter
from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns
from matplotlib.axis import Axis
from matplotlib.ticker import EngFormatter, MaxNLocator, ScalarFormatter
from rliable import plot_utils

from coordrl.analysis.aggregate import AGGREGATE_METRICS

DPI = 120
_TICK_GAP_PX = 6  # least gap between two tick labels of one axis, in pixels at DPI


def variant_colors(variants: Sequence[str]) -> dict[str, tuple[float, float, float]]:
    """One colour-blind-safe colour per variant, the same in every plot."""
    names = sorted(set(variants))
    return dict(
        zip(names, sns.color_palette("colorblind", n_colors=max(len(names), 1)), strict=False)
    )


def _figure(width: float, height: float) -> plt.Figure:
    fig = plt.figure(figsize=(width, height), dpi=DPI, layout="constrained")
    fig.get_layout_engine().set(h_pad=0.1, w_pad=0.08)
    return fig


def _save(fig: plt.Figure, path: str | os.PathLike) -> None:
    fig.savefig(path, dpi=DPI, bbox_inches="tight", pad_inches=0.1)
    plt.close(fig)


def _plain_formatter() -> ScalarFormatter:
    """Full numbers on the axis, no ``+3.1e-1`` offset in a corner; a ``1e-5`` multiplier only
    for numbers below 1e-4 or from 1e6."""
    fmt = ScalarFormatter(useOffset=False)
    fmt.set_powerlimits((-4, 6))
    return fmt


def _labels_overlap(axis: Axis, renderer) -> bool:
    """Whether two visible tick labels of ``axis`` overlap (or come closer than the gap)."""
    lo, hi = sorted(axis.get_view_interval())
    boxes = [
        label.get_window_extent(renderer)
        for tick, label in zip(axis.get_majorticklocs(), axis.get_ticklabels(), strict=False)
        if label.get_visible() and label.get_text() and lo <= tick <= hi
    ]
    horizontal = axis.axis_name == "x"
    spans = sorted((b.x0, b.x1) if horizontal else (b.y0, b.y1) for b in boxes)
    return any(b0 < a1 + _TICK_GAP_PX for (_, a1), (b0, _) in zip(spans, spans[1:], strict=False))


def _fit_ticks(fig: plt.Figure, axes: Sequence[Axis], max_ticks: int) -> None:
    """Give each axis (``ax.xaxis`` / ``ax.yaxis``) the most ticks, at most ``max_ticks``, whose
    labels do not overlap at the figure's final layout; rotate x labels if even 2 overlap."""
    pending = list(axes)
    for nbins in range(max_ticks, 1, -1):
        for axis in pending:
            axis.set_major_locator(
                MaxNLocator(nbins=nbins, steps=[1, 2, 2.5, 5, 10], min_n_ticks=2)
            )
        fig.draw_without_rendering()
        renderer = fig.canvas.get_renderer()
        pending = [axis for axis in pending if _labels_overlap(axis, renderer)]
        if not pending:
            return
    for axis in pending:
        if axis.axis_name == "x":
            axis.set_tick_params(labelrotation=30)
            for label in axis.get_ticklabels():
                label.set_horizontalalignment("right")


def _wrap(text: str, width_chars: int) -> str:
    """Break a long title at ``/`` (env ids) or spaces so it fits ``width_chars`` a line."""
    if len(text) <= width_chars:
        return text
    if "/" in text:
        head, tail = text.split("/", 1)
        return head + "/\n" + _wrap(tail, width_chars)
    return "\n".join(textwrap.wrap(text, width_chars)) or text


def _grid_shape(n_panels: int) -> tuple[int, int]:
    """Columns and rows of the learning-curve grid: a row for 1-3 games, then about square,
    wider than tall, at most 8 columns."""
    n = max(n_panels, 1)
    ncols = n if n <= 3 else min(8, max(3, math.ceil(math.sqrt(n * 1.5))))
    return ncols, math.ceil(n / ncols)


def plot_learning_curves(
    curves: Mapping[str, Mapping[str, tuple[np.ndarray, np.ndarray, np.ndarray, int]]],
    colors: Mapping[str, tuple[float, float, float]],
    title: str,
    path: str | os.PathLike,
) -> None:
    """One panel per game: mean evaluation return per variant with its 95% CI band.

    One legend for the figure, with each variant's usual number of runs per game; a game where
    a variant has another number says so under its title.

    :param curves: game -> variant -> ``(steps, mean, ci (2 x points), n_runs)``.
    :param colors: variant -> colour.
    :param title: figure title (e.g. the algorithm).
    :param path: output PNG.
    """
    games = sorted(curves)
    variants = sorted({v for game in games for v in curves[game]})
    n_runs = {v: Counter(curves[g][v][3] for g in games if v in curves[g]) for v in variants}
    usual_n = {v: max(counts, key=lambda n: (counts[n], n)) for v, counts in n_runs.items()}
    ncols, nrows = _grid_shape(len(games))
    small = len(games) > 9
    panel_w, panel_h = (3.3, 2.7) if small else (5.0, 3.7)
    fontsize = "medium" if small else "large"
    fig = _figure(max(panel_w * ncols, 7.0), panel_h * nrows + 0.9)
    axes = fig.subplots(nrows, ncols, squeeze=False)
    fit = []
    for ax, game in zip(axes.flat, games, strict=False):
        for variant, (steps, mean, ci, _) in sorted(curves[game].items()):
            plot_utils.plot_sample_efficiency_curve(
                steps,
                {variant: mean},
                {variant: ci},
                algorithms=[variant],
                colors={variant: colors[variant]},
                ax=ax,
                xlabel="",
                ylabel="",
                labelsize=fontsize,
                ticklabelsize=fontsize,
                marker="o" if len(steps) < 30 else "",
                linewidth=1.5 if small else 2,
            )
        panel_title = _wrap(game, int(panel_w * 72 / 9))
        unusual = [v for v in sorted(curves[game]) if curves[game][v][3] != usual_n[v]]
        if unusual:
            panel_title += "\n(" + ", ".join(f"{v} n={curves[game][v][3]}" for v in unusual) + ")"
        ax.set_title(panel_title, fontsize="large" if small else "x-large")
        ax.xaxis.set_major_formatter(EngFormatter(sep=""))
        ax.yaxis.set_major_formatter(_plain_formatter())
        fit += [ax.xaxis, ax.yaxis]
    for ax in list(axes.flat)[len(games) :]:
        ax.set_visible(False)
    marker = "o" if all(len(c[0]) < 30 for game in games for c in curves[game].values()) else ""
    handles = [plt.Line2D([], [], color=colors[v], linewidth=2.5, marker=marker) for v in variants]
    labels = [
        f"{v} (n={usual_n[v]}{'' if len(n_runs[v]) == 1 else ' unless noted'})" for v in variants
    ]
    # The title is the legend's: constrained layout places an "outside" figure legend
    # without regard to a suptitle or supxlabel, so the two would be drawn over each other.
    fig.legend(
        handles,
        labels,
        loc="outside upper center",
        ncols=min(len(variants), max(ncols, 2)),
        fontsize="large",
        frameon=False,
        title=f"{title}: mean and 95% bootstrap CI over seeds",
        title_fontsize="x-large",
    )
    fig.supxlabel("environment steps", fontsize="x-large")
    fig.supylabel("evaluation return", fontsize="x-large")
    _fit_ticks(fig, fit, max_ticks=5 if small else 6)
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
    fig, axes = plot_utils.plot_interval_estimates(
        dict(points),
        dict(intervals),
        metric_names=list(AGGREGATE_METRICS),
        algorithms=variants,
        colors={v: colors[v] for v in variants},
        xlabel=xlabel,
    )
    # rliable places the x label with fig.text at a fixed spot and packs the panels with
    # subplots_adjust; re-lay the figure out instead so nothing overlaps at any size.
    for text in list(fig.texts):
        text.remove()
    fig.set_size_inches(3.4 * len(AGGREGATE_METRICS), 1.5 + 0.5 * max(len(variants), 1))
    fig.set_layout_engine("constrained", w_pad=0.08, wspace=0.06)
    axes = np.atleast_1d(axes)
    for ax in axes:
        ax.tick_params(axis="x", labelsize="x-large")
        ax.xaxis.set_major_formatter(_plain_formatter())
    fig.supxlabel(xlabel, fontsize="xx-large")
    _fit_ticks(fig, [ax.xaxis for ax in axes], max_ticks=4)
    _save(fig, path)


def plot_probability_of_improvement(
    points: Mapping[str, float],
    intervals: Mapping[str, np.ndarray],
    path: str | os.PathLike,
) -> None:
    """P(X > Y) with its CI for each ``"x,y"`` pair."""
    pairs = list(points)
    fig = _figure(6.0, 1.5 + 0.55 * max(len(pairs), 1))
    ax = fig.subplots()
    plot_utils.plot_probability_of_improvement(
        {k: points[k] for k in pairs},
        {k: intervals[k] for k in pairs},
        ax=ax,
        xticks=[0.0, 0.25, 0.5, 0.75, 1.0],
        left_ylabel="Variant X",
        right_ylabel="Variant Y",
        ticklabelsize="large",
        labelsize="large",
    )
    for twin in fig.axes:  # ax and rliable's twin axis for the Y names: the same rows
        twin.set_ylim(-0.6, len(pairs) - 0.4)
    ax.set_xlim(0.0, 1.0)
    ax.axvline(0.5, color="grey", linestyle="--", linewidth=1)
    # rliable puts the "Variant X / Y" headers beside the axes with label coordinates that
    # constrained layout cannot see; set them as titles above the two tick-label columns.
    for twin in fig.axes:
        twin.set_ylabel("")
    ax.set_title("Variant X", loc="left", fontweight="bold", fontsize="large")
    ax.set_title("Variant Y", loc="right", fontweight="bold", fontsize="large")
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
    fig = _figure(7.0, 4.8)
    ax = fig.subplots()
    plot_utils.plot_performance_profiles(
        dict(profiles),
        tau,
        performance_profile_cis=dict(profile_cis),
        colors={v: colors[v] for v in profiles},
        xlabel=xlabel + r" ($\tau$)",
        ax=ax,
        legend=False,
        labelsize="large",
        ticklabelsize="medium",
    )
    ax.xaxis.set_major_formatter(_plain_formatter())
    fig.legend(
        loc="outside upper center",
        ncols=min(len(profiles), 4),
        fontsize="medium",
        frameon=False,
    )
    _fit_ticks(fig, [ax.xaxis], max_ticks=8)
    _save(fig, path)
