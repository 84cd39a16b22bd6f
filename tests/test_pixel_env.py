"""Tests for the PointAtDot pixel environment (envs/pixel.py)."""

from __future__ import annotations

import time
import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env
from stable_baselines3.common.preprocessing import is_image_space, is_image_space_channels_first

from coordrl.envs import register_envs
from coordrl.envs.pixel import ENV_ID, PointAtDotEnv, dot_positions


@pytest.fixture(autouse=True, scope="module")
def _registered() -> None:
    register_envs()  # gym.make(ENV_ID) needs it; importing coordrl registers nothing


def _dot_box(obs: np.ndarray) -> tuple[int, int, int, int]:
    """(top, left, height, width) of the lit pixels of an observation."""
    ys, xs = np.nonzero(obs[0])
    return int(ys.min()), int(xs.min()), int(np.ptp(ys) + 1), int(np.ptp(xs) + 1)


def test_registered_and_spaces() -> None:
    env = gym.make(ENV_ID)
    assert env.observation_space == gym.spaces.Box(0, 255, (1, 44, 44), np.uint8)
    assert env.action_space == gym.spaces.Discrete(9)
    assert is_image_space(env.observation_space)
    assert is_image_space_channels_first(env.observation_space)
    env = gym.make(ENV_ID, canvas_size=48, grid=4, dot_size=3)
    assert env.observation_space.shape == (1, 48, 48)
    assert env.action_space.n == 16


def test_register_envs_registers_the_id() -> None:
    # Importing coordrl registers nothing (tests/test_envs_registration.py); this call does.
    register_envs()
    assert ENV_ID in gym.registry


def test_observation_shows_one_dot_in_target_cell() -> None:
    env = PointAtDotEnv(canvas_size=42, grid=3, dot_size=4)
    obs, info = env.reset(seed=0)
    for _ in range(50):
        assert obs.dtype == np.uint8 and obs.shape == (1, 42, 42)
        assert set(np.unique(obs)) == {0, 255}
        top, left, h, w = _dot_box(obs)
        assert (h, w) == (4, 4)
        assert (top // 14) * 3 + left // 14 == info["target"] == env.target
        # The dot lies entirely inside its cell.
        assert (top + 3) // 14 == top // 14 and (left + 3) // 14 == left // 14
        obs, _, _, _, _ = env.step(env.target)
        info = {"target": env.target}


def test_reward_right_and_wrong_cell() -> None:
    env = PointAtDotEnv(wrong_reward=-0.25)
    env.reset(seed=1)
    target = env.target
    _, reward, _, _, info = env.step(target)
    assert reward == 1.0 and info["correct"] and info["target"] == target
    target = env.target
    _, reward, _, _, info = env.step((target + 1) % 9)
    assert reward == -0.25 and not info["correct"] and info["target"] == target


def test_episode_length_and_return_range() -> None:
    env = PointAtDotEnv(episode_length=7)
    env.reset(seed=0)
    total = 0.0
    for t in range(7):
        _, reward, terminated, truncated, _ = env.step(env.target)
        total += reward
        assert terminated == (t == 6) and not truncated
    assert total == 7.0


def test_invalid_actions_and_config_rejected() -> None:
    env = PointAtDotEnv()
    env.reset(seed=0)
    for bad in (9, -1, 1.5, "0"):
        with pytest.raises(ValueError, match="action"):
            env.step(bad)
    assert env.step(np.int64(3))[0].shape == (1, 44, 44)
    assert env.step(np.array(3))[0].shape == (1, 44, 44)
    with pytest.raises(ValueError, match="does not fit"):
        PointAtDotEnv(canvas_size=42, grid=3, dot_size=15)
    with pytest.raises(ValueError, match="holdout"):
        PointAtDotEnv(holdout="quadrant")
    with pytest.raises(ValueError, match="needs a held-out region"):
        PointAtDotEnv(positions="test")
    with pytest.raises(ValueError, match="grid"):
        PointAtDotEnv(grid=1)


def test_holdout_semantics() -> None:
    all_pos = dot_positions(42, 3, 4, "cell-quadrant", "all")
    train = dot_positions(42, 3, 4, "cell-quadrant", "train")
    test = dot_positions(42, 3, 4, "cell-quadrant", "test")
    # 14px cells, 4px dot: 11 offsets per axis, offsets >= 6 on both axes are held out (5x5).
    assert len(all_pos) == 9 * 11 * 11 and len(test) == 9 * 5 * 5
    assert len(train) + len(test) == len(all_pos)
    as_set = lambda a: {tuple(r) for r in a}  # noqa: E731
    assert as_set(train).isdisjoint(as_set(test))
    assert as_set(train) | as_set(test) == as_set(all_pos)
    # Every cell keeps training positions and has test positions.
    assert set(train[:, 2]) == set(test[:, 2]) == set(range(9))
    off_y, off_x = test[:, 0] % 14, test[:, 1] % 14
    assert off_y.min() == 6 and off_x.min() == 6 and off_y.max() == 10 and off_x.max() == 10
    assert np.all((train[:, 0] % 14 < 6) | (train[:, 1] % 14 < 6))
    # The env samples only from its position set.
    env = PointAtDotEnv(holdout="cell-quadrant", positions="test")
    obs, _ = env.reset(seed=0)
    for _ in range(40):
        top, left, _, _ = _dot_box(obs)
        assert top % 14 >= 6 and left % 14 >= 6
        obs, *_ = env.step(0)
    assert len(PointAtDotEnv(holdout="none").dot_positions) == len(all_pos)


def test_default_canvas_is_fully_seen_by_nature_cnn() -> None:
    """Every pixel of the default canvas reaches the NatureCNN features (not so at 42 px)."""
    import torch as th
    from stable_baselines3.common.torch_layers import NatureCNN

    def seen(canvas: int) -> th.Tensor:
        th.manual_seed(0)
        space = PointAtDotEnv(canvas_size=canvas).observation_space
        x = th.zeros((1, *space.shape), requires_grad=True)
        NatureCNN(space)(x).sum().backward()
        return x.grad[0, 0] != 0

    assert seen(PointAtDotEnv().canvas_size).all()
    assert not seen(42)[-6:, :].any()


def test_seeding_is_reproducible() -> None:
    def rollout(seed: int) -> list[int]:
        env = gym.make(ENV_ID)
        env.reset(seed=seed)
        return [int(env.step(0)[4]["target"]) for _ in range(30)]

    assert rollout(3) == rollout(3)
    assert rollout(3) != rollout(4)


def test_env_checkers_pass_without_warnings() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        gym_check_env(gym.make(ENV_ID, render_mode="rgb_array").unwrapped)
        sb3_check_env(PointAtDotEnv(), warn=True)
    frame = PointAtDotEnv(render_mode="rgb_array")
    frame.reset(seed=0)
    assert frame.render().shape == (44, 44, 3)


def test_throughput_sanity() -> None:
    """Generous floor (the real figure is ~1e5 steps/s; see scripts/bench_pixel_env.py)."""
    env = PointAtDotEnv()
    env.reset(seed=0)
    n = 5000
    best = 0.0
    for _ in range(3):  # best of three, robust against a busy machine
        start = time.perf_counter()
        for i in range(n):
            if env.step(i % 9)[2]:
                env.reset()
        best = max(best, n / (time.perf_counter() - start))
    assert best > 2000, f"{best:.0f} steps/s"
