"""Statistics of coordrl.analysis.stats / aggregate / atari_scores against independent
computations (hand-worked numbers, scipy, plain numpy)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.stats

from coordrl.analysis import aggregate, atari_scores, stats

BASE = np.array([10.0, 12.0, 9.0, 11.0, 13.0, 10.5])


def _numpy_percentile_bootstrap(x, y=None, reps=20000, seed=123):
    """Independent percentile bootstrap (plain numpy) of mean(x), or of mean(y) - mean(x)."""
    rng = np.random.default_rng(seed)
    xs = rng.choice(x, size=(reps, len(x)), replace=True).mean(axis=1)
    if y is None:
        return np.percentile(xs, [2.5, 97.5])
    ys = rng.choice(y, size=(reps, len(y)), replace=True).mean(axis=1)
    return np.percentile(ys - xs, [2.5, 97.5])


def test_summary_matches_numpy_and_independent_bootstrap():
    s = stats.summarize(BASE, np.random.default_rng(0), n_resamples=20000)
    assert s.n == 6
    assert s.mean == pytest.approx(65.5 / 6)
    assert s.std == pytest.approx(np.std(BASE, ddof=1))
    assert s.median == pytest.approx(10.75)
    lo, hi = _numpy_percentile_bootstrap(BASE)
    assert s.ci_low == pytest.approx(lo, abs=0.1) and s.ci_high == pytest.approx(hi, abs=0.1)
    assert s.ci_low < s.mean < s.ci_high


def test_bootstrap_is_reproducible_and_single_seed_has_no_ci():
    a = stats.summarize(BASE, np.random.default_rng(7), 500)
    b = stats.summarize(BASE, np.random.default_rng(7), 500)
    assert a == b
    one = stats.summarize([3.0], np.random.default_rng(0), 500)
    assert one.n == 1 and one.mean == 3.0 and math.isnan(one.std) and math.isnan(one.ci_low)


def test_diff_of_means_ci_matches_independent_bootstrap():
    treat = BASE + 2.0
    lo, hi = stats.diff_of_means_ci(BASE, treat, np.random.default_rng(0), 20000)
    ref_lo, ref_hi = _numpy_percentile_bootstrap(BASE, treat)
    assert lo == pytest.approx(ref_lo, abs=0.1) and hi == pytest.approx(ref_hi, abs=0.1)
    assert lo < 2.0 < hi


def test_welch_p_matches_hand_computed_welch_satterthwaite():
    b = np.array([1.0, 2.0, 4.0, 7.0])
    t = np.array([3.0, 5.0, 6.0, 9.0, 12.0])
    vb, vt = b.var(ddof=1) / len(b), t.var(ddof=1) / len(t)
    tstat = (t.mean() - b.mean()) / math.sqrt(vb + vt)
    df = (vb + vt) ** 2 / (vb**2 / (len(b) - 1) + vt**2 / (len(t) - 1))
    expected = 2 * scipy.stats.t.sf(abs(tstat), df)
    assert stats.welch_p(b, t) == pytest.approx(expected, rel=1e-10)


def test_mannwhitney_exact_p_for_separated_samples():
    # All 5 treatment values above all 5 baseline values: exact two-sided p = 2 / C(10, 5).
    p = stats.mannwhitney_p([1, 2, 3, 4, 5], [6, 7, 8, 9, 10])
    assert p == pytest.approx(2 / math.comb(10, 5))


def test_hedges_g_hand_example():
    # means 2 and 4, both variances 1 -> pooled sd 1, d = 2; J = 1 - 3 / (4 * 6 - 9) = 0.8.
    assert stats.hedges_g([1, 2, 3], [3, 4, 5]) == pytest.approx(1.6)
    assert stats.hedges_g([3, 4, 5], [1, 2, 3]) == pytest.approx(-1.6)
    assert stats.hedges_g([1, 1], [1, 1]) == 0.0


def test_holm_hand_worked_example():
    # sorted: 0.005*4=0.02, 0.01*3=0.03, 0.03*2=0.06, 0.04*1=0.04 -> running max 0.06.
    adj = stats.holm([0.01, 0.04, 0.03, 0.005])
    np.testing.assert_allclose(adj, [0.03, 0.06, 0.06, 0.02])
    adj = stats.holm([0.01, math.nan, 0.02, 0.9])
    np.testing.assert_allclose(adj, [0.03, math.nan, 0.04, 0.9])
    assert stats.holm([0.6, 0.7]).tolist() == [1.0, 1.0]


def test_clearly_significant_case():
    rng = np.random.default_rng(0)
    treat = BASE + 10.0
    c = stats.compare(BASE, treat, rng, 500)
    assert c.diff == pytest.approx(10.0)
    assert c.welch_p < 1e-6 and c.mannwhitney_p < 0.01 and c.hedges_g > 5
    assert c.diff_ci_low > 0
    assert stats.verdict(c.diff, c.welch_p) == stats.BETTER
    assert stats.verdict(-c.diff, c.welch_p) == stats.WORSE


def test_clearly_not_significant_case():
    rng = np.random.default_rng(0)
    treat = BASE[::-1].copy()  # the same values in another order
    c = stats.compare(BASE, treat, rng, 500)
    assert c.diff == pytest.approx(0.0, abs=1e-12)
    assert c.welch_p == pytest.approx(1.0) and c.mannwhitney_p == pytest.approx(1.0)
    assert c.diff_ci_low < 0 < c.diff_ci_high
    assert stats.verdict(c.diff, c.welch_p) == stats.NO_DIFFERENCE


def test_one_seed_gives_no_test_and_constant_samples_are_handled():
    c = stats.compare([1.0], [2.0, 3.0], np.random.default_rng(0), 200)
    assert c.diff == pytest.approx(1.5) and math.isnan(c.welch_p)
    assert stats.verdict(c.diff, math.nan) == stats.NO_TEST
    assert stats.welch_p([-21, -21], [-21, -21]) == 1.0
    assert stats.mannwhitney_p([-21, -21], [-21, -21]) == 1.0
    with pytest.raises(ValueError, match="NaN"):
        stats.summarize([1.0, math.nan], np.random.default_rng(0))


def test_curve_auc_is_mean_return_over_training():
    assert stats.curve_auc([0, 50, 100], [[3, 3], [3], [3, 3, 3]]) == pytest.approx(3.0)
    # linear 0 -> 10: mean 5; episode means are used.
    assert stats.curve_auc([0, 100], [[-1, 1], [9, 11]]) == pytest.approx(5.0)
    # uneven steps: trapezoids (0,0)-(10,10) area 50, (10,10)-(30,10) area 200; / 30.
    assert stats.curve_auc([0, 10, 30], [[0], [10], [10]]) == pytest.approx(250 / 30)
    assert stats.curve_auc([500], [[2, 4]]) == pytest.approx(3.0)
    with pytest.raises(ValueError, match="increasing"):
        stats.curve_auc([10, 5], [[1], [2]])


# --- atari_scores -------------------------------------------------------------------------


def test_atari_table_is_the_57_games_with_canonical_names():
    from ale_py import roms
    from ale_py.registration import rom_id_to_name

    table = atari_scores._DQN_ZOO_ATARI_DATA
    assert len(table) == 57 and len(atari_scores.ATARI_SCORES) == 57
    assert set(table) <= set(roms.get_all_rom_ids())
    assert set(atari_scores.ATARI_SCORES) == {rom_id_to_name(k) for k in table}
    # spot checks against dqn_zoo/atari_data.py
    assert atari_scores.ATARI_SCORES["MsPacman"] == (307.3, 6951.6)
    assert atari_scores.ATARI_SCORES["Pong"] == (-20.7, 14.6)
    assert atari_scores.ATARI_SCORES["VideoPinball"] == (16256.9, 17667.9)
    assert atari_scores.ATARI_SCORES["Skiing"] == (-17098.1, -4336.9)


def test_human_normalized():
    assert atari_scores.human_normalized("Pong", -20.7) == pytest.approx(0.0)
    assert atari_scores.human_normalized("Pong", 14.6) == pytest.approx(1.0)
    assert atari_scores.human_normalized("ms_pacman", 307.3 + 6644.3 / 2) == pytest.approx(0.5)
    assert atari_scores.human_normalized("ALE/Breakout-v5", 30.5) == pytest.approx(1.0)
    assert not atari_scores.has_reference_scores("coordrl/PointAtDot-v0")
    with pytest.raises(KeyError, match="min-max"):
        atari_scores.human_normalized("Carnival", 1.0)


# --- aggregates (rliable) -----------------------------------------------------------------


def _matrix(seed: int, shift: float = 0.0) -> np.ndarray:
    return np.random.default_rng(seed).normal(loc=1.0 + shift, scale=0.5, size=(5, 4))


def test_aggregate_points_match_independent_formulas():
    x = _matrix(0)
    points, intervals = aggregate.aggregate_estimates({"a": x}, reps=300, seed=0)
    iqm, median, mean, gap = points["a"]
    assert iqm == pytest.approx(scipy.stats.trim_mean(x.ravel(), 0.25))
    assert median == pytest.approx(np.median(x.mean(axis=0)))
    assert mean == pytest.approx(x.mean())
    assert gap == pytest.approx(1.0 - np.minimum(x, 1.0).mean())
    assert intervals["a"].shape == (2, 4)
    assert np.all(intervals["a"][0] <= points["a"] + 1e-12)
    assert np.all(points["a"] <= intervals["a"][1] + 1e-12)


def test_aggregate_bootstrap_is_seeded_and_restores_global_state():
    x = _matrix(1)
    np.random.seed(99)
    before = np.random.random()
    np.random.seed(99)
    _, a = aggregate.aggregate_estimates({"a": x}, reps=200, seed=3)
    after = np.random.random()
    _, b = aggregate.aggregate_estimates({"a": x}, reps=200, seed=3)
    np.testing.assert_array_equal(a["a"], b["a"])
    assert before == after


def test_probability_of_improvement_extremes():
    low, high = _matrix(2), _matrix(2) + 100.0
    points, intervals = aggregate.probability_of_improvement(
        {"hi": high, "lo": low}, [("hi", "lo"), ("lo", "lo")], reps=100, seed=0
    )
    assert points["hi,lo"] == pytest.approx(1.0)
    assert points["lo,lo"] == pytest.approx(0.5)
    np.testing.assert_allclose(intervals["hi,lo"], [1.0, 1.0])


def test_probability_x_better_by_hand():
    # 1 loses to both 2s, each 2 ties both 2s, 3 beats both: (0 + 0 + 4 * 0.5 + 2) / 6
    assert stats.probability_x_better([1, 2, 3], [2, 2]) == pytest.approx(0.5)
    assert stats.probability_x_better([5], [1, 2]) == 1.0
    # rliable's per-game value on a one-game matrix
    x, y = np.array([[1.0], [4.0], [6.0]]), np.array([[2.0], [5.0], [3.0]])
    points, _ = aggregate.probability_of_improvement({"x": x, "y": y}, [("x", "y")], 100, 0)
    assert stats.probability_x_better(x[:, 0], y[:, 0]) == pytest.approx(points["x,y"])


def test_stratified_permutation_p_by_hand():
    rng = np.random.default_rng(0)
    # One game, pooled [3, 1, 2], one run labelled X: P(X > Y) is 1, 0 or 0.5; observed 1,
    # and 1 and 0 are as far from 0.5 as it: p = 2/3.
    assert stats.stratified_permutation_p([[3]], [[1, 2]], rng) == (pytest.approx(2 / 3), True)
    # Two games: the 3 x 3 relabellings give means 0.75, 0.5, 1, 0.25, 0, 0.5, 0.5, 0.25, 0.75;
    # observed (1 + 0.5) / 2 = 0.75, so 6 of 9 are at least 0.25 from 0.5.
    p, exact = stats.stratified_permutation_p([[3], [5]], [[1, 2], [4, 6]], rng)
    assert exact and p == pytest.approx(6 / 9)
    # Relabelling within games only: X always better on 4 games of 3 vs 3 runs. Pooled over
    # games X would not look better (the games' scales differ); stratified, only the observed
    # labelling and its mirror are as extreme: p = 2 / 20^4.
    xs = [[11, 12, 13], [101, 102, 103], [1001, 1002, 1003], [5, 6, 7]]
    ys = [[1, 2, 3], [91, 92, 93], [991, 992, 993], [1, 2, 4]]
    p, exact = stats.stratified_permutation_p(xs, ys, rng)
    assert exact and p == pytest.approx(2 / 20**4)


def test_stratified_permutation_p_sampled_agrees_with_exact():
    rng = np.random.default_rng(1)
    xs = [rng.normal(0.3, 1, 3) for _ in range(4)]
    ys = [rng.normal(0.0, 1, 3) for _ in range(4)]
    exact, is_exact = stats.stratified_permutation_p(xs, ys, rng)
    sampled, is_sampled_exact = stats.stratified_permutation_p(
        xs, ys, np.random.default_rng(2), n_resamples=20_000, max_exact=0
    )
    assert is_exact and not is_sampled_exact
    assert sampled == pytest.approx(exact, abs=0.015)  # 3 standard errors at p ~ 0.5
    # X better on 5 games: 2 in 20^5 relabellings are as extreme, so 99 random ones (almost
    # surely) hit none and p is the smallest a sampled test gives, 1 / (1 + 99), never 0
    far = stats.stratified_permutation_p([[9, 10, 11]] * 5, [[1, 2, 3]] * 5, rng, 99, max_exact=0)
    assert far == (pytest.approx(0.01), False)


def test_stratified_permutation_p_rejects_mismatched_games():
    with pytest.raises(ValueError, match="same one or more games"):
        stats.stratified_permutation_p([[1, 2]], [[1], [2]], np.random.default_rng(0))


def test_normalize_game():
    raw = {"conv": np.array([-20.7, 14.6]), "coordconv": np.array([-3.05])}
    norm, method = aggregate.normalize_game("Pong", True, raw)
    assert method == aggregate.HUMAN
    np.testing.assert_allclose(norm["conv"], [0.0, 1.0])
    np.testing.assert_allclose(norm["coordconv"], [0.5])
    raw = {"conv": np.array([2.0, 4.0]), "coordconv": np.array([6.0])}
    norm, method = aggregate.normalize_game("coordrl/PointAtDot-v0", False, raw)
    assert method == aggregate.MIN_MAX
    np.testing.assert_allclose(norm["conv"], [0.0, 0.5])
    np.testing.assert_allclose(norm["coordconv"], [1.0])


def test_minatar_games_are_normalised_by_fixed_references_not_by_the_runs():
    random, reference = 0.394, 10.0  # MinAtar/Breakout-v1: measured random, the paper's DQN
    raw = {"conv": np.array([random, 10.0]), "coordconv": np.array([5.197])}
    norm, method = aggregate.normalize_game("MinAtar/Breakout-v1", False, raw)
    assert method == aggregate.MINATAR
    np.testing.assert_allclose(norm["conv"], [0.0, 1.0])
    np.testing.assert_allclose(norm["coordconv"], [(5.197 - random) / (reference - random)])
    # adding a run does not change the others' normalised scores (unlike min-max)
    more = {"conv": np.array([random, 10.0, 30.0]), "coordconv": np.array([5.197])}
    norm2, _ = aggregate.normalize_game("MinAtar/Breakout-v1", False, more)
    np.testing.assert_allclose(norm2["conv"][:2], norm["conv"])
    np.testing.assert_allclose(norm2["coordconv"], norm["coordconv"])
