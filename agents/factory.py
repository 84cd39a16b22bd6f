"""Build SB3 A2C / PPO / DQN agents whose features extractor has CoordConv layers.

The extractor depends on the environment family (:data:`EXTRACTORS`): Atari and other pixel envs
get :class:`CoordNatureCNN`, MinAtar gets :class:`MinAtarCNN` (the MinAtar paper's network).
Both experimental arms use the same extractor class: the ``conv`` variant is
``coord_layers="none"`` (for Atari architecturally SB3's ``NatureCNN``), so the arms differ only
in the coordinate channels.

Fast paths (measured with ``scripts/bench_train_throughput.py``):

* observations stay ``uint8`` until they reach the device: SB3 (>= 2.4) keeps the rollout and
  replay buffers in the observation space's dtype and the policy scales by 1/255 after the
  transfer;
* channels-last convolutions on the CPU (oneDNN's preferred layout): about 1.3x on a PPO
  minibatch update of the Nature CNN on a 2-core AVX2 box (:func:`set_channels_last`);
* PPO/A2C minibatches come from :class:`TensorRolloutBuffer`, which moves the whole rollout to
  the device once per update and slices tensors, instead of gathering and copying numpy arrays
  for every minibatch of every epoch (a small gain on the CPU: ~1%; fewer host-to-device copies
  on a GPU).

The largest CPU gain is not here but in the train CLI: ``OMP_WAIT_POLICY=PASSIVE`` (see
``coordrl/train.py``).
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import numpy as np
import torch as th
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.buffers import RolloutBuffer
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from stable_baselines3.common.type_aliases import RolloutBufferSamples
from stable_baselines3.common.utils import get_device
from stable_baselines3.common.vec_env import VecEnv, VecNormalize

from coordrl.agents.config import (
    ALGOS,
    ConfigError,
    check_kwargs,
    parse_policy_kwargs,
    resolve_hyperparams,
)
from coordrl.extractors import CoordExtractorMixin, CoordNatureCNN, MinAtarCNN
from coordrl.variant import Variant

__all__ = [
    "EXTRACTORS",
    "TensorRolloutBuffer",
    "build_model",
    "check_extractor_kwargs",
    "extractor_class",
    "set_channels_last",
    "torch_threads",
    "use_channels_last",
]

#: ``features_extractor_kwargs`` that coordrl sets itself (why, for the message).
_EXTRACTOR_KEYS = {
    "coord_layers": "use --coordconv / --coord-layers / the variant name",
    "with_r": "use --with-r / the variant name",
    "coord_init": "use the variant name (coordconv-zero, ...)",
    "channels_last": "coordrl sets it (channels-last convolutions on the CPU)",
}

#: Features extractor per environment family (``EnvSpec.family``, see ``coordrl.envs``).
EXTRACTORS: dict[str, type[BaseFeaturesExtractor]] = {
    "atari": CoordNatureCNN,
    "pixel": CoordNatureCNN,
    "gym": CoordNatureCNN,
    "minatar": MinAtarCNN,
}


def extractor_class(family: str = "atari") -> type[BaseFeaturesExtractor]:
    """The features extractor :func:`build_model` uses for an environment family.

    :param family: ``EnvSpec.family``: ``"atari"``, ``"minatar"``, ``"pixel"`` or ``"gym"``
    :raises ConfigError: an unknown family
    """
    try:
        return EXTRACTORS[family]
    except KeyError:
        raise ConfigError(
            f"unknown environment family {family!r}; choose one of {', '.join(EXTRACTORS)}"
        ) from None


def check_extractor_kwargs(
    hyperparams: dict[str, Any], family: str = "atari", source: str = "config"
) -> None:
    """Check ``policy_kwargs.features_extractor_kwargs`` of raw hyperparameters (the ones
    :func:`build_model` takes) against the family's extractor, before anything is built: each
    key an argument of its ``__init__`` that the variant does not decide, of the right type,
    ``features_dim`` positive. The rest of ``policy_kwargs`` is checked when the hyperparameters
    are read (:func:`coordrl.agents.config.check_policy_kwargs`).

    :param hyperparams: raw algorithm arguments (``AlgoConfig.hyperparams``)
    :param family: ``EnvSpec.family`` (picks the extractor, :func:`extractor_class`)
    :param source: where they came from, for the message
    :raises ConfigError: an unknown family, a key the variant decides, an unknown key or a value
        of the wrong type
    """
    extractor = extractor_class(family)
    raw = hyperparams.get("policy_kwargs")
    if raw is None:
        return
    kwargs = parse_policy_kwargs(raw, source).get("features_extractor_kwargs") or {}
    if not isinstance(kwargs, dict):
        return  # check_policy_kwargs names it
    where = f"{source}: policy_kwargs.features_extractor_kwargs"
    for key, why in _EXTRACTOR_KEYS.items():
        if key in kwargs:
            raise ConfigError(f"{where} cannot set {key}: {why}")
    check_kwargs(extractor, kwargs, where, extractor.__name__, reserved=_EXTRACTOR_KEYS)
    dim = kwargs.get("features_dim")
    if dim is not None and dim < 1:
        raise ConfigError(f"{where}.features_dim must be a positive integer, got {dim!r}")


class TensorRolloutBuffer(RolloutBuffer):
    """SB3's :class:`RolloutBuffer` (observations kept in their ``uint8`` dtype) whose
    :meth:`get` converts the flattened rollout to device tensors once and yields minibatches by
    tensor indexing.

    Same samples in the same order as SB3's buffer for the same numpy RNG state (the
    permutation is drawn with ``np.random.permutation`` as SB3 does), so seeded runs are
    reproducible across the two buffers.
    """

    def get(self, batch_size: int | None = None) -> Generator[RolloutBufferSamples, None, None]:
        assert self.full, "the rollout buffer is not full yet"
        n = self.buffer_size * self.n_envs
        indices = np.random.permutation(n)
        if not self.generator_ready:
            names = ("observations", "actions", "values", "log_probs", "advantages", "returns")
            for name in names:
                self.__dict__[name] = self.swap_and_flatten(self.__dict__[name])
            self._tensors = (
                th.as_tensor(self.observations).to(self.device),
                # Cast to float32 as SB3 does (actions of every supported space).
                th.as_tensor(self.actions.astype(np.float32, copy=False)).to(self.device),
                th.as_tensor(self.values.flatten()).to(self.device),
                th.as_tensor(self.log_probs.flatten()).to(self.device),
                th.as_tensor(self.advantages.flatten()).to(self.device),
                th.as_tensor(self.returns.flatten()).to(self.device),
            )
            self.generator_ready = True
        batch_size = n if batch_size is None else batch_size
        index_tensor = th.as_tensor(indices, device=self.device)
        for start in range(0, n, batch_size):
            yield RolloutBufferSamples(
                *(t[index_tensor[start : start + batch_size]] for t in self._tensors)
            )

    def _get_samples(
        self, batch_inds: np.ndarray, env: VecNormalize | None = None
    ) -> RolloutBufferSamples:
        if self.generator_ready:
            idx = th.as_tensor(batch_inds, device=self.device)
            return RolloutBufferSamples(*(t[idx] for t in self._tensors))
        return super()._get_samples(batch_inds, env)

    def reset(self) -> None:
        self._tensors: tuple[th.Tensor, ...] = ()
        super().reset()


def use_channels_last(device: th.device | str) -> bool:
    """Whether convolutions run channels-last by default on ``device``: on the CPU (oneDNN
    prefers NHWC; about 1.3x on a PPO minibatch update of the Nature CNN on a 2-core AVX2 box),
    not on CUDA (not measured here; cuDNN gains from NHWC mainly in half precision).

    :param device: the torch device the model runs on
    """
    return th.device(device).type == "cpu"


def torch_threads(family: str, device: th.device | str) -> int | None:
    """Intra-op threads to train with: ``1`` for MinAtar on the CPU, ``None`` (keep torch's
    default) otherwise. Apply with ``torch.set_num_threads`` before training.

    MinAtar's network is tiny (one 3x3 conv on a 10x10 board), so PPO makes thousands of
    sub-millisecond torch calls per second; with more threads each parallel region has to wake
    or spin the OpenMP pool: under ``OMP_WAIT_POLICY=PASSIVE`` (what coordrl's CLIs set) a
    rollout forward pass took 0.9-1.3 ms with 2 threads against 0.36-0.45 ms with 1 on a 2-core
    VM (scripts/bench_minatar.py), and spinning threads fight the env and other processes.

    :param family: ``EnvSpec.family``
    :param device: the torch device the model trains on
    """
    return 1 if family == "minatar" and th.device(device).type == "cpu" else None


def set_channels_last(model: BaseAlgorithm, enabled: bool) -> int:
    """Switch every coordrl extractor (:class:`CoordNatureCNN`, :class:`MinAtarCNN`, ...) of
    ``model``'s policy (DQN: also the target network) to channels-last (or back) convolutions, in
    place; the optimizer keeps its parameters.

    Done after the policy is built rather than through ``CoordNatureCNN(channels_last=True)``:
    SB3's orthogonal initialisation (``ortho_init``) uses ``Tensor.view_as``, which fails on
    channels-last weights, and SB3 rebuilds (and re-initialises) the policy from its saved
    ``policy_kwargs`` when loading a model. Call it after ``ALGO.load`` too.

    :param model: an SB3 model built by :func:`build_model` (or loaded)
    :param enabled: channels-last on (``True``) or off
    :return: number of extractors switched
    """
    fmt = th.channels_last if enabled else th.contiguous_format
    count = 0
    for module in model.policy.modules():
        if isinstance(module, CoordExtractorMixin):
            module.to(memory_format=fmt)  # type: ignore[attr-defined]  (4-D weights only)
            module.channels_last = enabled
            count += 1
    return count


def build_model(
    algo: str,
    env: VecEnv,
    hyperparams: dict[str, Any],
    variant: Variant,
    seed: int | None,
    device: th.device | str = "auto",
    tensorboard_log: str | None = None,
    channels_last: bool | None = None,
    family: str = "atari",
) -> BaseAlgorithm:
    """Build an SB3 agent with the family's CoordConv features extractor
    (:func:`extractor_class`: ``CoordNatureCNN``, or ``MinAtarCNN`` for ``family="minatar"``).

    :param algo: ``"ppo"``, ``"a2c"`` or ``"dqn"``
    :param env: the training vector env (image observations, e.g. from ``envs.make_env``)
    :param hyperparams: raw algorithm arguments (``AlgoConfig.hyperparams``: ``lin_X`` and
        ``policy_kwargs`` strings are resolved here)
    :param variant: which conv layers get coordinate channels, with or without ``r``, and how
        their coordinate weights start (``Variant()`` = plain conv)
    :param seed: seed of the agent (torch, numpy, action sampling)
    :param device: ``"auto"``, ``"cpu"``, ``"cuda"``...
    :param tensorboard_log: TensorBoard directory (or ``None``; callers may also set a logger)
    :param channels_last: run the convolutions channels-last; ``None``: :func:`use_channels_last`
    :param family: the env's ``EnvSpec.family`` (picks the extractor)
    :raises ConfigError: bad hyperparameters, or ``policy_kwargs`` trying to set what the
        variant decides (the extractor class, ``coord_layers``, ``with_r``, ``coord_init``)
    :raises ValueError: an observation space that is not an image, or coordinate layers the
        family's network does not have (e.g. ``coordconv-L1`` for MinAtar's single conv)
    """
    if algo not in ALGOS:
        raise ConfigError(f"unknown algorithm {algo!r}; choose one of {', '.join(sorted(ALGOS))}")
    kwargs = resolve_hyperparams(algo, hyperparams)  # checks policy_kwargs too
    check_extractor_kwargs(hyperparams, family)
    extractor = extractor_class(family)
    policy_kwargs = dict(kwargs.pop("policy_kwargs", None) or {})
    extractor_kwargs = dict(policy_kwargs.pop("features_extractor_kwargs", None) or {})
    torch_device = get_device(device)
    if channels_last is None:
        channels_last = use_channels_last(torch_device)
    extractor_kwargs.update(
        coord_layers=variant.coord_layers, with_r=variant.with_r, coord_init=variant.coord_init
    )
    policy_kwargs["features_extractor_class"] = extractor
    policy_kwargs["features_extractor_kwargs"] = extractor_kwargs
    # SB3 gives CnnPolicy an empty head MLP only when the extractor *is* NatureCNN; keep the
    # CnnPolicy network for our subclass too (the conv variant must equal SB3's Nature CNN).
    policy_kwargs.setdefault("net_arch", [])
    if algo in ("ppo", "a2c"):
        kwargs["rollout_buffer_class"] = TensorRolloutBuffer
    model = ALGOS[algo](
        "CnnPolicy",
        env,
        policy_kwargs=policy_kwargs,
        seed=seed,
        device=torch_device,
        tensorboard_log=tensorboard_log,
        verbose=0,
        **kwargs,
    )
    for module in model.policy.modules():
        if isinstance(module, CoordExtractorMixin):
            module.apply_coord_init()  # coord_init="zero" after SB3's orthogonal init
    set_channels_last(model, channels_last)
    return model
