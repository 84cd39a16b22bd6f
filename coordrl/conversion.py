"""Give CoordConv to any convolutional network: replace chosen ``nn.Conv2d`` layers in place.

:func:`to_coordconv` swaps ``nn.Conv2d`` layers of a module for
:class:`~coordrl.layers.CoordConv2d` layers with the same hyperparameters and the same weights on
the content channels, so a converted network whose coordinate weights are zero computes exactly
what the original computed. It is the one mechanism behind every CoordConv network in coordrl:
:class:`~coordrl.extractors.CoordNatureCNN`, :class:`~coordrl.extractors.MinAtarCNN` and
:class:`~coordrl.extractors.CoordConvExtractor` (any SB3 features extractor).

Coordinate-weight initialisation (``coord_init``):

* ``"default"``: the coordinate channels are initialised as ``nn.Conv2d`` initialises the weights
  of the original layer (``kaiming_uniform_(a=sqrt(5))``, i.e. uniform in
  ``[-1/sqrt(fan_in), 1/sqrt(fan_in)]`` with the original ``fan_in = in_channels * kH * kW``): each
  coordinate channel starts like one more input channel of a freshly built layer, so the
  coordinate-usage ratio (:mod:`coordrl.coord_usage`) of a fresh network is about 1.
* ``"zero"``: the coordinate weights are zero, so the converted network starts as exactly the
  original function and gradient descent decides whether to use the coordinates.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch as th
from torch import nn

from coordrl.layers import CoordConv2d, _is_channels_last
from coordrl.variant import COORD_INITS, CoordLayersSpec, parse_coord_layers

__all__ = ["COORD_INITS", "conv_layers", "init_coord_weights", "to_coordconv"]


def conv_layers(module: nn.Module) -> list[tuple[str, nn.Conv2d]]:
    """The ``nn.Conv2d`` layers of ``module`` (``CoordConv2d`` included), with qualified names, in
    the order of ``module.modules()``: the order that ``layers`` indices of :func:`to_coordconv`
    refer to. A layer shared under several names is listed once, under its first name."""
    return [(name, m) for name, m in module.named_modules() if isinstance(m, nn.Conv2d)]


def _check_coord_init(coord_init: str) -> None:
    if coord_init not in COORD_INITS:
        raise ValueError(
            f"unknown coord_init {coord_init!r}: use one of {', '.join(map(repr, COORD_INITS))}"
        )


@th.no_grad()
def init_coord_weights(module: nn.Module, coord_init: str = "default") -> int:
    """(Re-)initialise the coordinate weights of every :class:`CoordConv2d` in ``module``.

    The content weights and biases are left alone. See the module docstring for the schemes.

    :param module: any module (a ``CoordConv2d`` itself, a network, an SB3 policy)
    :param coord_init: ``"default"`` or ``"zero"``
    :return: number of layers initialised
    """
    _check_coord_init(coord_init)
    count = 0
    for m in module.modules():
        if isinstance(m, CoordConv2d):
            coord = m.weight[:, m.in_channels :]
            if coord_init == "zero":
                coord.zero_()
            else:
                bound = 1.0 / math.sqrt(m.in_channels * math.prod(m.kernel_size))
                coord.uniform_(-bound, bound)
            count += 1
    return count


def _conversion_error(name: str, conv: nn.Conv2d) -> str | None:
    """Why ``conv`` cannot become a CoordConv2d with the same behaviour (``None``: it can)."""
    label = f"layer {name or '<root>'!r} ({type(conv).__name__})"
    if isinstance(conv.weight, nn.parameter.UninitializedParameter):
        return f"{label} is an uninitialised lazy conv; run one forward pass before converting it"
    if conv.groups != 1:
        return (
            f"{label} has groups={conv.groups}: CoordConv2d supports only groups=1 (there is no "
            "canonical way to share the coordinate channels between groups); choose other layers"
        )
    cls = type(conv)
    if any(getattr(cls, a) is not getattr(nn.Conv2d, a) for a in ("forward", "_conv_forward")):
        return (
            f"{label} subclasses nn.Conv2d with its own forward; converting it would drop that "
            "behaviour (only plain nn.Conv2d layers are converted)"
        )
    return None


@th.no_grad()
def _coordconv_like(conv: nn.Conv2d, with_r: bool, coord_init: str) -> CoordConv2d:
    """A CoordConv2d with ``conv``'s hyperparameters, weights and bias on the content channels."""
    weight = conv.weight
    # Built on the meta device (no init work, no RNG draws), then materialised where conv lives.
    new = CoordConv2d(
        conv.in_channels,
        conv.out_channels,
        conv.kernel_size,
        stride=conv.stride,
        padding=conv.padding,
        dilation=conv.dilation,
        bias=conv.bias is not None,
        padding_mode=conv.padding_mode,
        with_r=with_r,
        device="meta",
        dtype=weight.dtype,
    ).to_empty(device=weight.device)
    new.weight[:, : conv.in_channels].copy_(weight)
    if conv.bias is not None:
        new.bias.copy_(conv.bias)
        new.bias.requires_grad_(conv.bias.requires_grad)
    new.weight.requires_grad_(weight.requires_grad)
    init_coord_weights(new, coord_init)
    if _is_channels_last(weight):
        new.to(memory_format=th.channels_last)
    new.train(conv.training)
    return new


def to_coordconv(
    module: nn.Module,
    layers: CoordLayersSpec = "first",
    with_r: bool = False,
    coord_init: str = "default",
) -> nn.Module:
    """Replace the chosen ``nn.Conv2d`` layers of ``module`` by :class:`CoordConv2d` layers.

    The module is changed in place and returned (if ``module`` is itself the converted conv, the
    new layer is returned). Each replacement keeps the original's in/out channels, kernel,
    stride, padding, padding mode, dilation, bias, device, dtype, memory format, ``requires_grad``
    and train/eval mode, and its weights and bias on the content channels: with zero coordinate
    weights the converted module computes exactly what the original did. Every reference to a
    converted layer is replaced (a layer shared by two parents stays shared). Forward hooks
    registered on an original layer are not carried over.

    :param module: any network
    :param layers: which conv layers, by position in ``module.modules()`` order (see
        :func:`conv_layers`): ``"first"``, ``"all"``, ``"none"``, an index, indices, or a string
        ``"0,2"`` (:func:`coordrl.variant.parse_coord_layers`). A chosen layer that already is a
        ``CoordConv2d`` is left as it is (so converting twice is the same as converting once).
        ``nn.Conv1d`` / ``nn.Conv3d`` / transposed convs are not ``nn.Conv2d`` layers: never
        counted, never converted.
    :param with_r: also give the new layers the radius channel
    :param coord_init: ``"default"`` or ``"zero"`` (see the module docstring)
    :return: ``module`` (or the replacement, when ``module`` is a converted conv)
    :raises ValueError: bad ``layers`` / ``coord_init``; layers requested from a module without
        conv layers; a chosen conv that cannot be converted (``groups != 1``, an uninitialised
        lazy conv, a subclass with its own forward) -- the message names the layer
    """
    _check_coord_init(coord_init)
    convs = conv_layers(module)
    if not convs:
        if isinstance(layers, str) and layers.strip().lower() == "none":
            return module
        if not isinstance(layers, str) and isinstance(layers, Iterable) and not list(layers):
            return module
        raise ValueError(
            f"to_coordconv: {type(module).__name__} has no nn.Conv2d layer to convert "
            f"(layers={layers!r})"
        )
    chosen = parse_coord_layers(layers, len(convs))
    targets = [(name, conv) for i, (name, conv) in enumerate(convs) if i in chosen]
    targets = [(name, conv) for name, conv in targets if not isinstance(conv, CoordConv2d)]
    errors = [msg for name, conv in targets if (msg := _conversion_error(name, conv))]
    if errors:  # check every chosen layer before changing anything
        raise ValueError("to_coordconv: " + "; ".join(errors))
    replacements = {id(conv): _coordconv_like(conv, with_r, coord_init) for _, conv in targets}
    if id(module) in replacements:
        return replacements[id(module)]
    for parent in list(module.modules()):
        for child_name, child in list(parent._modules.items()):
            if child is not None and id(child) in replacements:
                parent._modules[child_name] = replacements[id(child)]
    return module
