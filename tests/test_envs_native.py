"""The native backend as an SB3 ``VecEnv``: what SB3's algorithms and helpers read from it.

Its game protocol (resets, lives, rewards, frames, episode info) is checked step for step against
SB3's own Atari stack in tests/test_envs_protocol.py.
"""

from __future__ import annotations

import numpy as np
import pytest
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.monitor import Monitor

from coordrl.envs.native_vec_env import NativeAtariVecEnv


class _RandomPolicy:
    """Minimal ``predict`` interface for ``evaluate_policy``."""

    def __init__(self, n_actions: int) -> None:
        self.rng = np.random.default_rng(0)
        self.n_actions = n_actions

    def predict(self, observation, state=None, episode_start=None, deterministic=False):
        return self.rng.integers(0, self.n_actions, len(observation)), None


def test_sb3_evaluate_policy_reports_full_games_on_training_env() -> None:
    """SB3 sees a Monitor: evaluate_policy counts full games, not lives, on the training env."""
    env = NativeAtariVecEnv("breakout", 2, seed=0, training=True)
    try:
        assert env.env_is_wrapped(Monitor) == [True, True]
        returns, lengths = evaluate_policy(
            _RandomPolicy(4), env, n_eval_episodes=4, return_episode_rewards=True, warn=False
        )
        assert len(returns) == 4
        assert all(length > 100 for length in lengths)  # frames of a 5-life game, not one life
    finally:
        env.close()


def test_sb3_sees_channel_first_images() -> None:
    """What SB3's ``BaseAlgorithm._wrap_env`` checks: an image space, already channel-first,
    so the algorithms add no ``VecTransposeImage`` (the CLI tests train on this env)."""
    from stable_baselines3.common.preprocessing import (
        is_image_space,
        is_image_space_channels_first,
    )

    env = NativeAtariVecEnv("pong", 1, seed=0)
    try:
        assert is_image_space(env.observation_space)
        assert is_image_space_channels_first(env.observation_space)
    finally:
        env.close()


def test_attributes_and_methods() -> None:
    env = NativeAtariVecEnv("breakout", 2, seed=0)
    try:
        assert env.get_attr("render_mode") == [None, None]
        env.set_attr("foo", 3, indices=1)
        assert env.get_attr("foo", indices=[1]) == [3]
        with pytest.raises(AttributeError, match="foo"):
            env.get_attr("foo", indices=0)
        assert env.env_method("get_action_meanings", indices=0) == [
            ["NOOP", "FIRE", "RIGHT", "LEFT"]
        ]
        with pytest.raises(AttributeError, match="backend='sb3'"):
            env.env_method("render")
        from stable_baselines3.common.atari_wrappers import (
            ClipRewardEnv,
            EpisodicLifeEnv,
            FireResetEnv,
        )

        assert env.env_is_wrapped(EpisodicLifeEnv) == [True, True]
        assert env.env_is_wrapped(FireResetEnv) == [True, True]
        eval_env = NativeAtariVecEnv("breakout", 1, seed=0, training=False)
        assert eval_env.env_is_wrapped(ClipRewardEnv) == [False]
        eval_env.close()
        no_fire = NativeAtariVecEnv("asterix", 1, seed=0)
        assert no_fire.env_is_wrapped(FireResetEnv) == [False]
        no_fire.close()
    finally:
        env.close()
