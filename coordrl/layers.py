"""CoordConv layers (Liu et al., 2018, "An intriguing failing of convolutional neural networks
and the CoordConv solution", https://arxiv.org/abs/1807.03247).

:class:`AddCoords` appends coordinate channels to an image batch; :class:`CoordConv2d` is a
drop-in replacement for :class:`torch.nn.Conv2d` that behaves exactly like
``Conv2d(in_channels + 2 (+1), ...)(AddCoords()(x))`` but computes the coordinate channels'
contribution once per forward pass (with batch size 1) and broadcasts it over the batch instead of
concatenating the coordinates to every sample.

Coordinate convention (both layers):

* ``x`` varies along the width: -1 at the left column, +1 at the right column.
* ``y`` varies along the height: -1 at the top row, +1 at the bottom row.
* A dimension of size 1 gets the coordinate 0 (the centre), never NaN/inf.
* ``r = sqrt(x**2 + y**2)`` (optional, ``with_r=True``), *not* normalised: it lies in
  ``[0, sqrt(2)]``. (The paper's reference code shifts and rescales ``r``; we keep the plain
  Euclidean distance to the image centre in the same units as ``x`` and ``y``.)

Channel order of the appended channels is ``[x, y]`` or ``[x, y, r]``, after the input channels.

PyTorch has no CoordConv layer, hence this hand-written module.
"""

from __future__ import annotations

from collections import OrderedDict

import torch as th
from torch import nn
from torch.nn.common_types import _size_2_t

__all__ = ["AddCoords", "CoordConv2d", "coordinate_channels"]

_MAX_CACHE_ENTRIES = 8


def coordinate_channels(
    height: int,
    width: int,
    with_r: bool = False,
    dtype: th.dtype = th.float32,
    device: th.device | str | None = None,
) -> th.Tensor:
    """Build the coordinate channels for a ``height x width`` image.

    :param height: image height (>= 1)
    :param width: image width (>= 1)
    :param with_r: also return the radius channel ``sqrt(x**2 + y**2)``
    :param dtype: dtype of the result (computed in float64, then cast)
    :param device: device of the result
    :return: tensor of shape ``[1, 2 (+1), height, width]`` with channels ``x, y (, r)``
    """
    if height < 1 or width < 1:
        raise ValueError(
            f"coordinate channels need height >= 1 and width >= 1, got {height}x{width}"
        )

    def axis(n: int) -> th.Tensor:
        if n == 1:
            return th.zeros(1, dtype=th.float64, device=device)
        # (2i - (n - 1)) / (n - 1): exactly -1, +1, symmetric, and exactly 0 at an odd centre.
        return (2 * th.arange(n, dtype=th.float64, device=device) - (n - 1)) / (n - 1)

    ys, xs = th.meshgrid(axis(height), axis(width), indexing="ij")
    channels = [xs, ys]
    if with_r:
        channels.append(th.sqrt(xs * xs + ys * ys))
    return th.stack(channels).unsqueeze(0).to(dtype)


def _is_channels_last(t: th.Tensor) -> bool:
    return t.is_contiguous(memory_format=th.channels_last) and not t.is_contiguous()


class AddCoords(nn.Module):
    """Append coordinate channels ``x, y`` (and optionally ``r``) to a ``[B, C, H, W]`` batch.

    The coordinate tensors are cached per ``(H, W, dtype, device)`` on the module (a small
    bounded cache, not a registered buffer: it is neither saved in ``state_dict`` nor moved by
    ``.to()``; a tensor for the new device/dtype is built on first use).

    :param with_r: also append the radius channel ``r = sqrt(x**2 + y**2)``
    """

    def __init__(self, with_r: bool = False) -> None:
        super().__init__()
        self.with_r = with_r
        self._cache: OrderedDict[tuple, th.Tensor] = OrderedDict()

    @property
    def num_channels(self) -> int:
        """Number of channels this module appends (2, or 3 with ``r``)."""
        return 3 if self.with_r else 2

    def coords(
        self,
        height: int,
        width: int,
        dtype: th.dtype,
        device: th.device | str,
        memory_format: th.memory_format = th.contiguous_format,
    ) -> th.Tensor:
        """Cached coordinate channels of shape ``[1, num_channels, height, width]``.

        Do not modify the returned tensor in place: it is shared between calls.

        :param height: image height
        :param width: image width
        :param dtype: dtype of the result
        :param device: device of the result
        :param memory_format: ``torch.contiguous_format`` or ``torch.channels_last``
        """
        key = (int(height), int(width), dtype, th.device(device), memory_format)
        cached = self._cache.get(key)
        if cached is not None:
            self._cache.move_to_end(key)
            return cached
        # Build a normal tensor even under torch.inference_mode(): an inference tensor cached here
        # could not later be saved for backward in a training forward pass.
        with th.inference_mode(False), th.no_grad():
            coords = coordinate_channels(height, width, self.with_r, dtype, device)
            coords = coords.contiguous(memory_format=memory_format)
        self._cache[key] = coords
        while len(self._cache) > _MAX_CACHE_ENTRIES:
            self._cache.popitem(last=False)
        return coords

    def forward(self, x: th.Tensor) -> th.Tensor:
        """:param x: batch ``[B, C, H, W]``
        :return: ``[B, C + num_channels, H, W]``"""
        if x.dim() != 4:
            raise ValueError(
                f"AddCoords expects a 4-D [batch, channels, height, width] tensor, got shape "
                f"{tuple(x.shape)}; add a batch dimension with x.unsqueeze(0) if needed"
            )
        b, _, h, w = x.shape
        coords = self.coords(h, w, x.dtype, x.device).expand(b, -1, -1, -1)
        return th.cat([x, coords], dim=1)

    def extra_repr(self) -> str:
        return f"with_r={self.with_r}"

    def __getstate__(self) -> dict:
        # Pickling / deepcopy: do not carry the cache along (it is rebuilt on first use).
        state = self.__dict__.copy()
        state["_cache"] = OrderedDict()
        return state


class CoordConv2d(nn.Conv2d):
    """Drop-in replacement for :class:`torch.nn.Conv2d` with coordinate channels.

    Mathematically ``CoordConv2d(C, O, k, ...)(x) == Conv2d(C + 2 (+1), O, k, ...)(AddCoords()(x))``
    with the *same* weights: ``weight`` has the concatenation layout
    ``[out_channels, in_channels + 2 (+1), kH, kW]`` (content channels first, then ``x, y (, r)``),
    so a state dict is interchangeable with the naive ``Conv2d`` on concatenated input.

    Fast path (default): the weight is split into its content part and its coordinate part and
    ``out = conv(x, w_content, bias) + conv(coords, w_coord)`` where ``coords`` has batch size 1 and
    its result is broadcast over the batch. Every padding mode is applied to the coordinate map
    exactly as the naive path would apply it to the concatenated channels (e.g. zero padding makes
    border windows see coordinate 0 outside the image), so outputs and gradients match.
    :meth:`forward_naive` keeps the concatenate-then-convolve reference.

    ``self.in_channels`` is the number of *input* (content) channels, as for ``nn.Conv2d``; the
    weight has ``in_channels + num_coord_channels`` input channels.

    :param in_channels: channels of the input image
    :param out_channels: channels produced by the convolution
    :param kernel_size: as for ``nn.Conv2d``
    :param stride: as for ``nn.Conv2d``
    :param padding: as for ``nn.Conv2d`` (int, tuple, ``"valid"`` or ``"same"``)
    :param dilation: as for ``nn.Conv2d``
    :param groups: only ``1`` is supported (coordinate channels would have to be assigned to
        groups, which has no canonical answer)
    :param bias: as for ``nn.Conv2d``
    :param padding_mode: ``"zeros"``, ``"reflect"``, ``"replicate"`` or ``"circular"``
    :param with_r: also use the radius channel ``r = sqrt(x**2 + y**2)``
    :param naive: use the concatenate-then-convolve path in :meth:`forward` (reference / benchmark)
    :param device: as for ``nn.Conv2d``
    :param dtype: as for ``nn.Conv2d``
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: _size_2_t,
        stride: _size_2_t = 1,
        padding: _size_2_t | str = 0,
        dilation: _size_2_t = 1,
        groups: int = 1,
        bias: bool = True,
        padding_mode: str = "zeros",
        with_r: bool = False,
        naive: bool = False,
        device: th.device | str | None = None,
        dtype: th.dtype | None = None,
    ) -> None:
        if groups != 1:
            raise ValueError(
                f"CoordConv2d supports only groups=1, got groups={groups}: there is no canonical "
                "way to share the coordinate channels between groups; use groups=1"
            )
        if in_channels < 1:
            raise ValueError(f"CoordConv2d needs in_channels >= 1, got {in_channels}")
        add_coords = AddCoords(with_r=with_r)
        super().__init__(
            in_channels + add_coords.num_channels,
            out_channels,
            kernel_size,
            stride=stride,
            padding=padding,
            dilation=dilation,
            groups=1,
            bias=bias,
            padding_mode=padding_mode,
            device=device,
            dtype=dtype,
        )
        self.in_channels = in_channels
        self.with_r = with_r
        self.naive = naive
        self.add_coords = add_coords

    @property
    def num_coord_channels(self) -> int:
        """Number of coordinate channels (2, or 3 with ``r``)."""
        return self.add_coords.num_channels

    @property
    def content_weight(self) -> th.Tensor:
        """View of ``weight`` on the input (content) channels: ``[out, in, kH, kW]``."""
        return self.weight[:, : self.in_channels]

    @property
    def coord_weight(self) -> th.Tensor:
        """View of ``weight`` on the coordinate channels: ``[out, 2 (+1), kH, kW]``."""
        return self.weight[:, self.in_channels :]

    def _check_input(self, x: th.Tensor) -> None:
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"CoordConv2d expects input [batch, {self.in_channels}, height, width], got shape "
                f"{tuple(x.shape)} (the {self.num_coord_channels} coordinate channels are added "
                "by the layer itself; do not concatenate them)"
            )

    def forward_naive(self, x: th.Tensor) -> th.Tensor:
        """Reference path: concatenate the coordinate channels to every sample, then convolve.

        :param x: batch ``[B, in_channels, H, W]``
        """
        self._check_input(x)
        return self._conv_forward(self.add_coords(x), self.weight, self.bias)

    def forward(self, x: th.Tensor) -> th.Tensor:
        """:param x: batch ``[B, in_channels, H, W]``
        :return: ``[B, out_channels, H', W']``"""
        if self.naive:
            return self.forward_naive(x)
        self._check_input(x)
        _, _, h, w = x.shape
        # Give both convolutions operands in one memory format: the weight slices are strided
        # views, and mixing formats can send oneDNN down a slow path. The copies are tiny.
        # Same rule as PyTorch's convolution: channels-last if the input or the weight is (an
        # input with one channel, or 1x1 spatially, is both and so decides nothing).
        fmt = (
            th.channels_last
            if _is_channels_last(x) or _is_channels_last(self.weight)
            else th.contiguous_format
        )
        coords = self.add_coords.coords(h, w, x.dtype, x.device, memory_format=fmt)
        out = self._conv_forward(x, self.content_weight.contiguous(memory_format=fmt), self.bias)
        # Same padding mode and geometry as the content part, on a batch of one, broadcast over
        # the batch. In-place add is safe: conv's backward does not need its output.
        coord_out = self._conv_forward(
            coords, self.coord_weight.contiguous(memory_format=fmt), None
        )
        return out.add_(coord_out)

    def extra_repr(self) -> str:
        return (
            super().extra_repr()
            + f", with_r={self.with_r}"
            + (", naive=True" if self.naive else "")
        )
