"""One entry point for every environment coordrl trains on: Atari games and gymnasium ids."""

from __future__ import annotations

import difflib
from dataclasses import dataclass

import gymnasium as gym
from coordrl.envs.atari import (
    BACKENDS,
    Backend,
    atari_env_id,
    canonical_game,
    close_atari_games,
    is_atari_game,
    is_unplayable_rom,
    make_atari_vec_env,
)
from coordrl.envs.errors import UnknownEnvError
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.vec_env import VecEnv


@dataclass(frozen=True)
class EnvSpec:
    """What an environment name resolved to.

    :param game: canonical Atari name (``"Pong"``) or, for other envs, the gymnasium id.
    :param env_id: the gymnasium id whose semantics the env has (``"PongNoFrameskip-v4"``,
        ``"coordrl/PointAtDot-v0"``).
    :param is_atari: whether ``game`` is an Atari game (Atari preprocessing, human-normalised
        scores).
    """

    game: str
    env_id: str
    is_atari: bool


def _is_non_atari_gym_id(name: str) -> bool:
    if name not in gym.registry:
        return False
    entry_point = gym.registry[name].entry_point
    return not (isinstance(entry_point, str) and entry_point.startswith("ale_py"))


def resolve_env(name: str) -> EnvSpec:
    """Resolve a user-typed name without building anything.

    A registered non-ALE gymnasium id wins (``"CartPole-v1"``, ``"coordrl/PointAtDot-v0"``);
    otherwise the name must be an Atari game in any spelling :func:`canonical_game` accepts.

    :param name: e.g. ``"pong"``, ``"ALE/Pong-v5"``, ``"CartPole-v1"``.
    :raises UnknownEnvError: neither; the message suggests close Atari and gymnasium names.
    """
    if _is_non_atari_gym_id(name):
        return EnvSpec(game=name, env_id=name, is_atari=False)
    if is_atari_game(name) or is_unplayable_rom(name):
        game = canonical_game(name)  # raises, naming the problem, for unplayable ROMs
        return EnvSpec(game=game, env_id=atari_env_id(game), is_atari=True)
    suggestions = close_atari_games(name, n=3)
    gym_ids = [env_id for env_id in gym.registry if _is_non_atari_gym_id(env_id)]
    suggestions += difflib.get_close_matches(name, gym_ids, n=3, cutoff=0.6)
    raise UnknownEnvError(
        name,
        list(dict.fromkeys(suggestions)),
        hint="use an Atari game such as Pong or MsPacman, or a registered gymnasium id",
    )


def make_env(
    name: str,
    n_envs: int,
    seed: int | None,
    backend: Backend = "native",
    training: bool = True,
) -> tuple[VecEnv, EnvSpec]:
    """Build a vector env for an Atari game or any registered gymnasium id.

    Atari games get the SB3 / rl-zoo3 Atari pipeline (see :func:`envs.atari.make_atari_vec_env`);
    other ids get SB3's ``make_vec_env`` (``DummyVecEnv`` of ``Monitor``-wrapped envs), for
    which ``backend`` and ``training`` make no difference.

    :param name: Atari game in any spelling (``"Pong"``, ``"ms_pacman"``, ``"ALE/Pong-v5"``) or a
        gymnasium id (``"coordrl/PointAtDot-v0"``).
    :param n_envs: number of parallel environments (>= 1).
    :param seed: env ``i`` is seeded with ``seed + i``; ``None`` for random seeds.
    :param backend: Atari only: ``"native"`` (ale-py C++ vector env) or ``"sb3"`` (reference).
    :param training: Atari only: ``True`` = life-loss terminal + clipped rewards for learning;
        ``False`` = evaluation env (full games, unclipped rewards).
    :return: ``(vec_env, spec)``.
    :raises UnknownEnvError: unknown name (with suggestions).
    :raises ValueError: bad ``backend`` or ``n_envs``.
    """
    if backend not in BACKENDS:
        raise ValueError(f"unknown env backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    if not isinstance(n_envs, int) or isinstance(n_envs, bool) or n_envs < 1:
        raise ValueError(f"n_envs must be a positive integer, got {n_envs!r}")
    spec = resolve_env(name)
    if spec.is_atari:
        return make_atari_vec_env(spec.game, n_envs, seed, backend, training), spec
    return make_vec_env(spec.env_id, n_envs=n_envs, seed=seed), spec
