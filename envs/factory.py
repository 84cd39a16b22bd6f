"""One entry point for every environment coordrl trains on: Atari games, MinAtar games and
gymnasium ids.

Nothing is registered with gymnasium when coordrl is imported: :func:`register_envs` registers
coordrl's own ids and MinAtar's (idempotently), and :func:`resolve_env` / :func:`make_env` call
it before they look a name up.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass

import ale_py
import gymnasium as gym
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.vec_env import VecEnv

from coordrl.envs import minatar, pixel
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

#: Environment families (``EnvSpec.family``); hyperparameters and networks are chosen per family.
ENV_FAMILIES: tuple[str, ...] = ("atari", "minatar", "pixel", "gym")


def register_envs() -> None:
    """Register the gymnasium ids coordrl knows, once (calling it again does nothing):

    * ``coordrl/PointAtDot-v0`` (:mod:`coordrl.envs.pixel`);
    * MinAtar's ``MinAtar/<Game>-v0`` / ``-v1`` (``minatar.gym.register_envs()``);
    * ale-py's Atari ids (ale-py registers them when it is imported; ``gym.register_envs`` is
      the documented way to say so).

    After it, ``gym.make("coordrl/PointAtDot-v0")`` and ``gym.make("MinAtar/Breakout-v1")`` work.
    """
    gym.register_envs(ale_py)
    pixel.register()
    minatar.register()


@dataclass(frozen=True)
class EnvSpec:
    """What an environment name resolved to.

    :param game: canonical Atari name (``"Pong"``) or, for other envs, the gymnasium id
        (``"MinAtar/Breakout-v1"``, ``"coordrl/PointAtDot-v0"``).
    :param env_id: the gymnasium id whose semantics the env has (``"PongNoFrameskip-v4"``,
        ``"MinAtar/Breakout-v1"``, ``"coordrl/PointAtDot-v0"``).
    :param is_atari: whether ``game`` is an Atari game (Atari preprocessing, human-normalised
        scores); the same as ``family == "atari"``.
    :param family: ``"atari"`` (ALE games), ``"minatar"`` (MinAtar's five games), ``"pixel"``
        (coordrl's own pixel envs) or ``"gym"`` (any other registered gymnasium id); picks the
        hyperparameter file (``agents.config.load_config(..., family=)``) and the network
        (``agents.factory.build_model(..., family=)``), as rl-baselines3-zoo picks
        hyperparameters per env family.
    """

    game: str
    env_id: str
    is_atari: bool
    family: str

    def __post_init__(self) -> None:
        if self.family not in ENV_FAMILIES:
            raise ValueError(f"unknown env family {self.family!r}; one of {ENV_FAMILIES}")
        if self.is_atari != (self.family == "atari"):
            raise ValueError(f"is_atari={self.is_atari} contradicts family={self.family!r}")


def _is_non_atari_gym_id(name: str) -> bool:
    if name not in gym.registry:
        return False
    entry_point = gym.registry[name].entry_point
    return not (isinstance(entry_point, str) and entry_point.startswith("ale_py"))


def _gym_family(env_id: str) -> str:
    entry_point = gym.registry[env_id].entry_point
    if isinstance(entry_point, str) and entry_point.startswith("coordrl.envs.pixel"):
        return "pixel"
    return "gym"


def resolve_env(name: str) -> EnvSpec:
    """Resolve a user-typed name without building anything (registers coordrl's and MinAtar's
    ids first, see :func:`register_envs`).

    A MinAtar id in any case (``"MinAtar/Breakout-v1"``, ``"minatar/breakout-v1"``) is MinAtar; a
    registered non-ALE gymnasium id wins next (``"CartPole-v1"``, ``"coordrl/PointAtDot-v0"``);
    otherwise the name must be an Atari game in any spelling :func:`canonical_game` accepts.

    :param name: e.g. ``"pong"``, ``"ALE/Pong-v5"``, ``"MinAtar/Breakout-v1"``, ``"CartPole-v1"``.
    :raises UnknownEnvError: none of these; the message suggests close names.
    """
    register_envs()
    parsed = minatar.parse_env_id(name)
    if parsed is not None:
        game, minimal = parsed
        env_id = f"MinAtar/{game}-v{int(minimal)}"
        return EnvSpec(game=env_id, env_id=env_id, is_atari=False, family="minatar")
    if _is_non_atari_gym_id(name):
        return EnvSpec(game=name, env_id=name, is_atari=False, family=_gym_family(name))
    if is_atari_game(name) or is_unplayable_rom(name):
        game = canonical_game(name)  # raises, naming the problem, for unplayable ROMs
        return EnvSpec(game=game, env_id=atari_env_id(game), is_atari=True, family="atari")
    suggestions = close_atari_games(name, n=3)
    gym_ids = [env_id for env_id in gym.registry if _is_non_atari_gym_id(env_id)]
    suggestions += difflib.get_close_matches(name, gym_ids, n=3, cutoff=0.6)
    raise UnknownEnvError(
        name,
        list(dict.fromkeys(suggestions)),
        hint="use an Atari game such as Pong or MsPacman, a MinAtar id such as "
        "MinAtar/Breakout-v1, or a registered gymnasium id",
    )


def make_env(
    name: str,
    n_envs: int,
    seed: int | None,
    backend: Backend = "native",
    training: bool = True,
) -> tuple[VecEnv, EnvSpec]:
    """Build a vector env for an Atari game, a MinAtar game or any registered gymnasium id.

    Atari games get the SB3 / rl-zoo3 Atari pipeline (see :func:`envs.atari.make_atari_vec_env`);
    MinAtar games get :class:`envs.minatar.MinAtarVecEnv` (channel-first uint8 {0, 255} boards;
    MinAtar's sticky actions 0.1 and difficulty ramping); other ids get SB3's ``make_vec_env``
    (``DummyVecEnv`` of ``Monitor``-wrapped envs), for which ``backend`` and ``training`` make no
    difference.

    :param name: Atari game in any spelling (``"Pong"``, ``"ms_pacman"``, ``"ALE/Pong-v5"``), a
        MinAtar id (``"MinAtar/Breakout-v1"``) or a gymnasium id (``"coordrl/PointAtDot-v0"``).
    :param n_envs: number of parallel environments (>= 1).
    :param seed: env ``i`` is seeded with ``seed + i``; ``None`` for random seeds.
    :param backend: Atari and MinAtar: ``"native"`` (ale-py's C++ vector env / coordrl's MinAtar
        vector env) or ``"sb3"`` (the reference: SB3's wrappers and ``DummyVecEnv``).
    :param training: Atari only: ``True`` = life-loss terminal + clipped rewards for learning;
        ``False`` = evaluation env (full games, unclipped rewards). MinAtar has neither life
        loss nor reward clipping: both give the same env.
    :return: ``(vec_env, spec)``.
    :raises UnknownEnvError: unknown name (with suggestions).
    :raises ValueError: bad ``backend`` or ``n_envs``.
    """
    if backend not in BACKENDS:
        raise ValueError(f"unknown env backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    if not isinstance(n_envs, int) or isinstance(n_envs, bool) or n_envs < 1:
        raise ValueError(f"n_envs must be a positive integer, got {n_envs!r}")
    spec = resolve_env(name)
    if spec.family == "atari":
        return make_atari_vec_env(spec.game, n_envs, seed, backend, training), spec
    if spec.family == "minatar":
        game, minimal = minatar.parse_env_id(spec.env_id)  # type: ignore[misc]
        return minatar.make_minatar_vec_env(game, n_envs, seed, minimal, backend), spec
    return make_vec_env(spec.env_id, n_envs=n_envs, seed=seed), spec
