"""PointAtDot: a tiny pixel environment where the optimal action depends on *absolute* position.

The canvas is split into a ``grid x grid`` layout of cells. Each step shows one white square dot
(``dot_size`` pixels wide) somewhere inside one cell; the action is the index of the cell that
holds the dot (``row * grid + col``). A correct answer earns ``+1``, a wrong one ``wrong_reward``
(default ``0``). After every action a new dot is drawn at a fresh random position, and the episode
ends after ``episode_length`` dots, so the return of an episode lies in
``[episode_length * wrong_reward, episode_length]``; a uniformly random policy scores
``episode_length / grid**2`` on average (about 1.8 with the defaults).

This is the contextual-bandit analogue of the CoordConv paper's coordinate tasks: to act well
the network must map "where is the dot in pixel space" to "which cell index", which is the
translation-*dependent* mapping plain convolutions find awkward. Because the next dot does not
depend on the action, the right discount is ``gamma=0``: with PPO's Atari settings
(``gamma=0.99``, learning rate 2.5e-4) the return-to-go of the 15 later, unrelated dots swamps
the advantage and learning takes far longer (measured: barely above random after 20k steps,
against near-perfect after ~10k steps with ``gamma=0`` and learning rate 1e-3).

Held-out positions (generalisation tests): with ``holdout="cell-quadrant"`` the bottom-right
quarter of the dot positions *inside every cell* is held out. ``positions="train"`` samples
only the remaining positions, ``positions="test"`` only the held-out ones and ``positions="all"``
everything. Every cell (= every action) keeps training positions; holding out a whole quadrant
of the canvas instead would remove entire cells from training, and no RL agent can learn to
choose an action that was never rewarded, so that split would measure nothing.

The environment's gymnasium id is ``coordrl/PointAtDot-v0``, registered by
:func:`coordrl.envs.register_envs` (importing coordrl registers nothing; the env factory
``coordrl.envs.make_env`` / ``resolve_env`` calls it)::

    import gymnasium as gym
    import coordrl.envs

    coordrl.envs.register_envs()

    env = gym.make("coordrl/PointAtDot-v0", canvas_size=44, grid=3)
    test_env = gym.make("coordrl/PointAtDot-v0", holdout="cell-quadrant", positions="test")

Written by hand because no library ships an environment of this kind; it is kept cheap
(a fill and one slice assignment of a reused buffer plus one copy per step, no rendering
library).
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

ENV_ID = "coordrl/PointAtDot-v0"
HOLDOUTS = ("none", "cell-quadrant")
POSITION_SETS = ("train", "test", "all")


class PointAtDotEnv(gym.Env[np.ndarray, np.int64]):
    """Point at the grid cell that holds the dot.

    Observation: ``Box(0, 255, (1, canvas_size, canvas_size), uint8)``, channel-first, the dot is
    255 on a 0 background. Action: ``Discrete(grid * grid)``, cell index ``row * grid + col``.

    :param canvas_size: Height and width of the square image in pixels. For SB3's NatureCNN /
        ``CoordNatureCNN`` use ``36 + 8k`` (36, 44, 52, ..., 84): only then do the strided
        convolutions see every pixel (at 42 or 48 the last 6 or 4 rows and columns are never
        seen, and dots there are invisible to the agent). The default 44 gives 14-px cells with
        ``grid=3`` (the last 2 rows/columns stay empty).
    :param grid: Number of cells per side; there are ``grid**2`` actions.
    :param dot_size: Side of the square dot in pixels; must fit inside one cell.
    :param episode_length: Number of dots (= steps) per episode.
    :param holdout: ``"none"`` or ``"cell-quadrant"`` (the bottom-right quarter of the dot
        positions inside every cell is held out for generalisation tests).
    :param positions: Which dot positions to sample: ``"train"`` (all minus the held-out ones),
        ``"test"`` (only the held-out ones; needs a holdout) or ``"all"``.
    :param wrong_reward: Reward for pointing at the wrong cell (the right one always gives 1).
    :param render_mode: ``None`` or ``"rgb_array"``.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 4}

    def __init__(
        self,
        canvas_size: int = 44,
        grid: int = 3,
        dot_size: int = 4,
        episode_length: int = 16,
        holdout: str = "none",
        positions: str = "train",
        wrong_reward: float = 0.0,
        render_mode: str | None = None,
    ) -> None:
        _check_config(canvas_size, grid, dot_size, episode_length, holdout, positions, render_mode)
        self.canvas_size = int(canvas_size)
        self.grid = int(grid)
        self.dot_size = int(dot_size)
        self.episode_length = int(episode_length)
        self.holdout = holdout
        self.positions = positions
        self.wrong_reward = float(wrong_reward)
        self.render_mode = render_mode

        shape = (1, self.canvas_size, self.canvas_size)
        self.observation_space = spaces.Box(low=0, high=255, shape=shape, dtype=np.uint8)
        self.action_space = spaces.Discrete(self.grid * self.grid)

        # (N, 3) int array of (top, left, cell) for every dot position this instance may sample.
        self.dot_positions = dot_positions(
            self.canvas_size, self.grid, self.dot_size, self.holdout, self.positions
        )
        self._position_list = [tuple(int(v) for v in row) for row in self.dot_positions]
        self._n_actions = self.grid * self.grid
        self._obs = np.zeros(shape, dtype=np.uint8)
        self._target = 0
        self._steps = 0

    # -- gymnasium API --------------------------------------------------------------------------

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Start an episode with a fresh random dot.

        :param seed: Seeds ``self.np_random`` (gymnasium convention).
        :param options: Unused.
        """
        super().reset(seed=seed)
        self._steps = 0
        self._new_dot()
        return self._obs.copy(), {"target": self._target}

    def step(self, action: int | np.integer) -> tuple[np.ndarray, float, bool, bool, dict]:
        """Score the pointed-at cell, then draw a new dot.

        :param action: Cell index ``row * grid + col`` in ``[0, grid**2)``.
        """
        # Cheaper than ``action_space.contains`` (this env should do tens of thousands of steps/s).
        if isinstance(action, np.ndarray) and action.shape in ((), (1,)):
            action = action.item()
        if not isinstance(action, (int, np.integer)) or not 0 <= action < self._n_actions:
            raise ValueError(
                f"action must be an integer cell index in [0, {self._n_actions}), got {action!r}"
            )
        target = self._target
        correct = int(action) == target
        reward = 1.0 if correct else self.wrong_reward
        self._steps += 1
        terminated = self._steps >= self.episode_length
        self._new_dot()
        return self._obs.copy(), reward, terminated, False, {"target": target, "correct": correct}

    def render(self) -> np.ndarray | None:
        """The current frame as an ``(H, W, 3)`` uint8 array (``render_mode="rgb_array"``)."""
        if self.render_mode != "rgb_array":
            return None
        return np.repeat(self._obs[0][:, :, None], 3, axis=2)

    # -- internals ------------------------------------------------------------------------------

    @property
    def target(self) -> int:
        """Index of the cell holding the dot currently on screen (the optimal action)."""
        return self._target

    def _new_dot(self) -> None:
        top, left, cell = self._position_list[self.np_random.integers(len(self._position_list))]
        self._obs.fill(0)
        self._obs[0, top : top + self.dot_size, left : left + self.dot_size] = 255
        self._target = cell


def dot_positions(
    canvas_size: int, grid: int, dot_size: int, holdout: str = "none", positions: str = "all"
) -> np.ndarray:
    """All dot placements of a PointAtDot configuration.

    Cells are ``canvas_size // grid`` pixels wide (leftover pixels at the right/bottom edge stay
    empty); a dot lies entirely inside its cell, at offsets ``0 .. cell - dot_size`` per axis.
    With ``holdout="cell-quadrant"`` the offsets ``>= ceil(n_offsets / 2)`` on *both* axes are
    held out (the bottom-right quarter of each cell's positions).

    :param canvas_size: Canvas side in pixels.
    :param grid: Cells per side.
    :param dot_size: Dot side in pixels.
    :param holdout: ``"none"`` or ``"cell-quadrant"``.
    :param positions: ``"train"``, ``"test"`` or ``"all"``.
    :return: int64 array of shape ``(N, 3)``: rows of ``(top, left, cell_index)``.
    """
    _check_config(canvas_size, grid, dot_size, 1, holdout, positions, None)
    cell = canvas_size // grid
    n_off = cell - dot_size + 1
    off = np.arange(n_off)
    oy, ox = np.meshgrid(off, off, indexing="ij")
    oy, ox = oy.ravel(), ox.ravel()
    half = (n_off + 1) // 2
    held = (oy >= half) & (ox >= half) if holdout == "cell-quadrant" else np.zeros_like(oy, bool)
    keep = {"all": np.ones_like(held), "train": ~held, "test": held}[positions]
    oy, ox = oy[keep], ox[keep]
    rows = []
    for r in range(grid):
        for c in range(grid):
            idx = np.full_like(oy, r * grid + c)
            rows.append(np.stack([r * cell + oy, c * cell + ox, idx], axis=1))
    return np.concatenate(rows).astype(np.int64)


def _check_config(
    canvas_size: int,
    grid: int,
    dot_size: int,
    episode_length: int,
    holdout: str,
    positions: str,
    render_mode: str | None,
) -> None:
    for name, value in (
        ("canvas_size", canvas_size),
        ("grid", grid),
        ("dot_size", dot_size),
        ("episode_length", episode_length),
    ):
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if grid < 2:
        raise ValueError(f"grid must be >= 2 (one cell leaves nothing to choose), got {grid}")
    cell = canvas_size // grid
    if dot_size > cell:
        raise ValueError(
            f"dot_size={dot_size} does not fit in a {cell}px cell (canvas_size={canvas_size} // "
            f"grid={grid}); use a smaller dot, a smaller grid or a larger canvas"
        )
    if holdout not in HOLDOUTS:
        raise ValueError(f"holdout must be one of {HOLDOUTS}, got {holdout!r}")
    if positions not in POSITION_SETS:
        raise ValueError(f"positions must be one of {POSITION_SETS}, got {positions!r}")
    if positions == "test" and holdout == "none":
        raise ValueError("positions='test' needs a held-out region; pass holdout='cell-quadrant'")
    if holdout == "cell-quadrant" and cell - dot_size + 1 < 2:
        raise ValueError(
            f"holdout='cell-quadrant' needs at least 2 dot offsets per cell axis, but a "
            f"{dot_size}px dot in a {cell}px cell has only 1; use a smaller dot or larger canvas"
        )
    if render_mode not in (None, "rgb_array"):
        raise ValueError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")


def register() -> None:
    """Register ``coordrl/PointAtDot-v0`` with gymnasium (idempotent; called by
    :func:`coordrl.envs.register_envs`)."""
    if ENV_ID not in gym.registry:
        gym.register(id=ENV_ID, entry_point="coordrl.envs.pixel:PointAtDotEnv")
