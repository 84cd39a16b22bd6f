"""ale-py's native C++ vector env (``ale_py.vector_env.AtariVectorEnv``) behind SB3's ``VecEnv``.

The C++ side does the Atari preprocessing (no-op starts, FIRE reset, frame skip with max-pool,
84x84 grayscale, frame stacking, the frame cap) on its own threads. This adapter adds what SB3
expects from ``make_atari_env(...)`` + ``VecFrameStack``, which no library provides for the
native env, so it is written here by hand:

* ``info["episode"] = {"r", "l", "t"}`` as SB3's ``Monitor`` (which sits *inside*
  ``AtariWrapper``) reports it: the real unclipped full-game score, the length in emulator
  frames (reset frames included), wall time since creation; only when the game really ends.
* life loss as terminal for learning and rewards clipped to their sign, computed here from the
  raw rewards (the C++ env runs with ``reward_clipping=False``) so ``"r"`` stays unclipped.
* ``terminal_observation`` on every done and ``TimeLimit.truncated`` on every step, as SB3's
  ``DummyVecEnv`` sets them, and the frame stack zero-filled after a life loss, as
  ``VecFrameStack`` does after any done.

Verified ale-py (0.12) behaviour this relies on (see tests/test_envs_native.py):

* ``episodic_life=True`` *resets the whole game* on a life loss (unlike SB3's
  ``EpisodicLifeEnv``), so it is not used; ``life_loss_info=True`` only reports
  ``terminated=True`` on a life loss while the game goes on.
* ``autoreset_mode="SameStep"`` resets a sub-env in the step where its episode (game over or
  frame cap) ends; the step returns the first observation of the next episode, the pre-reset
  reward/terminated/truncated, and ``info["final_obs"]`` (valid only for the envs that reset;
  other rows are stale); ``lives``/``frame_number``/``episode_frame_number`` are post-reset.
* Life-loss terminals do not reset, so the episode continues: ``episode_frame_number`` grows by
  exactly ``frameskip`` on every step that does not reset.

Known differences from SB3's pipeline (small; the random-policy scores of both backends agree,
tests/test_envs_consistency.py):

* After a life loss SB3 plays a NOOP step and, in games with FIRE, a FIRE and an action-2 step
  before the agent acts again (``EpisodicLifeEnv.reset`` + ``FireResetEnv.reset``); here the
  game simply continues, so e.g. in Breakout the agent presses FIRE itself (as with envpool).
  The C++ env steps all sub-envs together, so it cannot play extra steps for one of them.
* Game start: ale-py presses FIRE, then plays 0-29 no-op frames; SB3 plays 1-30 no-op frames,
  then a FIRE step and an action-2 step (so SB3's Breakout starts do not depend on the seed).
* The frame cap counts frames after the no-op start (SB3's from the game reset).

The frames themselves are pixel-identical to SB3's ``MaxAndSkipEnv`` + ``WarpFrame`` output on
the same emulator states (tests/test_envs_native.py).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

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
from coordrl.hardware import available_cores

_ACTION_NAMES = {action: name for name, action in Action.__members__.items()}


class NativeAtariVecEnv(EmulatedVecEnv):
    """SB3 ``VecEnv`` over ale-py's C++ ``AtariVectorEnv`` with SB3's Atari semantics.

    :param rom: ale-py ROM id (snake_case), e.g. ``"pong"``, ``"ms_pacman"``.
    :param n_envs: number of sub-environments.
    :param seed: sub-env ``i`` is seeded with ``seed + i`` at the first reset (``None``: random).
    :param training: ``True``: life loss gives ``done`` and rewards are clipped to their sign;
        ``False``: full games, unclipped rewards. ``info["episode"]`` is unclipped either way.
    :param n_stack: number of stacked frames (stacked in C++).
    :param num_threads: C++ worker threads; default ``min(n_envs, available cores)``.
    :param noop_max: at most this many no-op frames at the start of a game.
    :param frame_skip: emulator frames per agent step (max-pooled over the last two).
    :param screen_size: observation height and width.
    :param max_frames_per_episode: emulator-frame cap of a game (truncation).
    """

    # SB3 wrappers whose behaviour this env reproduces (answers of ``env_is_wrapped``).
    _EMULATED_WRAPPERS = (
        Monitor,
        AtariWrapper,
        NoopResetEnv,
        MaxAndSkipEnv,
        FireResetEnv,
        WarpFrame,
    )
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
        num_threads: int | None = None,
        noop_max: int = 30,
        frame_skip: int = 4,
        screen_size: int = 84,
        max_frames_per_episode: int = 108_000,
    ) -> None:
        if num_threads is None:
            num_threads = min(n_envs, available_cores())
        if num_threads < 1:
            raise ValueError(f"num_threads must be >= 1, got {num_threads}")
        self.rom = rom
        self.training = training
        self.n_stack = n_stack
        self.frame_skip = frame_skip
        self.num_threads = num_threads
        self._ale = AtariVectorEnv(
            rom,
            n_envs,
            num_threads=num_threads,
            autoreset_mode="SameStep",
            episodic_life=False,  # would reset the whole game on a life loss
            life_loss_info=training,  # terminated=True on life loss, game goes on
            reward_clipping=False,  # clipped here, so info["episode"] gets the raw score
            noop_max=noop_max,
            use_fire_reset=True,
            frameskip=frame_skip,
            maxpool=True,
            stack_num=n_stack,
            img_height=screen_size,
            img_width=screen_size,
            grayscale=True,
            repeat_action_probability=0.0,
            full_action_space=False,
            max_num_frames_per_episode=max_frames_per_episode,
        )
        self._action_set = list(self._ale.ale.get_action_set())
        observation_space = spaces.Box(0, 255, (n_stack, screen_size, screen_size), np.uint8)
        action_space = spaces.Discrete(len(self._action_set))
        super().__init__(n_envs, observation_space, action_space)

        self._t_start = time.time()
        self._actions: np.ndarray | None = None
        self._episode_return = np.zeros(n_envs, dtype=np.float64)
        self._episode_frame_base = np.zeros(n_envs, dtype=np.int64)
        self._prev_lives = np.zeros(n_envs, dtype=np.int32)
        self._prev_episode_frame = np.zeros(n_envs, dtype=np.int64)
        self._zero_frames = np.zeros(n_envs, dtype=np.int64)
        if seed is not None:
            self.seed(seed)
            self.action_space.seed(seed)

    # ------------------------------------------------------------------ core API
    def reset(self) -> np.ndarray:
        """Reset every sub-env (using the seeds set by :meth:`seed`, once) and return obs."""
        seeds = np.array(
            [-1 if s is None else int(s) % (2**31 - 1) for s in self._seeds], dtype=np.int64
        )
        obs, info = self._ale.reset(seed=seeds)
        self._reset_seeds()
        self._reset_options()
        self._episode_return[:] = 0.0
        self._start_episodes(np.ones(self.num_envs, dtype=bool), info)
        self._zero_frames[:] = 0
        self.reset_infos = [{} for _ in range(self.num_envs)]
        self._needs_reset = False
        return obs

    def step_async(self, actions: np.ndarray) -> None:
        actions = self._check_actions(actions, f" for {self.rom}")
        self._ale.send(actions.astype(np.int32, copy=False))
        self._actions = actions

    def step_wait(self) -> VecEnvStepReturn:
        if self._actions is None:
            raise RuntimeError("step_wait() called without step_async()")
        self._actions = None
        obs, raw_rewards, terminated, truncated, info = self._ale.recv()
        lives = info["lives"]
        episode_frame = info["episode_frame_number"].astype(np.int64)
        dones = terminated | truncated
        # A done without a reset is a life loss: the game went on (frames grew by exactly one
        # step, lives dropped but are not zero). Every other done reset the game (SameStep).
        life_lost = (
            terminated
            & ~truncated
            & (episode_frame == self._prev_episode_frame + self.frame_skip)
            & (lives > 0)
            & (lives < self._prev_lives)
        )
        game_over = dones & ~life_lost
        self._episode_return += raw_rewards

        infos: list[dict[str, Any]] = [
            {"TimeLimit.truncated": bool(truncated[i] and not terminated[i])}
            for i in range(self.num_envs)
        ]
        if dones.any():
            now = round(time.time() - self._t_start, 6)
            final_obs = info.get("final_obs")
            for i in np.flatnonzero(dones):
                if game_over[i]:
                    infos[i]["terminal_observation"] = final_obs[i].copy()
                    # Frames of the finished game = global frames before the reset (the
                    # post-reset frame_number minus the new game's own frames) - game start.
                    end_frame = int(info["frame_number"][i]) - int(episode_frame[i])
                    infos[i]["episode"] = {
                        "r": round(float(self._episode_return[i]), 6),
                        "l": end_frame - int(self._episode_frame_base[i]),
                        "t": now,
                    }
                else:
                    infos[i]["terminal_observation"] = obs[i].copy()
            self._episode_return[game_over] = 0.0
            self._start_episodes(game_over, info)
            # VecFrameStack zero-fills the stack after every done; the C++ stack is cleared on
            # game reset only, so after a life loss hide the pre-loss frames for n_stack-1 steps.
            self._zero_frames[game_over] = 0
            self._zero_frames[life_lost] = self.n_stack - 1
        for i in np.flatnonzero(self._zero_frames):
            obs[i, : self._zero_frames[i]] = 0
            self._zero_frames[i] -= 1

        self._prev_lives = lives.copy()
        self._prev_episode_frame = episode_frame
        rewards = np.sign(raw_rewards) if self.training else raw_rewards
        return obs, rewards.astype(np.float32), dones, infos

    def _start_episodes(self, mask: np.ndarray, info: dict[str, np.ndarray]) -> None:
        """Record where the games flagged in ``mask`` started (right after their reset)."""
        frame = info["frame_number"].astype(np.int64)
        episode_frame = info["episode_frame_number"].astype(np.int64)
        self._episode_frame_base[mask] = (frame - episode_frame)[mask]
        self._prev_lives[mask] = info["lives"][mask]
        self._prev_episode_frame[mask] = episode_frame[mask]

    def close(self) -> None:
        if self._ale is not None:
            self._ale.close()
            self._ale = None  # type: ignore[assignment]

    # ------------------------------------------------------------------ attributes
    def get_action_meanings(self) -> list[str]:
        """Names of the actions (minimal action set), e.g. ``["NOOP", "FIRE", ...]``."""
        return [_ACTION_NAMES[a] for a in self._action_set]

    def _env_methods(self) -> dict[str, Callable[[], Any]]:
        return {"get_action_meanings": self.get_action_meanings}

    def _emulated_wrappers(self) -> tuple[type[gym.Wrapper], ...]:
        return self._EMULATED_WRAPPERS + (self._TRAINING_WRAPPERS if self.training else ())
