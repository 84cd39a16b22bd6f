"""Native and SB3 Atari backends give statistically consistent random-policy full-game scores.

Each comparison is a Welch t-test on the first full game(s) of every sub-env under a uniformly
random policy, at a lenient alpha (all seeds are fixed, so the outcome is deterministic). The
last test shows the same test does reject a real difference (clipped vs unclipped scores).
"""

from __future__ import annotations

import functools

import numpy as np
import pytest
from scipy import stats

from coordrl.envs import make_atari_vec_env

ALPHA = 1e-3
N_ENVS = 4


@functools.cache
def _random_games(
    game: str, backend: str, training: bool, n_envs: int, games_per_env: int, seed: int = 100
) -> dict[str, np.ndarray]:
    """Play a uniform random policy until every sub-env finished ``games_per_env`` games.

    :return: per game (first ``games_per_env`` of each env): ``r`` (info["episode"]["r"]),
        ``l`` (info["episode"]["l"]) and ``clipped`` (sum of the rewards step() returned).
    """
    env = make_atari_vec_env(game, n_envs, seed=seed, backend=backend, training=training)
    rng = np.random.default_rng(seed)
    games: list[list[tuple[float, int, float]]] = [[] for _ in range(n_envs)]
    step_sum = np.zeros(n_envs)
    try:
        env.reset()
        for _ in range(20_000):
            _, rewards, _, infos = env.step(rng.integers(0, env.action_space.n, n_envs))
            step_sum += rewards
            for i, info in enumerate(infos):
                if "episode" in info:
                    games[i].append((info["episode"]["r"], info["episode"]["l"], step_sum[i]))
                    step_sum[i] = 0.0
            if min(len(g) for g in games) >= games_per_env:
                break
        else:
            pytest.fail(f"{game}/{backend}: random games did not end")
    finally:
        env.close()
    rows = np.array([row for g in games for row in g[:games_per_env]])
    return {"r": rows[:, 0], "l": rows[:, 1], "clipped": rows[:, 2]}


def _assert_consistent(a: np.ndarray, b: np.ndarray, what: str) -> None:
    if np.all(a == a[0]) and np.all(b == b[0]):  # zero variance: t-test undefined
        assert a[0] == b[0], f"{what}: {a[0]} vs {b[0]}"
        return
    p = stats.ttest_ind(a, b, equal_var=False).pvalue
    assert p >= ALPHA, (
        f"{what}: native {a.mean():.2f}+-{a.std():.2f} vs sb3 {b.mean():.2f}+-{b.std():.2f}, "
        f"Welch p={p:.2g} < {ALPHA}"
    )


@pytest.mark.parametrize(
    ("game", "training", "games_per_env", "compare_lengths"),
    [
        ("Pong", True, 1, True),
        ("Breakout", True, 2, True),  # FIRE after a life loss in both
        ("Asterix", True, 2, True),  # 50 points per object: clipping would show
        ("Breakout", False, 1, True),  # eval env: FIRE only on reset in both backends
    ],
)
def test_random_policy_scores_agree(
    game: str, training: bool, games_per_env: int, compare_lengths: bool
) -> None:
    n_envs = 3 if game == "Pong" else N_ENVS  # random Pong games are long (~900 steps)
    native = _random_games(game, "native", training, n_envs, games_per_env)
    sb3 = _random_games(game, "sb3", training, n_envs, games_per_env)
    _assert_consistent(native["r"], sb3["r"], f"{game} full-game score")
    if compare_lengths:
        _assert_consistent(native["l"], sb3["l"], f"{game} full-game length (frames)")
    if training:  # learning rewards are clipped to {-1, 0, 1} in both backends
        for result in (native, sb3):
            assert np.all(np.abs(result["clipped"]) <= np.abs(result["r"]))
    else:  # eval env: step() rewards are the unclipped score itself
        np.testing.assert_allclose(native["clipped"], native["r"])
        np.testing.assert_allclose(sb3["clipped"], sb3["r"])


def test_consistency_test_detects_clipped_scores() -> None:
    """The Welch test above has power: clipped Asterix scores are told apart from real ones.

    Uses the (cached) Asterix games of both backends: 16 full-game scores vs their clipped sums.
    """
    games = [_random_games("Asterix", b, True, N_ENVS, 2) for b in ("native", "sb3")]
    real = np.concatenate([g["r"] for g in games])
    clipped = np.concatenate([g["clipped"] for g in games])
    assert real.mean() > 10 * clipped.mean()  # 50 points per object
    with pytest.raises(AssertionError, match="Welch"):
        _assert_consistent(real, clipped, "clipped")
