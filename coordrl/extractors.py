"""Stable-Baselines3 feature extractors with CoordConv layers.

:class:`CoordNatureCNN` is SB3's :class:`~stable_baselines3.common.torch_layers.NatureCNN`
(Mnih et al., 2015: conv 32 8x8/4, conv 64 4x4/2, conv 64 3x3/1, ReLU after each, flatten,
linear to ``features_dim``, ReLU) where the chosen conv layers are
:class:`~coordrl.layers.CoordConv2d`. It subclasses ``NatureCNN`` so that SB3 treats it the same
way (e.g. ``normalize_images=False`` automatically sets ``normalized_image=True``), keeps the same
module names (``cnn.0``, ``cnn.2``, ``cnn.4``, ``linear.0``) and, with ``coord_layers="none"``, is
architecturally identical to ``NatureCNN`` (same parameter names and shapes).

Note for SB3 users: SB3 only uses an empty ``net_arch`` by default when the extractor class *is*
``NatureCNN``; for any other class it adds a 64-64 MLP. Pass ``net_arch=[]`` in ``policy_kwargs``
to get the same network as ``CnnPolicy``'s default.
"""

from __future__ import annotations

import gymnasium as gym
import torch as th
from gymnasium import spaces
from stable_baselines3.common.preprocessing import is_image_space
from stable_baselines3.common.torch_layers import NatureCNN
from torch import nn

from coordrl.layers import CoordConv2d
from coordrl.variant import CoordLayersSpec, parse_coord_layers

__all__ = ["CoordNatureCNN", "parse_coord_layers", "NATURE_CONV_INDICES"]

#: Positions of the three conv layers inside ``NatureCNN.cnn`` (conv, ReLU, conv, ReLU, conv, ...).
NATURE_CONV_INDICES: tuple[int, int, int] = (0, 2, 4)


class CoordNatureCNN(NatureCNN):
    """Nature-DQN CNN with CoordConv layers, for SB3's ``features_extractor_class``.

    :param observation_space: channel-first image ``Box`` (SB3 transposes channel-last images
        before the extractor sees them)
    :param features_dim: number of output features (units of the final linear layer)
    :param normalized_image: whether the images are already normalised (disables SB3's uint8
        dtype/bounds check; set automatically by SB3 when ``normalize_images=False``)
    :param coord_layers: which conv layers get coordinate channels: ``"none"`` (plain NatureCNN),
        ``"first"``, ``"all"``, a list of indices in ``0..2`` or a string ``"0,2"``
    :param with_r: also add the radius channel to each CoordConv layer
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
        channels_last: bool = False,
    ) -> None:
        if not isinstance(observation_space, spaces.Box) or not is_image_space(
            observation_space, check_channels=False, normalized_image=normalized_image
        ):
            raise ValueError(
                f"CoordNatureCNN needs an image observation space, got {observation_space}.\n"
                "Expected a Box of shape (channels, height, width) with dtype uint8 and bounds "
                "[0, 255] (use `CnnPolicy`, not `MlpPolicy`; SB3 transposes channel-last images "
                "itself). If your images are already normalised (e.g. VecNormalize), pass "
                "`normalize_images=False` in policy_kwargs."
            )
        self.coord_layer_indices = parse_coord_layers(coord_layers, len(NATURE_CONV_INDICES))
        # NatureCNN builds the exact SB3 architecture (and computes n_flatten by a dummy forward);
        # CoordConv2d keeps every conv's output geometry, so we only swap the chosen conv layers.
        super().__init__(observation_space, features_dim, normalized_image=normalized_image)
        self.with_r = with_r
        for layer in self.coord_layer_indices:
            conv = self.cnn[NATURE_CONV_INDICES[layer]]
            assert isinstance(conv, nn.Conv2d)
            self.cnn[NATURE_CONV_INDICES[layer]] = CoordConv2d(
                conv.in_channels,
                conv.out_channels,
                conv.kernel_size,
                stride=conv.stride,
                padding=conv.padding,
                dilation=conv.dilation,
                bias=conv.bias is not None,
                with_r=with_r,
            )
        self.channels_last = channels_last

    def forward(self, observations: th.Tensor) -> th.Tensor:
        """:param observations: ``[B, C, H, W]`` float images (already scaled by SB3)
        :return: ``[B, features_dim]``"""
        if self.channels_last:
            observations = observations.contiguous(memory_format=th.channels_last)
        return self.linear(self.cnn(observations))
