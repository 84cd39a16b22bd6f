"""Stable-Baselines3 feature extractors with CoordConv layers.

All of them get their CoordConv layers from one mechanism, :func:`coordrl.conversion.to_coordconv`
(the chosen ``nn.Conv2d`` layers become :class:`~coordrl.layers.CoordConv2d` with the same
hyperparameters and content weights):

* :class:`CoordNatureCNN`: SB3's :class:`~stable_baselines3.common.torch_layers.NatureCNN`
  (Mnih et al., 2015: conv 32 8x8/4, conv 64 4x4/2, conv 64 3x3/1, ReLU after each, flatten,
  linear to ``features_dim``, ReLU) with the chosen conv layers converted. It subclasses
  ``NatureCNN`` so that SB3 treats it the same way (e.g. ``normalize_images=False`` automatically
  sets ``normalized_image=True``), keeps the same module names (``cnn.0``, ``cnn.2``, ``cnn.4``,
  ``linear.0``) and, with ``coord_layers="none"``, is ``NatureCNN`` parameter for parameter.
* :class:`MinAtarCNN`: the network of the MinAtar paper (Young & Tian, 2019: one 3x3 conv with 16
  channels, stride 1, ReLU, flatten, a 128-unit linear layer, ReLU) for 10x10 MinAtar boards.
* :class:`CoordConvExtractor`: any SB3 features extractor class (SB3's ``NatureCNN``, a user's
  own CNN), built and then converted, so ``policy_kwargs`` alone gives CoordConv to any SB3 CNN::

      policy_kwargs = dict(
          features_extractor_class=CoordConvExtractor,
          features_extractor_kwargs=dict(base_class=NatureCNN, coord_layers="first"),
          net_arch=[],
      )

Zero-initialised coordinate weights (``coord_init="zero"``) survive SB3's policy initialisation:
PPO/A2C policies (``ortho_init=True``) re-initialise every conv layer *after* building the
extractor, so the extractor zeroes its coordinate weights again at its first forward pass (or
when :meth:`CoordExtractorMixin.apply_coord_init` is called, as ``build_model`` does); loading a
state dict cancels that, so loaded weights are never touched.

Note for SB3 users: SB3 only uses an empty ``net_arch`` by default when the extractor class *is*
``NatureCNN``; for any other class it adds a 64-64 MLP. Pass ``net_arch=[]`` in ``policy_kwargs``
to get the same network as ``CnnPolicy``'s default.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import torch as th
from gymnasium import spaces
from stable_baselines3.common.preprocessing import is_image_space
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor, NatureCNN
from torch import nn

from coordrl.conversion import conv_layers, init_coord_weights, to_coordconv
from coordrl.variant import CoordLayersSpec, parse_coord_layers

__all__ = [
    "CoordConvExtractor",
    "CoordExtractorMixin",
    "CoordNatureCNN",
    "MinAtarCNN",
    "NATURE_CONV_INDICES",
    "parse_coord_layers",
]

#: Positions of the three conv layers inside ``NatureCNN.cnn`` (conv, ReLU, conv, ReLU, conv, ...).
NATURE_CONV_INDICES: tuple[int, int, int] = (0, 2, 4)


def _check_image_space(
    cls_name: str, observation_space: gym.Space, normalized_image: bool
) -> spaces.Box:
    if not isinstance(observation_space, spaces.Box) or not is_image_space(
        observation_space, check_channels=False, normalized_image=normalized_image
    ):
        raise ValueError(
            f"{cls_name} needs an image observation space, got {observation_space}.\n"
            "Expected a Box of shape (channels, height, width) with dtype uint8 and bounds "
            "[0, 255] (use `CnnPolicy`, not `MlpPolicy`; SB3 transposes channel-last images "
            "itself). If your images are already normalised (e.g. VecNormalize), pass "
            "`normalize_images=False` in policy_kwargs."
        )
    return observation_space


class CoordExtractorMixin:
    """CoordConv bookkeeping shared by coordrl's extractors (mixed into ``nn.Module`` classes).

    Sets ``coord_layer_indices``, ``with_r``, ``coord_init`` and ``channels_last``; call
    :meth:`_convert` in ``__init__`` after the network is built. Its :meth:`forward` is
    ``linear(cnn(x))``; an extractor with another layout overrides it and calls :meth:`_prepare`
    on its input first.
    """

    coord_layer_indices: tuple[int, ...]
    with_r: bool
    coord_init: str
    channels_last: bool

    def _convert(
        self,
        net: nn.Module,
        coord_layers: CoordLayersSpec,
        with_r: bool,
        coord_init: str,
        channels_last: bool,
    ) -> None:
        self.coord_layer_indices = parse_coord_layers(coord_layers, len(conv_layers(net)))
        to_coordconv(net, self.coord_layer_indices, with_r=with_r, coord_init=coord_init)
        self.with_r = with_r
        self.coord_init = coord_init
        self.channels_last = channels_last
        # SB3 re-initialises actor-critic extractors after __init__: re-zero at first use.
        self._coord_init_pending = coord_init == "zero" and bool(self.coord_layer_indices)

    def apply_coord_init(self) -> None:
        """Apply ``coord_init="zero"`` now if it is still pending (no-op otherwise).

        Call it after an outside re-initialisation of the weights (SB3's ``ortho_init``); it runs
        by itself at the first forward pass unless a state dict was loaded first.
        """
        if self._coord_init_pending:
            init_coord_weights(self, self.coord_init)  # type: ignore[arg-type]
            self._coord_init_pending = False

    def _prepare(self, observations: th.Tensor) -> th.Tensor:
        if self._coord_init_pending:
            self.apply_coord_init()
        if self.channels_last:
            observations = observations.contiguous(memory_format=th.channels_last)
        return observations

    def forward(self, observations: th.Tensor) -> th.Tensor:
        """The Nature-CNN layout shared by :class:`CoordNatureCNN` and :class:`MinAtarCNN`:
        ``linear(cnn(x))``.

        :param observations: ``[B, C, H, W]`` float images (already scaled to [0, 1] by SB3)
        :return: ``[B, features_dim]``"""
        return self.linear(self.cnn(self._prepare(observations)))  # type: ignore[attr-defined]

    def _load_from_state_dict(self, *args: Any, **kwargs: Any) -> None:
        self._coord_init_pending = False  # loaded weights win over the pending init
        super()._load_from_state_dict(*args, **kwargs)  # type: ignore[misc]


class CoordNatureCNN(CoordExtractorMixin, NatureCNN):
    """Nature-DQN CNN with CoordConv layers, for SB3's ``features_extractor_class``.

    :param observation_space: channel-first image ``Box`` (SB3 transposes channel-last images
        before the extractor sees them)
    :param features_dim: number of output features (units of the final linear layer)
    :param normalized_image: whether the images are already normalised (disables SB3's uint8
        dtype/bounds check; set automatically by SB3 when ``normalize_images=False``)
    :param coord_layers: which conv layers get coordinate channels: ``"none"`` (plain NatureCNN),
        ``"first"``, ``"all"``, a list of indices in ``0..2`` or a string ``"0,2"``
    :param with_r: also add the radius channel to each CoordConv layer
    :param coord_init: ``"default"`` or ``"zero"`` coordinate weights (:mod:`coordrl.conversion`)
    :param channels_last: convert the input to channels-last memory format in :meth:`forward`,
        which makes PyTorch run the convolutions channels-last. Same numbers (to float
        rounding), different speed: about 1.3x faster forward+backward on the x86 CPU we
        measured, see ``scripts/bench_coordconv.py``. The weights are left alone (SB3's
        orthogonal init cannot handle channels-last tensors; their format made no measurable
        difference); ``extractor.to(memory_format=torch.channels_last)`` after construction works
        too and state dicts load either way.
    """

    def __init__(
        self,
        observation_space: gym.Space,
        features_dim: int = 512,
        normalized_image: bool = False,
        coord_layers: CoordLayersSpec = "first",
        with_r: bool = False,
        coord_init: str = "default",
        channels_last: bool = False,
    ) -> None:
        _check_image_space(type(self).__name__, observation_space, normalized_image)
        parse_coord_layers(coord_layers, len(NATURE_CONV_INDICES))  # bad spec: fail before work
        # NatureCNN builds the exact SB3 architecture (and computes n_flatten by a dummy forward);
        # CoordConv2d keeps every conv's output geometry, so only the chosen convs are swapped.
        super().__init__(observation_space, features_dim, normalized_image=normalized_image)
        self._convert(self.cnn, coord_layers, with_r, coord_init, channels_last)


class MinAtarCNN(CoordExtractorMixin, BaseFeaturesExtractor):
    """The MinAtar paper's network (Young & Tian, 2019, and ``examples/dqn.py`` of their repo):
    ``Conv2d(C, 16, 3, stride=1)``, ReLU, flatten, ``Linear(16 * 8 * 8, 128)``, ReLU; here with
    CoordConv in the conv layer (or none: ``coord_layers="none"``).

    Module names follow :class:`CoordNatureCNN`: ``cnn.0`` (the conv) and ``linear.0``. With
    SB3's ``CnnPolicy`` and ``net_arch=[]`` the policy adds the paper's output layers (DQN: a
    linear layer to the Q-values; PPO/A2C: linear policy and value heads).

    :param observation_space: channel-first uint8 image ``Box`` ``(C, 10, 10)`` (coordrl's MinAtar
        env emits {0, 255} so that SB3's division by 255 gives exactly the 0/1 board)
    :param features_dim: units of the linear layer (128 in the paper)
    :param normalized_image: images already in [0, 1] (set by SB3 with ``normalize_images=False``)
    :param coord_layers: ``"none"``, ``"first"`` or ``"all"`` (the same, there is one conv) or ``0``
    :param with_r: also add the radius channel
    :param coord_init: ``"default"`` or ``"zero"`` coordinate weights (:mod:`coordrl.conversion`)
    :param channels_last: run the convolution channels-last (see :class:`CoordNatureCNN`)
    """

    def __init__(
        self,
        observation_space: gym.Space,
        features_dim: int = 128,
        normalized_image: bool = False,
        coord_layers: CoordLayersSpec = "first",
        with_r: bool = False,
        coord_init: str = "default",
        channels_last: bool = False,
    ) -> None:
        space = _check_image_space(type(self).__name__, observation_space, normalized_image)
        super().__init__(observation_space, features_dim)
        n_channels, height, width = space.shape
        if height < 3 or width < 3:
            raise ValueError(f"MinAtarCNN needs images of at least 3x3, got {space.shape}")
        self.cnn = nn.Sequential(
            nn.Conv2d(n_channels, 16, kernel_size=3, stride=1), nn.ReLU(), nn.Flatten()
        )
        n_flatten = 16 * (height - 2) * (width - 2)
        self.linear = nn.Sequential(nn.Linear(n_flatten, features_dim), nn.ReLU())
        self._convert(self.cnn, coord_layers, with_r, coord_init, channels_last)


class CoordConvExtractor(CoordExtractorMixin, BaseFeaturesExtractor):
    """Any SB3 features extractor with CoordConv: builds ``base_class(observation_space,
    **base_kwargs)`` and converts its conv layers with :func:`~coordrl.conversion.to_coordconv`.

    The base extractor is the submodule ``base`` (parameter names ``base.<its names>``); the
    features dimension is the base's. Saved SB3 models restore it in a fresh process as long as
    ``base_class`` can be imported there (SB3 pickles ``policy_kwargs``).

    :param observation_space: passed to the base class
    :param base_class: an SB3 ``BaseFeaturesExtractor`` subclass, e.g. ``NatureCNN``
    :param base_kwargs: keyword arguments of ``base_class`` (e.g. ``features_dim``; pass
        ``normalized_image=True`` here for a ``NatureCNN`` base with ``normalize_images=False``,
        which SB3 sets by itself only for ``NatureCNN`` subclasses)
    :param coord_layers: which of the base's ``nn.Conv2d`` layers (in ``modules()`` order) get
        coordinate channels: ``"first"``, ``"all"``, ``"none"`` or indices
    :param with_r: also add the radius channel
    :param coord_init: ``"default"`` or ``"zero"`` coordinate weights
    :param channels_last: convert the input to channels-last before the base's forward
    """

    def __init__(
        self,
        observation_space: gym.Space,
        base_class: type[BaseFeaturesExtractor] = NatureCNN,
        base_kwargs: dict[str, Any] | None = None,
        coord_layers: CoordLayersSpec = "first",
        with_r: bool = False,
        coord_init: str = "default",
        channels_last: bool = False,
    ) -> None:
        if not (isinstance(base_class, type) and issubclass(base_class, BaseFeaturesExtractor)):
            raise TypeError(
                f"base_class must be an SB3 BaseFeaturesExtractor subclass, got {base_class!r}"
            )
        base = base_class(observation_space, **(base_kwargs or {}))
        super().__init__(observation_space, base.features_dim)
        self.base = base
        self._convert(self.base, coord_layers, with_r, coord_init, channels_last)

    def forward(self, observations: th.Tensor) -> th.Tensor:
        """:param observations: what the base extractor takes
        :return: the base extractor's features"""
        return self.base(self._prepare(observations))
