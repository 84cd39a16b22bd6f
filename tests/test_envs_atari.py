"""Atari names, the env factory, and what both Atari backends build (shapes, spaces, seeding)."""

from __future__ import annotations

import re

import numpy as np
import pytest
from stable_baselines3.common.vec_env import DummyVecEnv, VecTransposeImage

from coordrl import runs
from coordrl.envs import (
    EnvSpec,
    UnknownEnvError,
    atari,
    canonical_game,
    factory,
    make_atari_vec_env,
    make_env,
)
from coordrl.envs.atari import ATARI_GAMES, atari_env_id, rom_id
from coordrl.envs.factory import resolve_env
from coordrl.envs.native_vec_env import NativeAtariVecEnv


@pytest.mark.parametrize(
    ("name", "game"),
    [
        ("Pong", "Pong"),
        ("pong", "Pong"),
        ("PONG", "Pong"),
        (" Pong ", "Pong"),
        ("PongNoFrameskip-v4", "Pong"),
        ("PongDeterministic-v4", "Pong"),
        ("Pong-v0", "Pong"),
        ("ALE/Pong-v5", "Pong"),
        ("ale/pong-v5", "Pong"),
        ("MsPacman", "MsPacman"),
        ("ms_pacman", "MsPacman"),
        ("ms-pacman", "MsPacman"),
        ("MsPacmanNoFrameskip-v4", "MsPacman"),
        ("ALE/MsPacman-v5", "MsPacman"),
        ("space_invaders", "SpaceInvaders"),
        ("Pitfall2", "Pitfall2"),
        ("pitfall", "Pitfall"),
        ("tic_tac_toe_3d", "TicTacToe3D"),
    ],
)
def test_canonical_game_accepts_user_spellings(name: str, game: str) -> None:
    assert canonical_game(name) == game


def test_the_cli_backend_choices_are_the_backends_envs_builds() -> None:
    """``runs.ENV_BACKENDS`` (torch-free, for the CLIs and sweep files) names what envs builds."""
    assert runs.ENV_BACKENDS == atari.BACKENDS == factory.BACKENDS


def test_game_table_is_ale_py_rom_list() -> None:
    from ale_py import roms

    playable = [
        r for r in roms.get_all_rom_ids() if r not in ("combat", "joust", "maze_craze", "warlords")
    ]
    assert sorted(ATARI_GAMES.values()) == sorted(playable)
    assert len(ATARI_GAMES) >= 100
    for game, rom in ATARI_GAMES.items():
        assert re.fullmatch(r"[A-Z][A-Za-z0-9]*", game), game
        assert canonical_game(rom) == game  # every ROM id round-trips, no key collisions
        assert rom_id(game) == rom
    assert rom_id("MsPacman") == "ms_pacman"
    assert atari_env_id("pong") == "PongNoFrameskip-v4"
    assert atari_env_id("Tetris") == "ALE/Tetris-v5"  # no v4 id: v5 used without frameskip


@pytest.mark.parametrize(
    ("name", "suggestion"),
    [
        ("Pongg", "Pong"),
        ("Breakuot", "Breakout"),
        ("MsPackman", "MsPacman"),
        ("ALE/Pomg-v5", "Pong"),
    ],
)
def test_unknown_game_suggests_close_names(name: str, suggestion: str) -> None:
    with pytest.raises(UnknownEnvError) as info:
        canonical_game(name)
    assert suggestion in info.value.suggestions
    message = str(info.value)
    assert name in message and suggestion in message and "\n" not in message
    assert isinstance(info.value, ValueError)


def test_unplayable_roms_are_rejected() -> None:
    """ale-py ships ROMs it cannot play (ALE aborts the process on them): refuse them first."""
    with pytest.raises(UnknownEnvError, match="cannot play"):
        canonical_game("Combat")
    with pytest.raises(UnknownEnvError, match="cannot play"):
        make_env("warlords", 1, 0)


def test_ram_variants_are_rejected() -> None:
    with pytest.raises(UnknownEnvError, match="Pong"):
        canonical_game("Pong-ramNoFrameskip-v4")


def test_resolve_env() -> None:
    breakout = EnvSpec("Breakout", "BreakoutNoFrameskip-v4", True, "atari")
    assert resolve_env("ALE/Breakout-v5") == breakout
    assert resolve_env("CartPole-v1") == EnvSpec("CartPole-v1", "CartPole-v1", False, "gym")
    pixel = resolve_env("coordrl/PointAtDot-v0")
    assert pixel.is_atari is False and pixel.family == "pixel"
    minatar = EnvSpec("MinAtar/Breakout-v1", "MinAtar/Breakout-v1", False, "minatar")
    assert resolve_env("MinAtar/Breakout-v1") == resolve_env("minatar/breakout-v1") == minatar
    assert resolve_env("MinAtar/SpaceInvaders-v0").family == "minatar"
    with pytest.raises(ValueError, match="contradicts"):
        EnvSpec("Pong", "PongNoFrameskip-v4", False, "atari")
    with pytest.raises(UnknownEnvError) as info:
        resolve_env("CartPol-v1")
    assert "CartPole-v1" in info.value.suggestions
    with pytest.raises(UnknownEnvError) as info:
        resolve_env("Pongg")
    assert info.value.suggestions[0] == "Pong"
    with pytest.raises(UnknownEnvError) as info:
        resolve_env("qqqqqqqq")
    assert info.value.suggestions == [] and "qqqqqqqq" in str(info.value)


def test_make_env_bad_arguments() -> None:
    with pytest.raises(ValueError, match="backend"):
        make_env("Pong", 1, 0, backend="gpu")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="n_envs"):
        make_env("Pong", 0, 0)
    with pytest.raises(UnknownEnvError):
        make_env("NotAGame", 1, 0)


def test_make_env_gymnasium_ids() -> None:
    env, spec = make_env("CartPole-v1", 2, seed=0)
    try:
        assert isinstance(env, DummyVecEnv) and spec.is_atari is False
        assert env.reset().shape == (2, 4)
        obs, rewards, dones, infos = env.step(np.array([0, 1]))
        assert obs.shape == (2, 4) and len(infos) == 2
    finally:
        env.close()
    env, spec = make_env("coordrl/PointAtDot-v0", 2, seed=0)
    try:
        assert spec == EnvSpec("coordrl/PointAtDot-v0", "coordrl/PointAtDot-v0", False, "pixel")
        obs = env.reset()
        assert obs.shape[0] == 2
        env.step(np.array([env.action_space.sample() for _ in range(2)]))
    finally:
        env.close()


@pytest.mark.parametrize("training", [True, False])
def test_backends_have_same_spaces(training: bool) -> None:
    native, spec = make_env("Pong", 2, seed=0, backend="native", training=training)
    sb3, spec_sb3 = make_env("pong", 2, seed=0, backend="sb3", training=training)
    try:
        assert spec == spec_sb3 == EnvSpec("Pong", "PongNoFrameskip-v4", True, "atari")
        assert isinstance(native, NativeAtariVecEnv)
        assert isinstance(sb3, VecTransposeImage)
        assert native.observation_space == sb3.observation_space
        assert native.observation_space.shape == (4, 84, 84)
        assert native.observation_space.dtype == np.uint8
        assert native.action_space == sb3.action_space
        assert native.env_method("get_action_meanings") == sb3.env_method("get_action_meanings")
        for env in (native, sb3):
            obs = env.reset()
            assert obs.shape == (2, 4, 84, 84) and obs.dtype == np.uint8
            # Fresh games: VecFrameStack / the C++ stack start zero-filled but the last frame.
            assert not obs[:, :3].any() and obs[:, 3].any()
            obs, rewards, dones, infos = env.step(np.array([0, 1]))
            assert obs.shape == (2, 4, 84, 84) and obs.dtype == np.uint8
            assert rewards.dtype == np.float32 and dones.dtype == bool
            assert all("TimeLimit.truncated" in info for info in infos)
    finally:
        native.close()
        sb3.close()


def _rollout(env, n_steps: int, action_seed: int = 0):
    rng = np.random.default_rng(action_seed)
    observations = [env.reset()]
    rewards, dones = [], []
    for _ in range(n_steps):
        obs, reward, done, _ = env.step(rng.integers(0, env.action_space.n, env.num_envs))
        observations.append(obs)
        rewards.append(reward)
        dones.append(done)
    return np.stack(observations), np.stack(rewards), np.stack(dones)


@pytest.mark.parametrize("backend", ["native", "sb3"])
def test_seeding_is_reproducible(backend: str) -> None:
    runs = []
    for game, seed, n_steps in (
        ("Breakout", 3, 80),
        ("Breakout", 3, 80),
        ("Pong", 3, 20),
        ("Pong", 4, 20),
    ):
        env = make_atari_vec_env(game, 2, seed=seed, backend=backend)
        try:
            runs.append(_rollout(env, n_steps))
        finally:
            env.close()
    assert runs[0][2].any()  # the reproduced stretch includes (life-loss) dones
    for a, b in zip(runs[0], runs[1], strict=True):
        np.testing.assert_array_equal(a, b)
    # Another seed, other no-op starts. (Not Breakout: SB3 does its no-ops *before* FIRE there,
    # while the game waits for FIRE, so SB3's Breakout starts do not depend on the seed.)
    assert not np.array_equal(runs[2][0], runs[3][0])


def test_native_results_repeat_with_the_same_seed() -> None:
    runs = []
    for _ in range(2):
        env = make_atari_vec_env("Breakout", 3, seed=5)
        try:
            runs.append(_rollout(env, 60))
        finally:
            env.close()
    for a, b in zip(runs[0], runs[1], strict=True):
        np.testing.assert_array_equal(a, b)


def test_native_seed_method_reseeds_next_reset() -> None:
    env = make_atari_vec_env("Breakout", 2, seed=None)
    try:
        env.seed(7)
        first = _rollout(env, 60)
        env.seed(7)
        second = _rollout(env, 60)
        for a, b in zip(first, second, strict=True):
            np.testing.assert_array_equal(a, b)
    finally:
        env.close()


def test_native_rejects_bad_actions() -> None:
    env = make_atari_vec_env("Pong", 2, seed=0)
    try:
        with pytest.raises(RuntimeError, match="reset"):
            env.step(np.array([0, 0]))
        env.reset()
        with pytest.raises(ValueError, match="one per env"):
            env.step(np.array([0, 0, 0]))
        with pytest.raises(ValueError, match=r"\[0, 5\]"):
            env.step(np.array([0, 6]))
        env.step(np.array([[1], [2]]))  # (n, 1) actions as some callers pass them
    finally:
        env.close()
