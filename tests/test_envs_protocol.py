"""The native Atari backend plays SB3's Atari protocol: scripted comparisons with SB3's own stack.

The reference is what ``make_atari_env("<Game>NoFrameskip-v4")`` + ``VecFrameStack(4)`` +
``VecTransposeImage`` builds (``Monitor`` inside ``AtariWrapper`` under ``DummyVecEnv``), with one
change: each ``NoopResetEnv`` plays the no-op count the native game drew for the same reset (the
two draw from different random generators; the emulator itself is deterministic). Fed the same
actions, the two must then agree exactly on every observation, reward, done,
``terminal_observation``, ``TimeLimit.truncated`` and ``info["episode"]`` score and length: every
protocol point at once
(no-op starts, FIRE and action 2 after a reset, the NOOP step after a lost life, frame skip with
max-pooling, 84x84 grey, the stack and its zero-fill, life loss as terminal, reward clipping,
full-game unclipped episode info). Further tests check single points the exact comparison cannot
show on its own (the no-op range, the ball after a lost life, the frame cap).
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from stable_baselines3.common.atari_wrappers import AtariWrapper, NoopResetEnv
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import DummyVecEnv, VecFrameStack, VecTransposeImage

from coordrl.envs import make_atari_vec_env
from coordrl.envs.atari import atari_env_id
from coordrl.envs.native_vec_env import NativeAtariVecEnv


def _replay_noops(wrapper: NoopResetEnv, draws: list[int]) -> None:
    """Make ``wrapper`` play ``draws[0]``, ``draws[1]``, ... no-ops at its successive resets."""
    original, count = wrapper.reset, iter(range(10**9))

    def reset(**kwargs):
        wrapper.override_num_noops = draws[next(count)]
        return original(**kwargs)

    wrapper.reset = reset  # type: ignore[method-assign]


def _sb3_reference(game: str, native: NativeAtariVecEnv, seed: int, max_frames: int = 108_000):
    """SB3's Atari stack for ``game``, playing the native env's no-op draws (see module doc)."""

    def make(i: int):
        def init() -> gym.Env:
            raw = gym.make(atari_env_id(game), max_num_frames_per_episode=max_frames)
            env = AtariWrapper(
                Monitor(raw), terminal_on_life_loss=native.training, clip_reward=native.training
            )
            wrapper = env
            while not isinstance(wrapper, NoopResetEnv):
                wrapper = wrapper.env
            _replay_noops(wrapper, native._games[i].noops)
            return env

        return init

    venv = DummyVecEnv([make(i) for i in range(native.num_envs)])
    venv.seed(seed)
    return VecTransposeImage(VecFrameStack(venv, n_stack=4))


def _assert_frames_match(native: np.ndarray, sb3: np.ndarray, what: str) -> None:
    """Pixel-identical frames. (With ale-py's own grey frames, converted before max-pooling,
    up to 1.5% of an observation's pixels differed by up to 30 grey levels where two colours
    overlap; the native env max-pools RGB and converts as WarpFrame does.)"""
    differ = native != sb3
    assert not differ.any(), f"{what}: {differ.mean():.2%} of the pixels differ"


def _play_both(game: str, training: bool, steps: int, actions, seed: int = 7, n_envs: int = 2):
    """Step both backends with the same actions, asserting equality; returns what was seen."""
    rom = {
        "Breakout": "breakout",
        "Asterix": "asterix",
        "RoadRunner": "road_runner",
        "KungFuMaster": "kung_fu_master",
        "Krull": "krull",
    }[game]
    native = NativeAtariVecEnv(rom, n_envs, seed=seed, training=training)
    reference = _sb3_reference(game, native, seed)
    seen = {"episodes": 0, "life_losses": 0, "max_reward": 0.0}
    try:
        _assert_frames_match(native.reset(), reference.reset(), "reset")
        for step in range(steps):
            a = actions(step, n_envs)
            obs, rewards, dones, infos = native.step(a)
            r_obs, r_rewards, r_dones, r_infos = reference.step(a)
            _assert_frames_match(obs, r_obs, f"step {step}")
            np.testing.assert_array_equal(rewards, r_rewards, err_msg=f"step {step}")
            np.testing.assert_array_equal(dones, r_dones, err_msg=f"step {step}")
            seen["max_reward"] = max(seen["max_reward"], float(np.abs(rewards).max()))
            for info, r_info in zip(infos, r_infos, strict=True):
                assert info["TimeLimit.truncated"] == r_info["TimeLimit.truncated"]
                assert ("terminal_observation" in info) == ("terminal_observation" in r_info)
                if "terminal_observation" in info:
                    # At a game over ale-py stops before grabbing the frame that ended the game,
                    # SB3's MaxAndSkipEnv grabs it: that last frame may differ (SB3's algorithms
                    # read terminal_observation only to bootstrap truncated episodes).
                    game_over = "episode" in info and not info["TimeLimit.truncated"]
                    compared = slice(0, -1) if game_over else slice(None)
                    _assert_frames_match(
                        info["terminal_observation"][compared],
                        r_info["terminal_observation"][compared],
                        f"terminal observation, step {step}",
                    )
                assert ("episode" in info) == ("episode" in r_info), f"step {step}"
                if "episode" in info:
                    seen["episodes"] += 1
                    assert info["episode"]["r"] == r_info["episode"]["r"]
                    assert info["episode"]["l"] == r_info["episode"]["l"]
                elif "terminal_observation" in info:
                    seen["life_losses"] += 1
    finally:
        native.close()
        reference.close()
    return seen


def _random(seed: int, n_actions: int = 4):
    rng = np.random.default_rng(seed)
    return lambda step, n: rng.integers(0, n_actions, n)


@pytest.mark.parametrize(
    ("game", "training", "steps"),
    [
        ("Breakout", True, 1500),  # FIRE in the action set, 5 lives
        ("Breakout", False, 1500),  # evaluation: full games, FIRE only at game start
        ("Asterix", True, 1200),  # no FIRE, lives, 50-point rewards (clipping shows)
        ("Asterix", False, 600),
        ("RoadRunner", True, 600),  # FIRE, 18 actions
        ("KungFuMaster", True, 1500),  # lives, no FIRE at index 1, flicker (overlapping colours)
        ("Krull", True, 1500),  # FIRE, 18 actions, 3 lives
    ],
)
def test_native_plays_sb3_protocol_exactly(game: str, training: bool, steps: int) -> None:
    n_actions = {"Breakout": 4, "Asterix": 9, "RoadRunner": 18, "KungFuMaster": 14, "Krull": 18}[
        game
    ]
    seen = _play_both(game, training, steps, _random(1, n_actions))
    assert seen["episodes"] >= 2  # games ended (and restarted) on both
    if training:
        assert seen["life_losses"] >= 4
        assert seen["max_reward"] <= 1.0  # clipped
        assert seen["max_reward"] == 1.0 or game == "RoadRunner"
    else:
        assert seen["life_losses"] == 0
    if game == "Asterix" and not training:
        assert seen["max_reward"] >= 50  # unclipped


def test_noop_starts_are_1_to_30_frames_uniformly() -> None:
    """SB3's NoopResetEnv draws 1..30 no-op frames; the native env redraws ale-py's 0."""
    env = NativeAtariVecEnv("pong", 1, seed=3)
    try:
        game = env._games[0]
        for _ in range(600):
            game.reset()
        draws = np.array(game.noops)
        assert draws.min() == 1 and draws.max() == 30
        counts = np.bincount(draws, minlength=31)[1:]
        assert counts.min() > 0 and counts.max() < 3 * counts.mean()
    finally:
        env.close()


def _noop_play(backend: str, training: bool, steps: int) -> tuple[int, int]:
    """Breakout with an agent that never presses FIRE, until its first game ends or ``steps``:
    (life-loss dones, games ended)."""
    env = make_atari_vec_env("Breakout", 1, seed=0, backend=backend, training=training)
    lost = ended = 0
    try:
        env.reset()
        for _ in range(steps):
            _, _, dones, infos = env.step(np.zeros(1, dtype=np.int64))
            ended += "episode" in infos[0]
            lost += bool(dones[0]) and "episode" not in infos[0]
            if ended:
                break
    finally:
        env.close()
    return lost, ended


@pytest.mark.parametrize("backend", ["native", "sb3"])
def test_fire_after_life_loss_only_when_training(backend: str) -> None:
    """Breakout serves the ball only on FIRE. SB3's training env presses it after every lost
    life, so an agent that never fires still loses all 5 lives and the game ends; the
    evaluation env presses it at game start only, so that agent loses one life and the game
    stands still (until the frame cap)."""
    lost, ended = _noop_play(backend, training=True, steps=1500)
    assert lost == 4 and ended == 1
    lost, ended = _noop_play(backend, training=False, steps=1500)
    assert lost == 0 and ended == 0


def test_frame_cap_counts_frames_from_the_game_reset() -> None:
    """Truncated at the first step that reaches the cap, counted like SB3 (from the reset,
    no-ops included): 0-3 frames later than SB3, which cuts the last step short."""
    cap = 400  # frames; Pong never ends this early
    env = NativeAtariVecEnv("pong", 3, seed=0, training=True, max_frames_per_episode=cap)
    try:
        env.reset()
        noops = [game.noops[0] for game in env._games]
        done_at = [0, 0, 0]
        for step in range(1, cap // 4 + 2):
            obs, _, dones, infos = env.step(np.zeros(3, dtype=np.int64))
            for i in np.flatnonzero(dones):
                if not done_at[i]:
                    done_at[i] = step
                    assert infos[i]["TimeLimit.truncated"] is True
                    assert cap <= infos[i]["episode"]["l"] < cap + 4
                    assert not obs[i, :3].any()  # a new game started, its stack zero-filled
        for i, n in enumerate(noops):
            # the game reset, n no-ops, FIRE and action 2 (8 frames), then 4 frames a step
            assert done_at[i] == -(-(cap - n - 8) // 4)
    finally:
        env.close()
