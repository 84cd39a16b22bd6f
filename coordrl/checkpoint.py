"""Saving and loading models and checkpoints without ever unpickling the file.

SB3's ``ALGO.load`` unpickles the objects a model zip stores (``policy_class``, spaces,
schedules...), so a crafted zip runs code when it is loaded. coordrl's loader does not use it:

* the file is read as data only (:func:`coordrl.runs.read_model_file`: ``zipfile`` and
  ``json``; a pickled entry coordrl does not rebuild is refused);
* the agent is built from the run's ``config.yaml`` and the env with
  :func:`coordrl.agents.factory.build_model`, exactly as a new run builds it, so every pickled
  entry (policy class and kwargs, spaces, schedules, buffer classes) comes from the config, not
  from the file;
* the weights and the optimizer state load with ``torch.load(..., weights_only=True)`` (torch's
  restricted unpickler: tensors and plain containers only) and go in with SB3's
  ``set_parameters(exact_match=True)``, so a file whose tensors do not fit the configured network
  is refused;
* the training counters SB3 keeps (``num_timesteps``, ``_n_updates``, DQN's
  ``exploration_rate``...) are taken from the JSON, type-checked.

:func:`save_model` writes SB3's usual zip (``PPO.load`` still reads it) plus, as plain JSON in
``data``, what a resume needs that SB3 would otherwise pickle or not keep: the episode-statistics
window and the random number generators' states (:class:`RngState`).
"""

from __future__ import annotations

import base64
import io
import math
import random
import warnings
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch as th
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.vec_env import VecEnv

from coordrl import runs
from coordrl._cli import UsageError
from coordrl.agents.config import ConfigError
from coordrl.agents.factory import build_model
from coordrl.envs import UnknownEnvError, resolve_env
from coordrl.runs import ModelFile, ModelFileError, RunConfig
from coordrl.variant import Variant

__all__ = [
    "CheckpointError",
    "EP_INFO_ATTR",
    "RNG_ATTR",
    "WALL_TIME_ATTR",
    "RngState",
    "load_checkpoint",
    "load_model",
    "save_model",
]

#: Attributes coordrl adds to a saved model's ``data`` (plain JSON): training wall time summed
#: over resumed sessions, SB3's episode-statistics window, the RNG states.
WALL_TIME_ATTR = "coordrl_wall_time_s"
EP_INFO_ATTR = "coordrl_ep_info_buffer"
RNG_ATTR = "coordrl_rng"

#: Training counters restored from the JSON: name -> (type, required, may be negative).
_COUNTERS: dict[str, tuple[type, bool, bool]] = {
    "num_timesteps": (int, True, False),
    "_n_updates": (int, False, False),
    "_episode_num": (int, False, False),
    "_n_calls": (int, False, False),  # DQN: target-network update phase
    "_current_progress_remaining": (float, False, True),  # below 0 after an overshoot
    "exploration_rate": (float, False, False),  # DQN: epsilon of epsilon-greedy actions
    WALL_TIME_ATTR: (float, False, False),
}
#: Bit generators an action space's RNG state may name (numpy's own).
_BIT_GENERATORS = ("PCG64", "PCG64DXSM", "MT19937", "Philox", "SFC64")


class CheckpointError(UsageError):
    """A model file that does not load (damaged, refused, or not this run's network); a
    :class:`~coordrl._cli.UsageError`, so a CLI reports it as one line and exits 2."""


# ----------------------------------------------------------------------------- RNG states
def _b64(array: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(array).tobytes()).decode()


def _unb64(text: Any, dtype: str, length: int, what: str) -> np.ndarray:
    if not isinstance(text, str):
        raise ValueError(f"{what}: expected a base64 string")
    array = np.frombuffer(base64.b64decode(text.encode(), validate=True), dtype=dtype)
    if array.size != length:
        raise ValueError(f"{what}: expected {length} values, got {array.size}")
    return array.copy()


@dataclass(frozen=True)
class RngState:
    """The random number generators a training run draws from, as SB3 seeds them
    (``set_random_seed``): Python's ``random``, numpy's global RNG, torch's CPU (and CUDA) RNG,
    and the action space's generator (DQN's random actions). Kept in a checkpoint as plain JSON
    (base64 of the raw state words), restored by ``--resume``.

    :param python: ``random.getstate()``
    :param numpy: ``np.random.get_state()`` (the legacy ``MT19937`` tuple)
    :param torch: ``torch.get_rng_state()``
    :param cuda: ``torch.cuda.get_rng_state_all()`` (empty when CUDA was not in use)
    :param action_space: the action space's ``np_random.bit_generator.state`` (``None``: none)
    """

    python: tuple
    numpy: tuple
    torch: th.Tensor
    cuda: tuple[th.Tensor, ...]
    action_space: dict[str, Any] | None

    @classmethod
    def capture(cls, model: BaseAlgorithm) -> RngState:
        """The current states (of the global generators and of ``model``'s action space)."""
        cuda = tuple(th.cuda.get_rng_state_all()) if th.cuda.is_initialized() else ()
        space_rng = getattr(model.action_space, "_np_random", None)
        return cls(
            random.getstate(),
            np.random.get_state(legacy=True),  # type: ignore[arg-type]
            th.get_rng_state(),
            cuda,
            None if space_rng is None else dict(space_rng.bit_generator.state),
        )

    def to_json(self) -> dict[str, Any]:
        version, words, gauss = self.python
        name, keys, pos, has_gauss, cached = self.numpy
        return {
            "python": {"version": version, "state": _b64(np.array(words, "<u4")), "gauss": gauss},
            "numpy": {
                "name": name,
                "keys": _b64(keys.astype("<u4")),
                "pos": int(pos),
                "has_gauss": int(has_gauss),
                "cached_gaussian": float(cached),
            },
            "torch": _b64(self.torch.numpy()),
            "cuda": [_b64(t.numpy()) for t in self.cuda],
            "action_space": self.action_space,
        }

    @classmethod
    def from_json(cls, data: Any) -> RngState:
        """Parse and check :meth:`to_json`'s form.

        :raises ValueError: anything else
        """
        if not isinstance(data, dict) or not {"python", "numpy", "torch"} <= set(data):
            raise ValueError("expected python, numpy and torch states")
        py, npy = data["python"], data["numpy"]
        if not isinstance(py, dict) or py.get("version") != 3:
            raise ValueError("python: expected a version 3 random state")
        gauss = py.get("gauss")
        if gauss is not None and not isinstance(gauss, float):
            raise ValueError("python: gauss must be a float or null")
        words = tuple(int(w) for w in _unb64(py.get("state"), "<u4", 625, "python"))
        if words[-1] > 624:  # the last word is the position in the other 624
            raise ValueError("python: bad position")
        if not isinstance(npy, dict) or npy.get("name") != "MT19937":
            raise ValueError("numpy: expected an MT19937 state")
        keys = _unb64(npy.get("keys"), "<u4", 624, "numpy").astype(np.uint32)
        pos, has_gauss, cached = npy.get("pos"), npy.get("has_gauss"), npy.get("cached_gaussian")
        if not (isinstance(pos, int) and 0 <= pos <= 624 and has_gauss in (0, 1)):
            raise ValueError("numpy: bad pos or has_gauss")
        if not isinstance(cached, (int, float)):
            raise ValueError("numpy: bad cached_gaussian")
        n_torch = th.get_rng_state().numel()
        torch_state = th.from_numpy(_unb64(data["torch"], "uint8", n_torch, "torch"))
        cuda = data.get("cuda", [])
        if not isinstance(cuda, list):
            raise ValueError("cuda: expected a list")
        if not all(isinstance(c, str) for c in cuda):
            raise ValueError("cuda: expected base64 strings")
        cuda_states = tuple(
            th.frombuffer(bytearray(base64.b64decode(c.encode(), validate=True)), dtype=th.uint8)
            for c in cuda
        )
        space = data.get("action_space")
        if space is not None:
            _check_bit_generator_state(space)
        numpy_state = ("MT19937", keys, pos, has_gauss, float(cached))
        return cls((3, words, gauss), numpy_state, torch_state, cuda_states, space)

    def restore(self, model: BaseAlgorithm) -> list[str]:
        """Set the generators to these states; returns the names of those restored (CUDA only
        when this process uses as many CUDA devices as the saved one)."""
        random.setstate(self.python)
        np.random.set_state(self.numpy)
        th.set_rng_state(self.torch)
        done = ["python", "numpy", "torch"]
        if self.cuda and th.cuda.is_available() and len(self.cuda) == th.cuda.device_count():
            th.cuda.set_rng_state_all(list(self.cuda))
            done.append("cuda")
        if self.action_space is not None and hasattr(model.action_space, "np_random"):
            model.action_space.np_random.bit_generator.state = self.action_space
            done.append("action space")
        return done


def _check_bit_generator_state(state: Any) -> None:
    """A numpy bit generator state (as ``bit_generator.state`` gives it), tried on a fresh
    generator of the class it names.

    :raises ValueError: not one
    """
    if not isinstance(state, dict) or state.get("bit_generator") not in _BIT_GENERATORS:
        raise ValueError(f"action_space: expected one of {_BIT_GENERATORS} states")
    try:
        getattr(np.random, state["bit_generator"])().state = state
    except (TypeError, KeyError, ValueError) as e:
        raise ValueError(f"action_space: {e}") from None


# ----------------------------------------------------------------------------- saving
def _episode_infos(model: BaseAlgorithm) -> list[dict[str, float]]:
    """SB3's episode-statistics window as plain JSON (numbers only)."""
    out = []
    for info in model.ep_info_buffer or []:
        out.append(
            {
                str(k): float(v)
                for k, v in info.items()
                if isinstance(v, (int, float, np.number)) and not isinstance(v, bool)
            }
        )
    return out


def save_model(model: BaseAlgorithm, path: Path) -> None:
    """Write ``model`` to ``path`` atomically as SB3's zip, with the RNG states and the
    episode-statistics window as plain JSON (what :func:`load_checkpoint` restores).

    :param model: the agent
    :param path: ``model.zip`` or a checkpoint
    """
    setattr(model, RNG_ATTR, RngState.capture(model).to_json())
    setattr(model, EP_INFO_ATTR, _episode_infos(model))
    runs.write_model(path, model.save)


# ----------------------------------------------------------------------------- loading
def _tensors(file: ModelFile, name: str, device: th.device) -> Any:
    """One ``.pth`` entry, loaded with torch's restricted unpickler (``weights_only=True``)."""
    try:
        return th.load(io.BytesIO(file.tensors[name]), map_location=device, weights_only=True)
    except Exception as e:  # UnpicklingError (a forbidden object), a damaged entry...
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise ModelFileError(f"{file.path}: {name}.pth does not load as tensors ({first})") from e


def _counters(file: ModelFile) -> dict[str, Any]:
    """The training counters of :data:`_COUNTERS` found in the JSON, type-checked."""
    out: dict[str, Any] = {}
    for key, (kind, required, signed) in _COUNTERS.items():
        value = file.data.get(key)
        if value is None:
            if required:
                raise ModelFileError(f"{file.path}: no {key} in its data")
            continue
        ok = isinstance(value, (int, float) if kind is float else int)
        bad = not ok or isinstance(value, bool) or not math.isfinite(value)
        if bad or (value < 0 and not signed):
            bound = "" if signed else " >= 0"
            raise ModelFileError(f"{file.path}: {key} must be a finite number{bound}: {value!r}")
        out[key] = kind(value)
    return out


def _episode_window(file: ModelFile) -> list[dict[str, float]] | None:
    infos = file.data.get(EP_INFO_ATTR)
    if infos is None:
        return None
    if not isinstance(infos, list) or not all(
        isinstance(i, dict)
        and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in i.values())
        for i in infos
    ):
        raise ModelFileError(f"{file.path}: {EP_INFO_ATTR} must be a list of number mappings")
    return infos


def _build(config: RunConfig, env: VecEnv, device: th.device, for_training: bool) -> BaseAlgorithm:
    """The agent of ``config``, freshly built on ``env`` (what a new run starts from)."""
    hyperparams = dict(config.hyperparams)
    if config.algo == "dqn" and not for_training:
        hyperparams["buffer_size"] = 1  # to act only: no replay buffer
    try:
        family = resolve_env(config.game).family
        with warnings.catch_warnings():
            if not for_training:  # the evaluation env has another number of envs than training
                warnings.filterwarnings("ignore", message=".*mini-batch size")
            return build_model(
                config.algo,
                env,
                hyperparams,
                Variant.from_name(config.variant),
                config.seed,
                device,
                family=family,
            )
    except (ConfigError, UnknownEnvError, ValueError, AssertionError) as e:
        raise UsageError(f"cannot build the {config.algo.upper()} agent: {e}") from None


def _load(
    config: RunConfig, path: Path, device: th.device, env: VecEnv, what: str, for_training: bool
) -> tuple[BaseAlgorithm, ModelFile]:
    try:
        file = runs.read_model_file(path)
        params = {name: _tensors(file, name, device) for name in ("policy", "policy.optimizer")}
        if "pytorch_variables" in file.tensors and _tensors(file, "pytorch_variables", device):
            # PPO, A2C and DQN have none (SAC's entropy coefficient would be one)
            raise ModelFileError(f"{path}: pytorch_variables.pth is not empty")
        counters = _counters(file)
        episodes = _episode_window(file)
    except FileNotFoundError:
        raise CheckpointError(f"cannot load {what} {path}: no such file") from None
    except ModelFileError as e:
        raise CheckpointError(f"cannot load {what} {e}") from None
    model = _build(config, env, device, for_training)
    try:
        model.set_parameters(params, exact_match=True, device=device)
    except Exception as e:  # missing/extra keys, wrong shapes: not this run's network
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise CheckpointError(
            f"cannot load {what} {path}: its tensors do not fit the network of the run's "
            f"config.yaml ({type(e).__name__}: {first})"
        ) from None
    for key, value in counters.items():
        if key == WALL_TIME_ATTR or hasattr(model, key):
            setattr(model, key, value)
    if episodes is not None:
        model.ep_info_buffer = deque(episodes, maxlen=model._stats_window_size)
        # SB3 makes both windows or neither; coordrl's envs report no ``is_success``
        model.ep_success_buffer = deque(maxlen=model._stats_window_size)
    return model, file


def load_model(
    config: RunConfig, path: Path, device: th.device, env: VecEnv, what: str = "model"
) -> BaseAlgorithm:
    """Load a model or checkpoint of the run ``config`` describes, to act with (a DQN gets no
    replay buffer). Nothing from the file is unpickled (see the module docstring).

    :param config: the run's configuration (the network, algorithm and hyperparameters)
    :param path: ``model.zip`` or a checkpoint
    :param device: where the model runs
    :param env: an env with the run's spaces (e.g. its evaluation env) to build the agent on
    :param what: what the file is, for the error message
    :raises CheckpointError: the file cannot be loaded (names it and says why)
    :raises UsageError: the agent cannot be built from ``config``
    """
    return _load(config, path, device, env, what, for_training=False)[0]


def load_checkpoint(
    config: RunConfig, path: Path, device: th.device, env: VecEnv
) -> tuple[BaseAlgorithm, RngState | None]:
    """Load a checkpoint to continue training on ``env``: weights, optimizer state, counters and
    episode statistics; the RNG states are returned (restore them with :meth:`RngState.restore`
    just before training: building envs may draw from the global generators).

    :param config: the run's configuration
    :param path: the checkpoint
    :param device: where the model trains
    :param env: the training env
    :return: the model and the saved RNG states (``None``: a checkpoint without them)
    :raises CheckpointError: the file cannot be loaded (names it and says why)
    :raises UsageError: the agent cannot be built from ``config``
    """
    model, file = _load(config, path, device, env, "checkpoint", for_training=True)
    rng = file.data.get(RNG_ATTR)
    if rng is None:
        return model, None
    try:
        return model, RngState.from_json(rng)
    except (ValueError, TypeError) as e:
        raise CheckpointError(f"cannot load checkpoint {path}: bad {RNG_ATTR} ({e})") from None
