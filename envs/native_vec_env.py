"""ale-py's native C++ Atari env behind SB3's ``VecEnv``, playing by SB3's Atari protocol.

What SB3 / rl-zoo3 users train on is ``make_atari_env("<Game>NoFrameskip-v4")`` +
``VecFrameStack(4)``: per game, ``Monitor`` inside ``AtariWrapper`` (``NoopResetEnv``,
``MaxAndSkipEnv``, ``EpisodicLifeEnv`` for training, ``FireResetEnv``, ``WarpFrame``,
``ClipRewardEnv`` for training) under ``DummyVecEnv``. :class:`NativeAtariVecEnv` plays the same
protocol step for step (tests/test_envs_protocol.py checks it against that stack):

* each game runs on its own one-game ale-py C++ ``AtariVectorEnv``, which does what sits at or
  below ``MaxAndSkipEnv`` level: game reset with the no-op start, frame skip with max-pooling of
  the last two RGB frames. ``WarpFrame``'s grey conversion and resize (OpenCV, as SB3's) are
  done here, so observations are pixel-identical to SB3's. Each has a C++ worker
  thread, so the games of one step run in parallel; one env per game (rather than one C++ env for
  all) is what lets a single game play the extra steps SB3 plays in a reset while the others wait.
* written here, by hand, because no library does it for the native env: what SB3's wrappers above
  ``MaxAndSkipEnv`` do, each function below names the wrapper it follows: FIRE then action 2
  after every reset (``FireResetEnv``), a lost life as terminal followed by a NOOP step before
  those (``EpisodicLifeEnv``), reward clipping, the full-game unclipped ``info["episode"]``
  (``Monitor``), ``terminal_observation`` / ``TimeLimit.truncated`` (``DummyVecEnv``), and the
  frame stack with its zero-fill after every done (``VecFrameStack``).

ale-py (0.12) behaviour this relies on (see tests/test_envs_native.py):

* the C++ env draws its no-ops uniformly from ``0 .. noop_max - 1`` frames; SB3's
  ``NoopResetEnv`` from ``1 .. noop_max``. The C++ env is built with ``noop_max + 1`` and a start
  with 0 no-ops is redrawn (the count is ALE's episode frame number right after the reset), which
  gives exactly SB3's distribution.
* ``autoreset_mode="SameStep"`` resets a game in the step where it ends, returning the first
  frame of the next game and ``info["final_obs"]``; ``lives`` and frame numbers are post-reset.

Differences that remain (random-policy scores of both backends agree,
tests/test_envs_consistency.py; README's backend study compares learning):

* at a game over ale-py stops before grabbing the frame that ended the game, so the last frame of
  that ``terminal_observation`` can differ (SB3's algorithms read it only for truncated episodes);
* ``reset()`` always starts new games (SB3's ``EpisodicLifeEnv`` turns a mid-game reset of a
  training env into a NOOP step; SB3's algorithms reset only fresh envs);
* the 108k-frame cap is checked after each 4-frame step, so a capped game runs 0-3 frames longer
  than SB3's, which cuts it inside the step;
* rewards scored during the no-op frames of a reset are not counted in ``info["episode"]["r"]``
  (SB3's Monitor counts them; no game scores in its first 30 frames of no-ops).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import cv2
import gymnasium as gym
import numpy as np
from ale_py import Action
from ale_py.vector_env import AtariVectorEnv
from gymnasium import spaces
from stable_baselines3.common.atari_wrappers import (
    AtariWrapper,
    ClipRewardEnv,
    EpisodicLifeEnv,
    FireResetEnv,
    MaxAndSkipEnv,
    NoopResetEnv,
    WarpFrame,
)
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env.base_vec_env import VecEnvStepReturn

from coordrl.envs.vec_env_base import EmulatedVecEnv

_ACTION_NAMES = {action: name for name, action in Action.__members__.items()}
NOOP, FIRE, ACTION_2 = 0, 1, 2  # action indices FireResetEnv / EpisodicLifeEnv press


class _Game:
    """One game on a one-game ale-py C++ env: SB3's ``NoopResetEnv`` + ``MaxAndSkipEnv`` +
    ``WarpFrame`` level, the frame cap, and the score and length ``Monitor`` reports.

    The C++ env max-pools the last two RGB frames, as ``MaxAndSkipEnv`` does; the grey
    conversion and the resize are ``WarpFrame``'s, done here. (ale-py's own ``grayscale=True``
    converts each frame to grey before max-pooling, which changes the pixels where two colours
    overlap: up to 1.5% of an observation's pixels by up to 30 grey levels, measured.)

    :param rom: ale-py ROM id.
    :param noop_max: SB3's ``noop_max``: each game starts with 1 to ``noop_max`` no-op frames
        (0: none).
    :param frame_skip: emulator frames per step (max-pooled over the last two).
    :param screen_size: frame height and width.
    :param max_frames: frames after which a game is truncated (counted from its reset, as ALE's
        ``max_num_frames_per_episode`` counts them in SB3's env).
    :param repeat_action_probability: ALE's sticky-action probability.
    """

    def __init__(
        self,
        rom: str,
        noop_max: int,
        frame_skip: int,
        screen_size: int,
        max_frames: int,
        repeat_action_probability: float,
    ) -> None:
        self.noop_max = noop_max
        self.max_frames = max_frames
        self.screen_size = screen_size
        self.ale = AtariVectorEnv(
            rom,
            1,
            num_threads=1,
            autoreset_mode="SameStep",
            episodic_life=False,  # would reset the whole game on a life loss
            life_loss_info=False,  # life loss is read from the lives, as EpisodicLifeEnv does
            reward_clipping=False,  # clipped by NativeAtariVecEnv; Monitor needs the raw score
            noop_max=noop_max + 1 if noop_max > 0 else 0,  # 0..noop_max; 0 is redrawn
            use_fire_reset=False,  # FireResetEnv's steps are played by NativeAtariVecEnv
            frameskip=frame_skip,
            maxpool=True,
            stack_num=1,  # stacked by NativeAtariVecEnv, which zero-fills as VecFrameStack
            img_height=210,  # the full RGB screen: converted by _warp, as WarpFrame does
            img_width=160,
            grayscale=False,
            repeat_action_probability=repeat_action_probability,
            full_action_space=False,
            # The C++ cap counts frames after the no-ops; the cap of this class counts from the
            # reset (as SB3's) and so always comes first.
            max_num_frames_per_episode=max_frames + frame_skip,
        )
        self.action_set = list(self.ale.ale.get_action_set())
        self.lives = 0
        self.score = 0.0  # raw score of the current game, as Monitor sums it
        self.noops: list[int] = []  # no-op frames of every game start, in order (for tests)
        self._action = np.zeros(1, dtype=np.int32)
        self._game_start = 0  # ALE global frame number at the current game's reset
        self._frame_number = 0
        self._next_game: tuple[np.ndarray, dict[str, np.ndarray]] | None = None

    def reset(self, seed: int | None = None) -> np.ndarray:
        """``NoopResetEnv.reset``: a new game after 1..noop_max no-op frames; its first frame.

        :param seed: reseeds the emulator (the first reset of a seeded env), else ``None``.
        """
        if self._next_game is not None and seed is None:  # the C++ env reset at game over
            obs, info = self._next_game
        else:
            obs, info = self.ale.reset(seed=np.array([-1 if seed is None else seed]))
        self._next_game = None
        while self.noop_max > 0 and int(info["episode_frame_number"][0]) == 0:
            obs, info = self.ale.reset(seed=np.array([-1]))
        self.noops.append(int(info["episode_frame_number"][0]))
        self.lives = int(info["lives"][0])
        self._frame_number = int(info["frame_number"][0])
        self._game_start = self._frame_number - int(info["episode_frame_number"][0])
        self.score = 0.0
        return self._warp(obs)

    def send(self, action: int) -> None:
        """Start one step (``frame_skip`` frames) with ``action``; :meth:`recv` returns it."""
        self._action[0] = action
        self.ale.send(self._action)

    def recv(self) -> tuple[np.ndarray, float, bool, bool]:
        """The step started by :meth:`send`: ``MaxAndSkipEnv.step``'s frame, raw reward,
        ``terminated`` (game over) and ``truncated`` (frame cap).

        After a game end the frame is the game's last one and :meth:`reset` starts the next.
        """
        obs, reward, terminated, truncated, info = self.ale.recv()
        self.score += float(reward[0])
        if terminated[0] or truncated[0]:  # the C++ env has started the next game already
            self._next_game = (obs.copy(), info)
            # the ended game's last frame number = the new game's start
            self._frame_number = int(info["frame_number"][0]) - int(info["episode_frame_number"][0])
            self.lives = 0
            final = self._warp(info["final_obs"])
            return final, float(reward[0]), bool(terminated[0]), bool(truncated[0])
        self._frame_number = int(info["frame_number"][0])
        self.lives = int(info["lives"][0])
        truncated = self._frame_number - self._game_start >= self.max_frames
        return self._warp(obs), float(reward[0]), False, bool(truncated)

    def _warp(self, obs: np.ndarray) -> np.ndarray:
        """``WarpFrame.observation``: the max-pooled RGB screen of ``obs`` (shape
        ``(1, 1, 210, 160, 3)``) to grey, then resized with area interpolation."""
        frame = cv2.cvtColor(obs[0, -1], cv2.COLOR_RGB2GRAY)
        size = (self.screen_size, self.screen_size)
        return cv2.resize(frame, size, interpolation=cv2.INTER_AREA)

    @property
    def length(self) -> int:
        """Emulator frames since the current game's reset (``Monitor``'s episode length)."""
        return self._frame_number - self._game_start

    def close(self) -> None:
        self.ale.close()


class NativeAtariVecEnv(EmulatedVecEnv):
    """SB3 ``VecEnv`` of ale-py C++ Atari games with SB3's Atari protocol (see module docstring).

    :param rom: ale-py ROM id (snake_case), e.g. ``"pong"``, ``"ms_pacman"``.
    :param n_envs: number of sub-environments (one game and one C++ thread each).
    :param seed: sub-env ``i`` is seeded with ``seed + i`` at the first reset (``None``: random).
    :param training: ``True``: life loss gives ``done`` and rewards are clipped to their sign;
        ``False``: full games, unclipped rewards. ``info["episode"]`` is unclipped either way.
    :param n_stack: number of stacked frames.
    :param noop_max: at most this many no-op frames at the start of a game (at least 1).
    :param frame_skip: emulator frames per agent step (max-pooled over the last two).
    :param screen_size: observation height and width.
    :param max_frames_per_episode: emulator-frame cap of a game (truncation).
    :param repeat_action_probability: ALE's sticky actions (0 in ``NoFrameskip-v4``).
    """

    # SB3 wrappers whose behaviour this env reproduces (answers of ``env_is_wrapped``).
    _EMULATED_WRAPPERS = (Monitor, AtariWrapper, NoopResetEnv, MaxAndSkipEnv, WarpFrame)
    _TRAINING_WRAPPERS = (EpisodicLifeEnv, ClipRewardEnv)
    _label = "the native Atari env"
    _alternative = "use backend='sb3'"

    def __init__(
        self,
        rom: str,
        n_envs: int,
        seed: int | None = None,
        training: bool = True,
        n_stack: int = 4,
        noop_max: int = 30,
        frame_skip: int = 4,
        screen_size: int = 84,
        max_frames_per_episode: int = 108_000,
        repeat_action_probability: float = 0.0,
    ) -> None:
        self.rom = rom
        self.training = training
        self.n_stack = n_stack
        self.frame_skip = frame_skip
        self._games = [
            _Game(
                rom,
                noop_max,
                frame_skip,
                screen_size,
                max_frames_per_episode,
                repeat_action_probability,
            )
            for _ in range(n_envs)
        ]
        self._action_set = self._games[0].action_set
        # SB3's AtariWrapper adds FireResetEnv where the minimal action set has FIRE (index 1).
        self._fire_reset = "FIRE" in self.get_action_meanings()
        observation_space = spaces.Box(0, 255, (n_stack, screen_size, screen_size), np.uint8)
        action_space = spaces.Discrete(len(self._action_set))
        super().__init__(n_envs, observation_space, action_space)

        self._t_start = time.time()
        self._actions: np.ndarray | None = None
        self._lives = np.zeros(n_envs, dtype=np.int64)  # EpisodicLifeEnv.lives
        self._stack = np.zeros((n_envs, *observation_space.shape), dtype=np.uint8)
        if seed is not None:
            self.seed(seed)
            self.action_space.seed(seed)

    # ------------------------------------------------------------------ core API
    def reset(self) -> np.ndarray:
        """Start a new game in every sub-env (using the seeds set by :meth:`seed`, once).

        Unlike SB3's stack, where ``EpisodicLifeEnv`` turns a ``reset()`` in the middle of a
        training game into a NOOP step (SB3 warns that this confuses), this always starts new
        games. SB3's algorithms reset only fresh envs, so training is the same.
        """
        self._stack[:] = 0
        for i, seed in enumerate(self._seeds):
            seed = None if seed is None else int(seed) % (2**31 - 1)
            self._stack[i, -1] = self._fire_reset_env(i, real_done=True, seed=seed)
        self._reset_seeds()
        self._reset_options()
        self.reset_infos = [{} for _ in range(self.num_envs)]
        self._needs_reset = False
        return self._stack.copy()

    def step_async(self, actions: np.ndarray) -> None:
        actions = self._check_actions(actions, f" for {self.rom}")
        for game, action in zip(self._games, actions, strict=True):
            game.send(int(action))  # the games step in parallel on their C++ threads
        self._actions = actions

    def step_wait(self) -> VecEnvStepReturn:
        if self._actions is None:
            raise RuntimeError("step_wait() called without step_async()")
        self._actions = None
        frames = np.empty((self.num_envs, *self._stack.shape[2:]), dtype=np.uint8)
        rewards = np.zeros(self.num_envs, dtype=np.float32)
        dones = np.zeros(self.num_envs, dtype=bool)
        infos: list[dict[str, Any]] = []
        terminal_frames: dict[int, np.ndarray] = {}
        for i, game in enumerate(self._games):
            frame, reward, game_over, truncated = game.recv()
            terminated = game_over or self._life_lost(i)
            rewards[i] = np.sign(reward) if self.training else reward  # ClipRewardEnv
            info: dict[str, Any] = {"TimeLimit.truncated": truncated and not terminated}
            frames[i] = frame
            if terminated or truncated:  # DummyVecEnv: keep the last frame, reset the env
                dones[i] = True
                terminal_frames[i] = frame
                real_done = game_over or truncated
                if real_done:  # Monitor: the full game's raw score and length in frames
                    info["episode"] = {
                        "r": round(game.score, 6),
                        "l": game.length,
                        "t": round(time.time() - self._t_start, 6),
                    }
                frames[i] = self._fire_reset_env(i, real_done)
            infos.append(info)
        return self._stack_frames(frames, dones, terminal_frames, infos), rewards, dones, infos

    # ------------------------------------------------------------------ SB3's wrappers
    def _life_lost(self, i: int) -> bool:
        """``EpisodicLifeEnv.step`` (training only): a lost life is terminal; tracks lives."""
        lives = self._games[i].lives
        lost = self.training and 0 < lives < self._lives[i]
        self._lives[i] = lives
        return bool(lost)

    def _step_game(self, i: int, action: int) -> tuple[np.ndarray, bool, bool]:
        """One step of game ``i`` alone, inside a reset: its frame, ``terminated`` (game over
        or, for training, a lost life) and ``real_done`` (the game ended). The reward is
        dropped, as the wrappers drop it, but counts in the game's score, as Monitor's."""
        game = self._games[i]
        game.send(action)
        frame, _, game_over, truncated = game.recv()
        life_lost = self._life_lost(i)
        return frame, game_over or truncated or life_lost, game_over or truncated

    def _life_reset(self, i: int, real_done: bool, seed: int | None = None) -> np.ndarray:
        """``EpisodicLifeEnv.reset`` (training): a new game after a game end, else a NOOP step
        (and a new game if that ends it); for evaluation, ``NoopResetEnv.reset``."""
        game = self._games[i]
        if real_done or not self.training:
            frame = game.reset(seed)
        else:
            frame, _, real_done = self._step_game(i, NOOP)
            if real_done:
                frame = game.reset()
        self._lives[i] = game.lives
        return frame

    def _fire_reset_env(self, i: int, real_done: bool, seed: int | None = None) -> np.ndarray:
        """``FireResetEnv.reset`` over :meth:`_life_reset`: FIRE, then action 2, in games with
        FIRE; the first frame the agent sees."""
        frame = self._life_reset(i, real_done, seed)
        if not self._fire_reset:
            return frame
        for action in (FIRE, ACTION_2):
            frame, terminated, real_done = self._step_game(i, action)
            if terminated:
                self._life_reset(i, real_done)
        return frame  # as SB3's: the frame of the action-2 step, even if a reset followed it

    def _stack_frames(
        self,
        frames: np.ndarray,
        dones: np.ndarray,
        terminal_frames: dict[int, np.ndarray],
        infos: list[dict[str, Any]],
    ) -> np.ndarray:
        """``VecFrameStack``: shift in the new frames; a done env's ``terminal_observation`` is
        its previous frames plus its last one, and its stack restarts from zeros."""
        self._stack[:, :-1] = self._stack[:, 1:]
        for i, frame in terminal_frames.items():
            infos[i]["terminal_observation"] = np.concatenate(
                (self._stack[i, :-1], frame[None]), axis=0
            )
            self._stack[i] = 0
        self._stack[:, -1] = frames
        return self._stack.copy()

    def close(self) -> None:
        for game in self._games:
            game.close()
        self._games = []

    # ------------------------------------------------------------------ attributes
    def get_action_meanings(self) -> list[str]:
        """Names of the actions (minimal action set), e.g. ``["NOOP", "FIRE", ...]``."""
        return [_ACTION_NAMES[a] for a in self._action_set]

    def _env_methods(self) -> dict[str, Callable[[], Any]]:
        return {"get_action_meanings": self.get_action_meanings}

    def _emulated_wrappers(self) -> tuple[type[gym.Wrapper], ...]:
        wrappers = self._EMULATED_WRAPPERS + (FireResetEnv,) * self._fire_reset
        return wrappers + (self._TRAINING_WRAPPERS if self.training else ())
