"""The report's plots stay readable: no two texts of a figure (tick labels, titles, legend,
axis labels) overlap, for 1 to many games, 1 to several variants and awkward data ranges."""

from __future__ import annotations

import itertools
import os

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.text import Text  # noqa: E402

from coordrl.analysis import plots  # noqa: E402
from coordrl.analysis.aggregate import AGGREGATE_METRICS  # noqa: E402

VARIANTS = ["conv", "coordconv", "coordconv-L0-2-r", "coordconv-r-only", "addcoords-first"]
MINATAR = [
    "MinAtar/Asterix-v1",
    "MinAtar/Breakout-v1",
    "MinAtar/Freeway-v1",
    "MinAtar/Seaquest-v1",
    "MinAtar/SpaceInvaders-v1",
]
ATARI = ["Pong", "Breakout", "Seaquest", "SpaceInvaders", "MsPacman", "ChopperCommand"]


def _visible_texts(fig: plt.Figure) -> list[tuple[str, object]]:
    """Every text the saved figure shows, with its box; tick labels only of ticks in view."""
    renderer = fig.canvas.get_renderer()
    tick_labels, shown = set(), []
    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):
            if not axis.get_visible():  # e.g. a twin's: not drawn
                tick_labels.update((id(axis.label), id(axis.get_offset_text())))
            lo, hi = sorted(axis.get_view_interval())
            for loc, label in zip(axis.get_majorticklocs(), axis.get_ticklabels(), strict=False):
                tick_labels.add(id(label))
                visible = ax.get_visible() and axis.get_visible() and label.get_visible()
                if visible and label.get_text():
                    if lo - 1e-9 * abs(hi - lo) <= loc <= hi + 1e-9 * abs(hi - lo):
                        shown.append(label)
    for text in fig.findobj(Text):
        if id(text) in tick_labels or not text.get_visible() or not text.get_text().strip():
            continue
        if text.axes is not None and not text.axes.get_visible():
            continue
        shown.append(text)
    return [(t.get_text(), t.get_window_extent(renderer)) for t in shown]


def _overlaps(fig: plt.Figure) -> list[tuple[str, str]]:
    fig.draw_without_rendering()
    texts = _visible_texts(fig)
    return [
        (a, b)
        for (a, box_a), (b, box_b) in itertools.combinations(texts, 2)
        if box_a.overlaps(box_b)
    ]


@pytest.fixture
def checked(monkeypatch):
    """Run the plot, then check the figure it was about to save (and let it save)."""
    found: dict[str, list[tuple[str, str]]] = {}
    save = plots._save

    def check_then_save(fig: plt.Figure, path: str | os.PathLike) -> None:
        found[os.fspath(path)] = _overlaps(fig)
        save(fig, path)

    monkeypatch.setattr(plots, "_save", check_then_save)
    return found


def _curves(games, variants, steps, rng):
    out = {}
    for gi, game in enumerate(games):
        scale = 10.0 ** (gi % 5)
        out[game] = {}
        for vi, v in enumerate(variants):
            mean = scale * (1 + 0.1 * vi) * np.linspace(0, 1, len(steps)) ** 0.7
            noise = scale * 0.05 * rng.random(len(steps))
            n = 4 if (gi == 1 and vi == 1) else 5
            out[game][v] = (np.asarray(steps), mean, np.stack([mean - noise, mean + noise]), n)
    return out


@pytest.mark.parametrize(
    "games,n_variants,n_steps",
    [
        (MINATAR, 2, 21),
        (ATARI[:5], 2, 41),
        (MINATAR[:1], 2, 21),
        ([f"{ATARI[i % 6]}{i}" for i in range(57)], 2, 11),
        (MINATAR + ["coordrl/PointAtDot-v0"], 5, 11),
    ],
)
def test_learning_curves_readable(tmp_path, checked, games, n_variants, n_steps):
    variants = VARIANTS[:n_variants]
    steps = np.linspace(0, 10_000_000 if n_variants > 2 else 1_000_000, n_steps).astype(int)
    curves = _curves(games, variants, steps, np.random.default_rng(0))
    path = tmp_path / "curves.png"
    plots.plot_learning_curves(curves, plots.variant_colors(variants), "ppo", path)
    assert path.read_bytes()[:4] == b"\x89PNG"
    assert checked[str(path)] == []


@pytest.mark.parametrize("n_variants", [1, 2, 5])
@pytest.mark.parametrize(
    "low,high",
    [(0.0, 1.0), (0.31234, 0.31301), (-0.8, 57.3), (1234.5, 98765.4), (-3e-5, 2e-5)],
)
def test_aggregates_readable(tmp_path, checked, n_variants, low, high):
    variants = VARIANTS[:n_variants]
    rng = np.random.default_rng(1)
    points, intervals = {}, {}
    for v in variants:
        lo = low + (high - low) * rng.random(len(AGGREGATE_METRICS)) * 0.6
        hi = lo + (high - low) * 0.4
        points[v] = (lo + hi) / 2
        intervals[v] = np.stack([lo, hi])
    path = tmp_path / "aggregates.png"
    label = "normalised (human for Atari, min-max otherwise) score"
    plots.plot_aggregates(points, intervals, plots.variant_colors(variants), label, path)
    assert checked[str(path)] == []


@pytest.mark.parametrize("n_pairs", [1, 4])
def test_probability_of_improvement_readable(tmp_path, checked, n_pairs):
    pairs = [f"{x},conv" for x in VARIANTS[1 : n_pairs + 1]]
    points = {p: 0.3 + 0.1 * i for i, p in enumerate(pairs)}
    intervals = {p: np.array([points[p] - 0.1, points[p] + 0.1]) for p in pairs}
    path = tmp_path / "poi.png"
    plots.plot_probability_of_improvement(points, intervals, path)
    assert checked[str(path)] == []


@pytest.mark.parametrize("n_variants,top", [(2, 1.0), (5, 46.3), (2, 0.0123)])
def test_performance_profile_readable(tmp_path, checked, n_variants, top):
    variants = VARIANTS[:n_variants]
    tau = np.linspace(0.0, top, 101)
    profiles = {v: np.clip(1 - tau / top * (1 + 0.2 * i), 0, 1) for i, v in enumerate(variants)}
    cis = {
        v: np.stack([np.clip(p - 0.1, 0, 1), np.clip(p + 0.1, 0, 1)]) for v, p in profiles.items()
    }
    path = tmp_path / "profile.png"
    label = "human-normalised score"
    plots.plot_performance_profile(tau, profiles, cis, plots.variant_colors(variants), label, path)
    assert checked[str(path)] == []
