"""Semantics of the native backend, checked against ale-py's own vector env as the oracle.

The oracle is a raw ``AtariVectorEnv`` with the same seeds and actions but *no* life-loss
signal and no reward clipping, so its ``terminated``/``truncated`` mark the real game ends and
its rewards are the raw scores (life_loss_info does not change the emulation, so both play the
identical game).
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from ale_py.vector_env import AtariVectorEnv
from stable_baselines3.common.atari_wrappers import WarpFrame
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.monitor import Monitor

from coordrl.envs.native_vec_env import NativeAtariVecEnv


def _oracle(rom: str, n_envs: int, seed: int, autoreset_mode: str = "SameStep") -> AtariVectorEnv:
    env = AtariVectorEnv(
        rom,
        n_envs,
        num_threads=1,
        autoreset_mode=autoreset_mode,
        life_loss_info=False,
        reward_clipping=False,
        noop_max=30,
        use_fire_reset=True,
        repeat_action_probability=0.0,
    )
    env.reset(seed=np.arange(seed, seed + n_envs))
    return env


@pytest.mark.parametrize("rom", ["breakout", "asterix"])
def test_training_env_matches_sb3_semantics(rom: str) -> None:
    """Life-loss dones, clipped learning rewards, unclipped full-game info["episode"]."""
    n_envs, seed = 2, 11
    env = NativeAtariVecEnv(rom, n_envs, seed=seed, training=True)
    oracle = _oracle(rom, n_envs, seed)
    rng = np.random.default_rng(0)
    obs = env.reset()
    game_return = np.zeros(n_envs)
    game_steps = np.zeros(n_envs, dtype=int)
    episodes, life_losses, unclipped_seen = 0, 0, False
    since_life_loss = np.full(n_envs, 99)
    try:
        while episodes < 2 or life_losses < 3:
            actions = rng.integers(0, env.action_space.n, n_envs)
            obs, rewards, dones, infos = env.step(actions)
            o_obs, o_raw, o_term, o_trunc, o_info = oracle.step(actions)
            game_end = o_term | o_trunc
            game_return += o_raw
            game_steps += 1
            since_life_loss += 1
            np.testing.assert_array_equal(rewards, np.sign(o_raw))
            assert rewards.dtype == np.float32
            assert np.all(dones[game_end])
            for i in range(n_envs):
                info = infos[i]
                assert info["TimeLimit.truncated"] == bool(o_trunc[i] and not o_term[i])
                assert ("terminal_observation" in info) == bool(dones[i])
                assert ("episode" in info) == bool(game_end[i])
                if game_end[i]:
                    episodes += 1
                    episode = info["episode"]
                    assert episode["r"] == game_return[i]  # real score, summed over all lives
                    unclipped_seen |= episode["r"] != np.sign(o_raw).sum() or episode["r"] > 1
                    # length in emulator frames (as SB3's Monitor): steps * 4 + reset no-ops
                    assert 4 * (game_steps[i] - 1) < episode["l"] <= 4 * game_steps[i] + 31
                    assert episode["t"] >= 0
                    np.testing.assert_array_equal(
                        info["terminal_observation"], o_info["final_obs"][i]
                    )
                    np.testing.assert_array_equal(obs[i], o_obs[i])  # first obs of next game
                    game_return[i], game_steps[i] = 0.0, 0
                    since_life_loss[i] = 99
                elif dones[i]:  # a life lost, the game goes on
                    life_losses += 1
                    since_life_loss[i] = 0
                    np.testing.assert_array_equal(info["terminal_observation"], o_obs[i])
                    assert not np.array_equal(info["terminal_observation"], obs[i])
                # VecFrameStack zero-fills after every done: the pre-loss frames are hidden.
                hidden = max(0, 3 - since_life_loss[i])
                assert not obs[i, :hidden].any()
                np.testing.assert_array_equal(obs[i, hidden:], o_obs[i, hidden:])
            assert game_steps.max() < 5000, "no game ended; the test env is broken"
        assert unclipped_seen or rom == "breakout"
    finally:
        env.close()
        oracle.close()


@pytest.mark.parametrize(("game", "rom"), [("Pong", "pong"), ("SpaceInvaders", "space_invaders")])
def test_frames_are_pixel_identical_to_sb3_preprocessing(game: str, rom: str) -> None:
    """Same emulator states -> same 84x84 frames as SB3's MaxAndSkipEnv + WarpFrame.

    With ``noop_max=0`` the native reset is "reset, FIRE one frame", which the reference
    replays by hand on a NoFrameskip-v4 env; then every step is 4 frames, max over the last 2.
    """
    native = NativeAtariVecEnv(rom, 1, seed=0, training=False, noop_max=0)
    reference = gym.make(f"{game}NoFrameskip-v4")
    warp = WarpFrame(reference)
    try:
        obs = native.reset()
        reference.reset(seed=0)
        rgb, *_ = reference.step(1)  # FIRE
        np.testing.assert_array_equal(obs[0, -1], warp.observation(rgb)[..., 0])
        rng = np.random.default_rng(0)
        for _ in range(100):
            action = int(rng.integers(0, native.action_space.n))
            obs, _, _, _ = native.step(np.array([action]))
            frames = [reference.step(action)[0] for _ in range(4)]
            expected = warp.observation(np.maximum(frames[-2], frames[-1]))[..., 0]
            np.testing.assert_array_equal(obs[0, -1], expected)
    finally:
        native.close()
        reference.close()


def test_episode_length_is_monitor_frame_count() -> None:
    """info["episode"]["l"] equals ale-py's episode frame number at game over (like Monitor)."""
    rom, seed = "breakout", 5
    env = NativeAtariVecEnv(rom, 1, seed=seed, training=True)
    oracle = _oracle(rom, 1, seed, autoreset_mode="NextStep")  # its info is pre-reset at done
    rng = np.random.default_rng(1)
    env.reset()
    try:
        for _ in range(5000):
            actions = rng.integers(0, 4, 1)
            _, _, _, infos = env.step(actions)
            _, _, term, trunc, o_info = oracle.step(actions)
            if term[0] or trunc[0]:
                assert infos[0]["episode"]["l"] == o_info["episode_frame_number"][0]
                break
            assert "episode" not in infos[0]
        else:
            pytest.fail("no game ended")
    finally:
        env.close()
        oracle.close()


def test_truncation_at_frame_cap() -> None:
    cap = 400  # frames; Pong never ends this early
    env = NativeAtariVecEnv("pong", 2, seed=0, training=True, max_frames_per_episode=cap)
    env.reset()
    try:
        for step in range(1, cap // 4 + 1):
            obs, _, dones, infos = env.step(np.zeros(2, dtype=np.int64))
            if step < cap // 4:
                assert not dones.any() and not infos[0]["TimeLimit.truncated"]
        assert dones.all()
        for i, info in enumerate(infos):
            assert info["TimeLimit.truncated"] is True
            assert cap < info["episode"]["l"] <= cap + 30
            assert not np.array_equal(info["terminal_observation"], obs[i])
            assert not obs[i, :3].any()  # a new game started
    finally:
        env.close()


def test_eval_env_plays_full_games_unclipped() -> None:
    n_envs, seed = 2, 3
    env = NativeAtariVecEnv("asterix", n_envs, seed=seed, training=False)
    oracle = _oracle("asterix", n_envs, seed)
    rng = np.random.default_rng(2)
    env.reset()
    returns = np.zeros(n_envs)
    finished, max_reward = 0, 0.0
    assert env.env_is_wrapped(Monitor) == [True, True]
    try:
        while finished < 2:
            actions = rng.integers(0, env.action_space.n, n_envs)
            obs, rewards, dones, infos = env.step(actions)
            o_obs, o_raw, o_term, o_trunc, _ = oracle.step(actions)
            np.testing.assert_array_equal(rewards, o_raw)  # unclipped
            np.testing.assert_array_equal(dones, o_term | o_trunc)  # no life-loss dones
            np.testing.assert_array_equal(obs, o_obs)
            returns += rewards
            max_reward = max(max_reward, float(rewards.max()))
            for i in np.flatnonzero(dones):
                assert infos[i]["episode"]["r"] == returns[i]
                returns[i] = 0
                finished += 1
        assert max_reward > 1  # Asterix scores 50+ per object: not clipped
    finally:
        env.close()
        oracle.close()


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
        from stable_baselines3.common.atari_wrappers import ClipRewardEnv, EpisodicLifeEnv

        assert env.env_is_wrapped(EpisodicLifeEnv) == [True, True]
        eval_env = NativeAtariVecEnv("breakout", 1, seed=0, training=False)
        assert eval_env.env_is_wrapped(ClipRewardEnv) == [False]
        eval_env.close()
    finally:
        env.close()
