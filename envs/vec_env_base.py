"""What coordrl's hand-written vector envs share: SB3's ``VecEnv`` plumbing for envs that step
their games themselves (no gymnasium env per sub-env) and emulate an SB3 wrapper stack.

Subclasses: :class:`~coordrl.envs.native_vec_env.NativeAtariVecEnv` (ale-py's C++ vector env) and
:class:`~coordrl.envs.minatar.MinAtarVecEnv`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from stable_baselines3.common.vec_env.base_vec_env import VecEnv, VecEnvIndices


class EmulatedVecEnv(VecEnv):
    """An SB3 ``VecEnv`` without per-env gymnasium objects.

    Per-env attributes live in a plain dict per sub-env (``render_mode`` is ``None``); the only
    ``env_method`` calls are the ones in :meth:`_env_methods`; ``env_is_wrapped`` answers for the
    SB3 wrappers whose behaviour the env reproduces (:meth:`_emulated_wrappers`).

    Subclasses set :attr:`_label` and :attr:`_alternative` (for error messages) and call
    ``super().__init__(n_envs, observation_space, action_space)``.
    """

    #: How error messages name the env, e.g. "the native Atari env".
    _label = "this vector env"
    #: What to use instead when something is not supported, e.g. "use backend='sb3'".
    _alternative = "use backend='sb3'"

    def __init__(self, num_envs: int, observation_space: spaces.Space, action_space: spaces.Space):
        self._attrs: list[dict[str, Any]] = [{"render_mode": None} for _ in range(num_envs)]
        self._needs_reset = True
        super().__init__(num_envs, observation_space, action_space)

    # ------------------------------------------------------------------ for subclasses
    def _env_methods(self) -> dict[str, Callable[[], Any]]:
        """``env_method`` names this env answers (each called without arguments, per env)."""
        return {}

    def _emulated_wrappers(self) -> tuple[type[gym.Wrapper], ...]:
        """SB3 wrappers whose behaviour this env reproduces (answers of ``env_is_wrapped``)."""
        return ()

    def _check_actions(self, actions: np.ndarray, what: str = "") -> np.ndarray:
        """The actions as a flat integer array, after checking reset, shape and range."""
        if self._needs_reset:
            raise RuntimeError(f"call reset() before step(); {self._label} was not reset")
        actions = np.asarray(actions).reshape(-1)
        if actions.shape != (self.num_envs,):
            raise ValueError(
                f"expected {self.num_envs} actions (one per env), got shape {np.shape(actions)}"
            )
        n = self.action_space.n  # type: ignore[attr-defined]
        if actions.min() < 0 or actions.max() >= n:
            raise ValueError(f"actions must be in [0, {n - 1}]{what}, got {actions}")
        return actions

    # ------------------------------------------------------------------ VecEnv attribute API
    def _indices(self, indices: VecEnvIndices) -> list[int]:
        if indices is None:
            return list(range(self.num_envs))
        if isinstance(indices, int):
            return [indices]
        return list(indices)

    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        values = []
        for i in self._indices(indices):
            if attr_name not in self._attrs[i]:
                raise AttributeError(
                    f"{self._label} has no per-env attribute {attr_name!r} "
                    f"(known: {', '.join(sorted(self._attrs[i]))}); {self._alternative} for "
                    "gymnasium env attributes"
                )
            values.append(self._attrs[i][attr_name])
        return values

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        for i in self._indices(indices):
            self._attrs[i][attr_name] = value

    def env_method(
        self, method_name: str, *method_args: Any, indices: VecEnvIndices = None, **method_kwargs
    ) -> list[Any]:
        methods = self._env_methods()
        if method_name in methods:
            return [methods[method_name]() for _ in self._indices(indices)]
        known = ", ".join(repr(m) for m in methods) or "none"
        raise AttributeError(
            f"{self._label} does not support env_method({method_name!r}); only {known} "
            f"({self._alternative} for gymnasium env methods)"
        )

    def env_is_wrapped(
        self, wrapper_class: type[gym.Wrapper], indices: VecEnvIndices = None
    ) -> list[bool]:
        wrapped = any(issubclass(w, wrapper_class) for w in self._emulated_wrappers())
        return [wrapped for _ in self._indices(indices)]

    def get_images(self) -> Sequence[np.ndarray | None]:
        raise NotImplementedError(f"{self._label} does not render; {self._alternative}")
