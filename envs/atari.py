"""Atari games: name table, name parsing and the vector-env factory (native or SB3 backend).

Both backends give what SB3 / rl-baselines3-zoo users get from
``make_atari_env("<Game>NoFrameskip-v4") + VecFrameStack(4)``: 1-30 no-op frames at game start,
frame skip 4 with max-pooling of the last two frames, 84x84 grayscale, 4 stacked frames
(channel-first, ``(4, 84, 84)`` uint8), FIRE and action 2 after every reset where the game has
FIRE, a 108k-frame cap, and for training (``training=True``) end-of-life as terminal (followed by
a NOOP step and the FIRE reset) plus rewards clipped to their sign, while ``info["episode"]``
carries the real full-game unclipped score. The native backend plays this protocol step for step,
pixel for pixel (tests/test_envs_protocol.py; what still differs is in its module docstring).
``training=False`` builds the evaluation env: full games (no life-loss terminal) and unclipped
rewards.
"""

from __future__ import annotations

import difflib
import re
from typing import Literal

import gymnasium as gym
from ale_py import roms
from ale_py.registration import rom_id_to_name
from stable_baselines3.common.env_util import make_atari_env
from stable_baselines3.common.vec_env import VecEnv, VecFrameStack, VecTransposeImage

from coordrl.envs.errors import UnknownEnvError
from coordrl.envs.native_vec_env import NativeAtariVecEnv

Backend = Literal["native", "sb3"]
BACKENDS: tuple[str, ...] = ("native", "sb3")

#: Every playable game that ale-py ships a ROM for: CamelCase name ("MsPacman") -> ROM id
#: ("ms_pacman"). ROMs without an ``ALE/<Name>-v5`` id (multi-player-only ones such as Combat)
#: are left out: ALE aborts the whole process when asked to load them. (Importing ale-py
#: registers the ALE ids; coordrl itself registers nothing at import, see
#: ``coordrl.envs.register_envs``.)
ATARI_GAMES: dict[str, str] = {
    rom_id_to_name(rom): rom
    for rom in roms.get_all_rom_ids()
    if f"ALE/{rom_id_to_name(rom)}-v5" in gym.registry
}
_UNSUPPORTED_ROMS: dict[str, str] = {
    re.sub(r"[^a-z0-9]", "", rom_id_to_name(rom).lower()): rom_id_to_name(rom)
    for rom in roms.get_all_rom_ids()
    if rom_id_to_name(rom) not in ATARI_GAMES
}

# Lookup key: lower case, letters and digits only ("Ms_Pacman", "ms-pacman" -> "mspacman").
_BY_KEY: dict[str, str] = {re.sub(r"[^a-z0-9]", "", g.lower()): g for g in ATARI_GAMES}
_ALE_PREFIX = re.compile(r"^ALE/", re.IGNORECASE)
_GYM_SUFFIX = re.compile(r"(?:NoFrameskip|Deterministic)?-v\d+$", re.IGNORECASE)

#: Settings shared by both backends (SB3 AtariWrapper defaults on a NoFrameskip-v4 env).
NOOP_MAX = 30
FRAME_SKIP = 4
SCREEN_SIZE = 84
MAX_FRAMES_PER_EPISODE = 108_000


def _key(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def _strip_gym_id(name: str) -> str:
    """``"ALE/Pong-v5"`` / ``"PongNoFrameskip-v4"`` -> ``"Pong"``; other names unchanged."""
    return _GYM_SUFFIX.sub("", _ALE_PREFIX.sub("", name.strip()))


def close_atari_games(name: str, n: int = 5) -> list[str]:
    """Atari game names closest to ``name`` (best first), for "did you mean" messages.

    :param name: any spelling, e.g. ``"Pongg"`` or ``"ALE/Breakuot-v5"``.
    :param n: at most this many names.
    """
    matches = difflib.get_close_matches(_key(_strip_gym_id(name)), _BY_KEY, n=n, cutoff=0.6)
    return [_BY_KEY[m] for m in matches]


def is_atari_game(name: str) -> bool:
    """Whether ``name`` is a spelling of an Atari game that :func:`canonical_game` accepts."""
    return _key(_strip_gym_id(name)) in _BY_KEY


def is_unplayable_rom(name: str) -> bool:
    """Whether ``name`` spells a ROM that ale-py ships but cannot play (e.g. ``"Combat"``)."""
    return _key(_strip_gym_id(name)) in _UNSUPPORTED_ROMS


def canonical_game(name: str) -> str:
    """The canonical CamelCase name of an Atari game.

    Accepts ``"Pong"``, ``"pong"``, ``"PongNoFrameskip-v4"``, ``"ALE/Pong-v5"``, ``"MsPacman"``,
    ``"ms_pacman"``, ``"MsPacmanNoFrameskip-v4"`` ... (case, ``_``/``-`` and the gymnasium
    ``ALE/``, ``NoFrameskip``, ``Deterministic`` and ``-vN`` decorations are ignored).

    :param name: the name the user typed.
    :return: e.g. ``"Pong"`` or ``"MsPacman"``.
    :raises UnknownEnvError: no such game; the message suggests close names.
    """
    key = _key(_strip_gym_id(name))
    game = _BY_KEY.get(key)
    if key in _UNSUPPORTED_ROMS:
        rom_name = _UNSUPPORTED_ROMS[key]
        raise UnknownEnvError(name, hint=f"ale-py ships the {rom_name} ROM but cannot play it")
    if game is None:
        raise UnknownEnvError(
            name,
            close_atari_games(name),
            hint="Atari games are the ale-py ROM names, e.g. Pong, Breakout, MsPacman",
        )
    return game


def rom_id(game: str) -> str:
    """The ale-py ROM id (snake_case, e.g. ``"ms_pacman"``) of any spelling of a game."""
    return ATARI_GAMES[canonical_game(game)]


def atari_env_id(game: str) -> str:
    """The gymnasium id whose semantics the factory reproduces.

    ``"<Game>NoFrameskip-v4"`` (what SB3 / rl-zoo3 train on) where ale-py registers one, else
    ``"ALE/<Game>-v5"`` (used with frameskip=1 and no sticky actions, i.e. as v4).

    :param game: any spelling of an Atari game.
    """
    name = canonical_game(game)
    v4 = f"{name}NoFrameskip-v4"
    return v4 if v4 in gym.registry else f"ALE/{name}-v5"


def make_atari_vec_env(
    game: str,
    n_envs: int,
    seed: int | None,
    backend: Backend = "native",
    training: bool = True,
    n_stack: int = 4,
    repeat_action_probability: float = 0.0,
) -> VecEnv:
    """A vector env of an Atari game with the SB3 / rl-zoo3 Atari preprocessing.

    :param game: any spelling accepted by :func:`canonical_game`.
    :param n_envs: number of parallel environments (>= 1).
    :param seed: environment ``i`` is seeded with ``seed + i`` at the first reset; ``None`` for
        random seeds.
    :param backend: ``"native"`` (ale-py's C++ ``AtariVectorEnv``, fast, default) or ``"sb3"``
        (SB3's ``make_atari_env`` + ``VecFrameStack`` + ``VecTransposeImage``, the reference).
    :param training: ``True``: life loss is terminal and rewards are clipped to their sign (for
        learning); ``False``: evaluation env playing full games with unclipped rewards. In both
        cases ``info["episode"]`` holds the full-game unclipped score at game end.
    :param n_stack: number of stacked frames.
    :param repeat_action_probability: ALE's sticky actions, in both backends (0, as in
        ``NoFrameskip-v4``, is what SB3 / rl-zoo3 train on).
    :return: an SB3 ``VecEnv`` with observations ``(n_stack, 84, 84)`` uint8.
    """
    if backend not in BACKENDS:
        raise ValueError(f"unknown env backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    if not isinstance(n_envs, int) or isinstance(n_envs, bool) or n_envs < 1:
        raise ValueError(f"n_envs must be a positive integer, got {n_envs!r}")
    if not isinstance(n_stack, int) or isinstance(n_stack, bool) or n_stack < 1:
        raise ValueError(f"n_stack must be a positive integer, got {n_stack!r}")
    name = canonical_game(game)
    if backend == "native":
        return NativeAtariVecEnv(
            ATARI_GAMES[name],
            n_envs,
            seed=seed,
            training=training,
            n_stack=n_stack,
            noop_max=NOOP_MAX,
            frame_skip=FRAME_SKIP,
            screen_size=SCREEN_SIZE,
            max_frames_per_episode=MAX_FRAMES_PER_EPISODE,
            repeat_action_probability=repeat_action_probability,
        )
    return _make_sb3_atari_vec_env(name, n_envs, seed, training, n_stack, repeat_action_probability)


def _make_sb3_atari_vec_env(
    name: str,
    n_envs: int,
    seed: int | None,
    training: bool,
    n_stack: int,
    repeat_action_probability: float = 0.0,
) -> VecEnv:
    """SB3's own pipeline, exactly as rl-zoo3 builds it (Monitor inside AtariWrapper)."""
    env_id = atari_env_id(name)
    env_kwargs: dict = {"repeat_action_probability": repeat_action_probability}
    if env_id.startswith("ALE/"):
        # v5 defaults differ from NoFrameskip-v4: undo frame skipping (and sticky actions above).
        env_kwargs["frameskip"] = 1
    wrapper_kwargs = {"noop_max": NOOP_MAX, "frame_skip": FRAME_SKIP, "screen_size": SCREEN_SIZE}
    if not training:
        wrapper_kwargs.update(terminal_on_life_loss=False, clip_reward=False)
    venv = make_atari_env(
        env_id, n_envs=n_envs, seed=seed, wrapper_kwargs=wrapper_kwargs, env_kwargs=env_kwargs
    )
    return VecTransposeImage(VecFrameStack(venv, n_stack=n_stack))
