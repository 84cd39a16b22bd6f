"""AddCoords / CoordConv2d: coordinate values, caching, and equivalence with the naive reference."""

from __future__ import annotations

import copy
import itertools
import pickle

import pytest
import torch as th
from torch import nn

from coordrl.layers import AddCoords, CoordConv2d, coordinate_channels

th.set_num_threads(1)

TOL = {th.float32: dict(rtol=1e-4, atol=1e-5), th.float64: dict(rtol=1e-9, atol=1e-10)}


def _assert_same_as_naive(
    layer: CoordConv2d, x: th.Tensor, tol: dict[str, float], grad_input: bool = True
) -> None:
    """Outputs and gradients (input, weight, bias) of the fast path equal the naive path."""
    x = x.detach().clone().requires_grad_(grad_input)
    fast = layer(x)
    naive = layer.forward_naive(x)
    assert fast.shape == naive.shape
    th.testing.assert_close(fast, naive, **tol)
    # A non-uniform upstream gradient exercises every output position differently.
    upstream = th.randn_like(naive)
    wrt = [layer.weight] + ([layer.bias] if layer.bias is not None else [])
    wrt += [x] if grad_input else []
    g_fast = th.autograd.grad(fast, wrt, upstream)
    g_naive = th.autograd.grad(naive, wrt, upstream)
    for a, b in zip(g_fast, g_naive, strict=True):
        th.testing.assert_close(a, b, **tol)


# ----------------------------------------------------------------------------- coordinate values


def test_coordinate_values_at_known_pixels() -> None:
    c = coordinate_channels(5, 7, with_r=True, dtype=th.float64)
    assert c.shape == (1, 3, 5, 7)
    x, y, r = c[0]
    # x: -1 left column, +1 right column, constant down a column.
    assert th.all(x[:, 0] == -1) and th.all(x[:, -1] == 1) and th.all(x[:, 3] == 0)
    # y: -1 top row, +1 bottom row, constant along a row.
    assert th.all(y[0] == -1) and th.all(y[-1] == 1) and th.all(y[2] == 0)
    corners = {(0, 0): (-1, -1), (0, 6): (1, -1), (4, 0): (-1, 1), (4, 6): (1, 1)}
    for (i, j), (xv, yv) in corners.items():
        assert (x[i, j].item(), y[i, j].item()) == (xv, yv)
        assert r[i, j].item() == pytest.approx(2**0.5)
    assert r[2, 3].item() == 0.0  # centre
    assert x[0, 1].item() == pytest.approx(-2 / 3)
    assert y[1, 0].item() == pytest.approx(-0.5)


@pytest.mark.parametrize(("h", "w"), [(1, 1), (1, 4), (4, 1)])
def test_size_one_dimensions_give_zero_not_nan(h: int, w: int) -> None:
    out = AddCoords(with_r=True)(th.zeros(2, 1, h, w))
    assert out.shape == (2, 4, h, w)
    assert th.isfinite(out).all()
    x, y, r = out[0, 1], out[0, 2], out[0, 3]
    if w == 1:
        assert th.all(x == 0)
    else:
        assert x[0, 0] == -1 and x[0, -1] == 1
    if h == 1:
        assert th.all(y == 0)
    else:
        assert y[0, 0] == -1 and y[-1, 0] == 1
    th.testing.assert_close(r, th.sqrt(x**2 + y**2))


def test_add_coords_appends_after_input_for_every_sample() -> None:
    x = th.randn(3, 2, 4, 6)
    out = AddCoords()(x)
    assert out.shape == (3, 4, 4, 6)
    th.testing.assert_close(out[:, :2], x)
    for b in range(3):
        th.testing.assert_close(out[b, 2:], coordinate_channels(4, 6)[0])


def test_add_coords_rejects_non_4d_input() -> None:
    with pytest.raises(ValueError, match="4-D"):
        AddCoords()(th.zeros(3, 8, 8))


def test_coordinate_channels_rejects_empty_image() -> None:
    with pytest.raises(ValueError, match="height >= 1"):
        coordinate_channels(0, 3)


# ----------------------------------------------------------------------------- caching


def test_cache_is_per_shape_dtype_and_device() -> None:
    add = AddCoords()
    a = add.coords(4, 6, th.float32, th.device("cpu"))
    assert add.coords(4, 6, th.float32, th.device("cpu")) is a  # reused, not rebuilt
    b = add.coords(6, 4, th.float32, th.device("cpu"))
    assert b.shape == (1, 2, 6, 4) and b is not a
    c = add.coords(4, 6, th.float64, th.device("cpu"))
    assert c.dtype == th.float64 and c is not a
    m = add.coords(4, 6, th.float32, th.device("meta"))
    assert m.device.type == "meta"
    # The CPU entries are untouched by the other keys.
    th.testing.assert_close(
        add.coords(4, 6, th.float32, th.device("cpu")), coordinate_channels(4, 6)
    )
    assert add.coords(4, 6, th.float32, th.device("cpu")).dtype == th.float32


def test_forward_does_not_leak_across_shapes_and_dtypes() -> None:
    add = AddCoords(with_r=True)
    for h, w, dtype in [
        (3, 5, th.float32),
        (5, 3, th.float32),
        (3, 5, th.float64),
        (1, 2, th.bfloat16),
    ]:
        out = add(th.zeros(2, 1, h, w, dtype=dtype))
        assert out.dtype == dtype and out.shape == (2, 4, h, w)
        expected = coordinate_channels(h, w, with_r=True, dtype=dtype)[0]
        th.testing.assert_close(out[1, 1:], expected)
    on_meta = add(th.zeros(2, 1, 3, 5, device="meta"))
    assert on_meta.device.type == "meta" and on_meta.shape == (2, 4, 3, 5)


def test_cache_is_bounded_and_not_in_state_dict() -> None:
    layer = CoordConv2d(1, 2, 1)
    for size in range(1, 30):
        layer(th.zeros(1, 1, size, size))
    assert len(layer.add_coords._cache) <= 8
    assert set(layer.state_dict()) == {"weight", "bias"}


def test_coords_built_in_inference_mode_still_train() -> None:
    layer = CoordConv2d(2, 3, 3)
    with th.inference_mode():
        layer(th.zeros(1, 2, 6, 6))
    layer(th.randn(2, 2, 6, 6)).sum().backward()  # reuses the cached coordinates
    assert layer.weight.grad is not None and layer.weight.grad[:, 2:].abs().sum() > 0


def test_deepcopy_and_pickle_drop_the_cache() -> None:
    layer = CoordConv2d(2, 3, 3, with_r=True)
    x = th.randn(2, 2, 5, 5)
    y = layer(x)
    for clone in (copy.deepcopy(layer), pickle.loads(pickle.dumps(layer))):
        assert len(clone.add_coords._cache) == 0
        th.testing.assert_close(clone(x), y)


# ----------------------------------------------------------------------------- equivalence


def _valid(size: int, k: int, p: int, d: int) -> bool:
    return size + 2 * p - d * (k - 1) - 1 >= 0


@pytest.mark.parametrize("dtype", [th.float32, th.float64])
@pytest.mark.parametrize("with_r", [False, True])
def test_fast_path_matches_naive_over_grid(dtype: th.dtype, with_r: bool) -> None:
    th.manual_seed(0)
    shapes = [(7, 10), (6, 6), (1, 5), (5, 1), (1, 1)]
    checked = 0
    for (h, w), k, s, p, d in itertools.product(shapes, [1, 3, 5], [1, 2, 3], [0, 1, 2], [1, 2]):
        if not (_valid(h, k, p, d) and _valid(w, k, p, d)):
            continue
        layer = CoordConv2d(3, 4, k, stride=s, padding=p, dilation=d, with_r=with_r, dtype=dtype)
        _assert_same_as_naive(layer, th.randn(2, 3, h, w, dtype=dtype), TOL[dtype])
        checked += 1
    assert checked > 150


@pytest.mark.parametrize("padding_mode", ["zeros", "reflect", "replicate", "circular"])
@pytest.mark.parametrize("padding", [1, 2, (1, 2), "same", "valid"])
def test_padding_modes_and_string_padding_match_naive(padding_mode: str, padding) -> None:
    th.manual_seed(1)
    layer = CoordConv2d(
        2, 3, (3, 5), padding=padding, padding_mode=padding_mode, with_r=True, dtype=th.float64
    )
    _assert_same_as_naive(layer, th.randn(3, 2, 6, 9, dtype=th.float64), TOL[th.float64])


def test_rectangular_kernel_stride_dilation_and_no_bias() -> None:
    th.manual_seed(2)
    layer = CoordConv2d(
        3, 5, (2, 4), stride=(1, 2), padding=(2, 1), dilation=(2, 1), bias=False, dtype=th.float64
    )
    assert layer.bias is None
    _assert_same_as_naive(layer, th.randn(2, 3, 9, 11, dtype=th.float64), TOL[th.float64])


def test_first_layer_gradient_without_input_grad() -> None:
    """The RL case: observations do not require grad."""
    th.manual_seed(3)
    layer = CoordConv2d(4, 8, 8, stride=4)
    _assert_same_as_naive(layer, th.rand(3, 4, 36, 36), TOL[th.float32], grad_input=False)


def test_channels_last_matches_naive() -> None:
    th.manual_seed(4)
    layer = CoordConv2d(4, 8, 3, stride=2, padding=1, dtype=th.float64)
    layer = layer.to(memory_format=th.channels_last)
    x = th.randn(3, 4, 10, 12, dtype=th.float64).contiguous(memory_format=th.channels_last)
    _assert_same_as_naive(layer, x, TOL[th.float64])
    contiguous = layer(x.contiguous())
    th.testing.assert_close(layer(x), contiguous)


@pytest.mark.parametrize("dtype", [th.float16, th.bfloat16])
def test_low_precision_matches_naive(dtype: th.dtype) -> None:
    th.manual_seed(5)
    layer = CoordConv2d(3, 4, 3, padding=1, with_r=True).to(dtype)
    x = th.rand(2, 3, 8, 8, dtype=dtype)
    try:
        fast = layer(x)
    except RuntimeError as err:  # pragma: no cover - depends on the CPU build
        pytest.skip(f"{dtype} convolution not available on this build: {err}")
    assert fast.dtype == dtype
    th.testing.assert_close(fast.float(), layer.forward_naive(x).float(), rtol=0.05, atol=0.05)


def test_weights_interchangeable_with_naive_conv() -> None:
    """The state dict loads into nn.Conv2d(in + 2 (+1)) applied to AddCoords(x), and back."""
    th.manual_seed(6)
    layer = CoordConv2d(3, 5, 3, stride=2, padding=1, with_r=True, dtype=th.float64)
    assert layer.weight.shape == (5, 3 + 3, 3, 3)
    assert layer.in_channels == 3 and layer.num_coord_channels == 3
    conv = nn.Conv2d(6, 5, 3, stride=2, padding=1, dtype=th.float64)
    conv.load_state_dict(layer.state_dict())
    x = th.randn(2, 3, 7, 8, dtype=th.float64)
    th.testing.assert_close(layer(x), conv(AddCoords(with_r=True)(x)))
    back = CoordConv2d(3, 5, 3, stride=2, padding=1, with_r=True, dtype=th.float64)
    back.load_state_dict(conv.state_dict())
    th.testing.assert_close(back(x), layer(x))
    th.testing.assert_close(layer.coord_weight, layer.weight[:, 3:])
    th.testing.assert_close(layer.content_weight, layer.weight[:, :3])


def test_naive_flag_uses_reference_path() -> None:
    th.manual_seed(7)
    layer = CoordConv2d(2, 3, 3, naive=True, dtype=th.float64)
    x = th.randn(2, 2, 5, 5, dtype=th.float64)
    th.testing.assert_close(layer(x), layer.forward_naive(x))
    assert "naive=True" in repr(layer)


def test_is_a_conv2d_for_weight_initialisers() -> None:
    """SB3's orthogonal init (and similar code) selects layers with isinstance(m, nn.Conv2d)."""
    assert isinstance(CoordConv2d(1, 1, 1), nn.Conv2d)


# ----------------------------------------------------------------------------- errors


def test_groups_other_than_one_is_rejected() -> None:
    with pytest.raises(ValueError, match="groups=1"):
        CoordConv2d(4, 4, 3, groups=2)


def test_wrong_input_channels_is_rejected() -> None:
    layer = CoordConv2d(3, 4, 3)
    with pytest.raises(ValueError, match=r"\[batch, 3, height, width\]"):
        layer(th.zeros(1, 5, 8, 8))  # e.g. coordinates concatenated by hand
    with pytest.raises(ValueError, match="height, width"):
        layer(th.zeros(3, 8, 8))


def test_bad_constructor_arguments_are_rejected() -> None:
    with pytest.raises(ValueError, match="in_channels"):
        CoordConv2d(0, 4, 3)
    with pytest.raises(ValueError, match="padding_mode"):
        CoordConv2d(1, 4, 3, padding_mode="mirror")
    with pytest.raises(ValueError):
        CoordConv2d(1, 4, 3, stride=2, padding="same")  # torch: 'same' needs stride 1


@pytest.mark.parametrize("in_channels", [1, 3])
def test_output_memory_format_follows_conv2d_with_channels_last_weights(in_channels: int) -> None:
    # A one-channel input is both contiguous and channels-last; the weight's format must then
    # decide, as it does for nn.Conv2d (otherwise the next channels-last layer converts back).
    th.manual_seed(0)
    layer = CoordConv2d(in_channels, 8, 3, padding=1).to(memory_format=th.channels_last)
    plain = nn.Conv2d(in_channels + 2, 8, 3, padding=1).to(memory_format=th.channels_last)
    x = th.rand(4, in_channels, 10, 12)
    out = layer(x)
    expected_cl = plain(AddCoords()(x)).is_contiguous(memory_format=th.channels_last)
    assert out.is_contiguous(memory_format=th.channels_last) == expected_cl
    th.testing.assert_close(out, layer.forward_naive(x))
