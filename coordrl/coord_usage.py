"""Does the agent use the coordinates? Weight-magnitude diagnostics for CoordConv layers.

For every :class:`~coordrl.layers.CoordConv2d` the *coord ratio* is::

    mean(|w[:, coord channels]|) / mean(|w[:, content channels]|)

i.e. the mean absolute weight per coordinate-channel entry divided by the mean absolute weight per
content-channel entry (means over output channels, the channel's kernel taps and, for the
numerator, the 2 or 3 coordinate channels). Using means rather than sums makes the ratio
independent of how many channels each group has: at initialisation (uniform Kaiming init for every
channel) it is about 1; a ratio far below 1 after training means the layer has learned to ignore
the coordinates, far above 1 that it leans on them. It is a cheap proxy, not an attribution method:
the inputs' scales differ (coordinates lie in [-1, 1], pixels in [0, 1] after SB3's scaling).

:class:`CoordUsageCallback` logs the ratios through SB3's logger (TensorBoard, CSV, stdout,
whatever the model's logger writes to) under ``coordconv/<layer>_coord_ratio``.
"""

from __future__ import annotations

import torch as th
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback
from torch import nn

from coordrl.layers import CoordConv2d

__all__ = ["coord_weight_ratios", "CoordUsageCallback"]


def _modules_of(model_or_module: BaseAlgorithm | nn.Module) -> nn.Module:
    if isinstance(model_or_module, BaseAlgorithm):
        return model_or_module.policy
    if isinstance(model_or_module, nn.Module):
        return model_or_module
    raise TypeError(
        "coord_weight_ratios expects an SB3 model (PPO/A2C/DQN...) or a torch nn.Module, "
        f"got {type(model_or_module).__name__}"
    )


@th.no_grad()
def coord_weight_ratios(model_or_module: BaseAlgorithm | nn.Module) -> dict[str, float]:
    """Coord ratio (see module docstring) of every CoordConv2d layer.

    :param model_or_module: an SB3 model (its ``policy`` is searched) or any ``nn.Module``
    :return: ``{module name: ratio}`` (e.g. ``features_extractor.cnn.0`` for an SB3 policy); empty
        if there is no CoordConv2d layer. Target networks (a module path component ending in
        ``_target``, e.g. DQN's ``q_net_target``) are skipped: they are lagged copies. Modules
        shared under several names (SB3's shared actor/critic extractor) appear once. A layer
        whose content weights are all zero gets ``inf`` (``nan`` if its coord weights are too).
    """
    ratios: dict[str, float] = {}
    for name, module in _modules_of(model_or_module).named_modules():
        if any(part.endswith("_target") for part in name.split(".")):
            continue
        if isinstance(module, CoordConv2d):
            content = module.content_weight.abs().double().mean()
            coord = module.coord_weight.abs().double().mean()
            if content == 0:
                ratios[name] = float("nan") if coord == 0 else float("inf")
            else:
                ratios[name] = float(coord / content)
    return ratios


class CoordUsageCallback(BaseCallback):
    """Log :func:`coord_weight_ratios` to SB3's logger during training.

    Records ``coordconv/<layer>_coord_ratio`` every ``log_freq`` environment steps (counted by
    ``model.num_timesteps``) and at the end of each rollout. SB3 writes the recorded values at its
    next ``logger.dump`` (end of each PPO/A2C iteration, DQN's log interval), so they land in
    TensorBoard next to the training losses. With ``log_freq=0`` it logs at rollout ends only.

    Layers of the shared features extractor are logged once; with separate actor/critic
    extractors (``share_features_extractor=False``) each is logged under its own name.

    :param log_freq: log every this many environment steps (0: only at rollout end)
    :param verbose: SB3 verbosity level
    """

    def __init__(self, log_freq: int = 10_000, verbose: int = 0) -> None:
        super().__init__(verbose)
        if log_freq < 0:
            raise ValueError(f"log_freq must be >= 0 (0 = only at rollout end), got {log_freq}")
        self.log_freq = log_freq
        self._last_logged = -1
        self._next_log = log_freq

    def _record(self) -> None:
        if self._last_logged == self.num_timesteps:
            return
        self._last_logged = self.num_timesteps
        for name, ratio in coord_weight_ratios(self.model).items():
            self.logger.record(f"coordconv/{_short_name(name)}_coord_ratio", ratio)

    def _on_step(self) -> bool:
        if self.log_freq > 0 and self.num_timesteps >= self._next_log:
            self._record()
            while self._next_log <= self.num_timesteps:
                self._next_log += self.log_freq
        return True

    def _on_rollout_end(self) -> None:
        self._record()


def _short_name(name: str) -> str:
    """Drop the ``features_extractor.`` path component, which every layer shares:
    ``features_extractor.cnn.0`` -> ``cnn.0``, ``q_net.features_extractor.cnn.0`` ->
    ``q_net.cnn.0``; other components (``pi_features_extractor``...) keep names unique."""
    return ".".join(part for part in name.split(".") if part != "features_extractor")
