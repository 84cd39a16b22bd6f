"""MinAtar (Young & Tian, 2019, https://arxiv.org/abs/1903.03176): five miniature Atari games on a
10x10 board, as one fast SB3 ``VecEnv``.

Games: Asterix, Breakout, Freeway, Seaquest, SpaceInvaders, named by MinAtar's gymnasium ids
``MinAtar/<Game>-v1`` (minimal action set, what coordrl trains on) and ``MinAtar/<Game>-v0``
(all 6 actions). The ids are registered by ``minatar.gym.register_envs()``, which coordrl calls
from :func:`coordrl.envs.register_envs` (never at import time).

MinAtar's defaults are kept: sticky actions with probability 0.1 (the previous action is repeated)
and difficulty ramping on (the games speed up as they go on). MinAtar has no life-loss signal and
its rewards are already small integers (0/1 per step in every game), so the training and
evaluation envs are the same env; returns in ``info["episode"]`` are unclipped. The one addition:
an episode is truncated after :data:`MAX_EPISODE_STEPS` steps (MinAtar's own ids have no limit, and
a good Breakout agent can play forever, which would hang an evaluation; the limit is the one of
the ``gym-minatar`` package's registrations), reported as ``info["TimeLimit.truncated"]``.

Observations: MinAtar's boards are ``(10, 10, C)`` bool arrays (one channel per object type:
4 to 10 channels). :class:`MinAtarVecEnv` emits them as channel-first ``uint8`` images
``(C, 10, 10)`` with values {0, 255}, i.e. ``Box(0, 255, (C, 10, 10), uint8)``: SB3's ``CnnPolicy``
accepts that as an image, does not transpose it, keeps it as uint8 in its buffers and divides by
255 before the network, which gives back exactly the 0/1 board. :func:`board_to_image` is that
conversion, in one numpy operation for the whole batch.

:class:`MinAtarVecEnv` steps every game in one Python loop (MinAtar's ``Environment`` objects, no
gymnasium env, wrapper, ``Monitor`` or ``DummyVecEnv`` per game) with SB3's semantics:
same-step autoreset, ``terminal_observation`` and ``TimeLimit.truncated`` in ``infos``,
``info["episode"] = {"r", "l", "t"}`` at episode end (as SB3's ``Monitor``), sub-env ``i`` seeded
with ``seed + i`` at the first reset. With the same seeds and actions it produces the same
observations, rewards and dones as ``gym.make(<id>)`` + :class:`BoardToImage` under SB3's
``DummyVecEnv`` (tests/test_envs_minatar.py), which :func:`make_minatar_vec_env` builds as the
``"sb3"`` reference backend.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import VecEnv
from stable_baselines3.common.vec_env.base_vec_env import VecEnvStepReturn

from coordrl.envs.vec_env_base import EmulatedVecEnv

__all__ = [
    "ENV_IDS",
    "GAMES",
    "MAX_EPISODE_STEPS",
    "BoardToImage",
    "MinAtarVecEnv",
    "board_to_image",
    "make_minatar_vec_env",
    "parse_env_id",
    "register",
]

#: MinAtar's games: gymnasium name -> MinAtar module name.
GAMES: dict[str, str] = {
    "Asterix": "asterix",
    "Breakout": "breakout",
    "Freeway": "freeway",
    "Seaquest": "seaquest",
    "SpaceInvaders": "space_invaders",
}
#: The gymnasium ids ``minatar.gym.register_envs()`` registers (v1: minimal action set).
ENV_IDS: tuple[str, ...] = tuple(f"MinAtar/{game}-v{v}" for game in GAMES for v in (0, 1))
#: Steps after which an episode is truncated (MinAtar itself has no limit; see module docstring).
MAX_EPISODE_STEPS = 10_000

_ID_RE = re.compile(r"minatar/(\w+)-v([01])", re.IGNORECASE)
_BY_LOWER = {game.lower(): game for game in GAMES}


def register() -> None:
    """Register MinAtar's gymnasium ids (``minatar.gym.register_envs()``), once."""
    if not all(env_id in gym.registry for env_id in ENV_IDS):
        import minatar.gym

        minatar.gym.register_envs()


def parse_env_id(name: str) -> tuple[str, bool] | None:
    """``"MinAtar/Breakout-v1"`` (any case) -> ``("Breakout", True)`` (game, minimal action set);
    ``None`` for names that are not a MinAtar id."""
    m = _ID_RE.fullmatch(name.strip())
    if m is None or m.group(1).lower() not in _BY_LOWER:
        return None
    return _BY_LOWER[m.group(1).lower()], m.group(2) == "1"


def board_to_image(boards: np.ndarray) -> np.ndarray:
    """MinAtar boards ``(..., H, W, C)`` bool -> channel-first uint8 images ``(..., C, H, W)`` with
    values {0, 255} (C-contiguous; SB3 divides by 255 and gets the 0/1 board back)."""
    u8 = boards.view(np.uint8)  # bool is one byte, 0 or 1
    axes = (*range(u8.ndim - 3), u8.ndim - 1, u8.ndim - 3, u8.ndim - 2)
    out = np.empty(tuple(u8.shape[a] for a in axes), dtype=np.uint8)
    np.multiply(u8.transpose(axes), np.uint8(255), out=out)
    return out


def _image_space(n_channels: int) -> spaces.Box:
    return spaces.Box(0, 255, (n_channels, 10, 10), np.uint8)


class BoardToImage(gym.ObservationWrapper):
    """Gymnasium wrapper doing :func:`board_to_image` on one MinAtar env (the reference path)."""

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        self.observation_space = _image_space(env.observation_space.shape[-1])

    def observation(self, observation: np.ndarray) -> np.ndarray:
        return board_to_image(np.asarray(observation, dtype=bool))


class MinAtarVecEnv(EmulatedVecEnv):
    """All sub-envs of one MinAtar game, stepped in one loop, behind SB3's ``VecEnv``.

    :param game: ``"Asterix"``, ``"Breakout"``, ``"Freeway"``, ``"Seaquest"`` or
        ``"SpaceInvaders"``
    :param n_envs: number of sub-environments
    :param seed: sub-env ``i`` is seeded with ``seed + i`` at the first reset (MinAtar seeds one
        ``numpy.random.RandomState`` per game, used for sticky actions and the game's own
        randomness); ``None``: random seeds
    :param minimal_action_set: ``True`` (``-v1`` ids): the game's minimal action set;
        ``False`` (``-v0``): all 6 actions
    :param sticky_action_prob: MinAtar's default 0.1
    :param difficulty_ramping: MinAtar's default ``True``
    :param max_episode_steps: truncate episodes after this many steps (``None``: never)
    """

    _label = "the MinAtar vector env"
    _alternative = "use backend='sb3'"

    def __init__(
        self,
        game: str,
        n_envs: int,
        seed: int | None = None,
        minimal_action_set: bool = True,
        sticky_action_prob: float = 0.1,
        difficulty_ramping: bool = True,
        max_episode_steps: int | None = MAX_EPISODE_STEPS,
    ) -> None:
        from minatar import Environment

        if game not in GAMES:
            raise ValueError(f"unknown MinAtar game {game!r}; choose one of {', '.join(GAMES)}")
        if max_episode_steps is not None and max_episode_steps < 1:
            raise ValueError(f"max_episode_steps must be >= 1 or None, got {max_episode_steps}")
        self.game = game
        self.max_episode_steps = max_episode_steps
        self._games = [
            Environment(
                GAMES[game],
                sticky_action_prob=sticky_action_prob,
                difficulty_ramping=difficulty_ramping,
            )
            for _ in range(n_envs)
        ]
        first = self._games[0]
        actions = first.minimal_action_set() if minimal_action_set else range(first.num_actions())
        self._action_set = np.array(list(actions), dtype=np.int64)
        n_channels = first.state_shape()[2]
        super().__init__(n_envs, _image_space(n_channels), spaces.Discrete(len(self._action_set)))

        self._boards = np.zeros((n_envs, 10, 10, n_channels), dtype=bool)
        self._episode_return = np.zeros(n_envs, dtype=np.float64)
        self._episode_length = np.zeros(n_envs, dtype=np.int64)
        self._actions: np.ndarray | None = None
        self._t_start = time.time()
        if seed is not None:
            self.seed(seed)
            self.action_space.seed(seed)

    # ------------------------------------------------------------------ core API
    def reset(self) -> np.ndarray:
        """Reset every game (seeding it first with the seed set by :meth:`seed`, once)."""
        for i, (game, seed) in enumerate(zip(self._games, self._seeds, strict=True)):
            if seed is not None:
                game.seed(int(seed) % 2**32)
            game.reset()
            self._boards[i] = game.state()
        self._reset_seeds()
        self._reset_options()
        self._episode_return[:] = 0.0
        self._episode_length[:] = 0
        self.reset_infos = [{} for _ in range(self.num_envs)]
        self._needs_reset = False
        return board_to_image(self._boards)

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = self._action_set[self._check_actions(actions, f" for MinAtar {self.game}")]

    def step_wait(self) -> VecEnvStepReturn:
        if self._actions is None:
            raise RuntimeError("step_wait() called without step_async()")
        actions, self._actions = self._actions.tolist(), None
        n = self.num_envs
        rewards = np.zeros(n, dtype=np.float32)
        dones = np.zeros(n, dtype=bool)
        infos: list[dict[str, Any]] = [{"TimeLimit.truncated": False} for _ in range(n)]
        limit = self.max_episode_steps
        self._episode_length += 1
        lengths = self._episode_length
        for i, game in enumerate(self._games):
            reward, terminal = game.act(actions[i])
            rewards[i] = reward
            self._boards[i] = game.state()
            if terminal or (limit is not None and lengths[i] >= limit):
                dones[i] = True
                info = infos[i]
                info["TimeLimit.truncated"] = not terminal
                info["terminal_observation"] = board_to_image(self._boards[i])
                game.reset()
                self._boards[i] = game.state()
        self._episode_return += rewards
        if dones.any():
            now = round(time.time() - self._t_start, 6)
            for i in np.flatnonzero(dones):
                infos[i]["episode"] = {
                    "r": round(float(self._episode_return[i]), 6),
                    "l": int(lengths[i]),
                    "t": now,
                }
            self._episode_return[dones] = 0.0
            lengths[dones] = 0
        return board_to_image(self._boards), rewards, dones, infos

    def close(self) -> None:
        self._games = []

    # ------------------------------------------------------------------ attributes
    def get_action_meanings(self) -> list[str]:
        """MinAtar's action letters of the action set: ``n``oop, ``l``eft, ``u``p, ``r``ight,
        ``d``own, ``f``ire (e.g. Breakout-v1: ``["n", "l", "r"]``)."""
        return ["nlurdf"[a] for a in self._action_set]

    def _env_methods(self) -> dict[str, Callable[[], Any]]:
        return {"get_action_meanings": self.get_action_meanings}

    def _emulated_wrappers(self) -> tuple[type[gym.Wrapper], ...]:
        wrappers: tuple[type[gym.Wrapper], ...] = (Monitor, BoardToImage)
        if self.max_episode_steps is not None:
            wrappers += (gym.wrappers.TimeLimit,)
        return wrappers


def make_minatar_vec_env(
    game: str,
    n_envs: int,
    seed: int | None,
    minimal_action_set: bool = True,
    backend: str = "native",
) -> VecEnv:
    """A vector env of a MinAtar game with channel-first uint8 {0, 255} observations.

    :param game: a key of :data:`GAMES`
    :param n_envs: number of sub-environments
    :param seed: sub-env ``i`` is seeded with ``seed + i``; ``None``: random seeds
    :param minimal_action_set: ``-v1`` (``True``) or ``-v0`` action set
    :param backend: ``"native"``: :class:`MinAtarVecEnv`; ``"sb3"``: the reference pipeline,
        ``make_vec_env(gym id, wrapper_class=BoardToImage)`` (a ``DummyVecEnv`` of
        ``Monitor``-wrapped gymnasium envs) with the same time limit; same numbers, slower
    """
    if backend == "native":
        return MinAtarVecEnv(game, n_envs, seed=seed, minimal_action_set=minimal_action_set)
    register()
    env_id = f"MinAtar/{game}-v{1 if minimal_action_set else 0}"
    return make_vec_env(
        env_id,
        n_envs=n_envs,
        seed=seed,
        env_kwargs={"max_episode_steps": MAX_EPISODE_STEPS},
        wrapper_class=BoardToImage,
    )
