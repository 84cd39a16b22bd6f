"""The paper's supervised coordinate-classification toy (Liu et al., 2018, section 4), small.

Task: given a coordinate pair (x, y), output the one-hot image with only pixel (x, y) set. As in
the paper's CoordConv model, the pair is tiled over the canvas as 2 input channels and a fully
convolutional network produces one logit per pixel; softmax cross-entropy over the H*W pixels.
"Uniform" split: a random 80% of the pixels are training targets, the other 20% are never seen.

A plain conv net sees the same tiled input at every pixel, so apart from what zero padding tells it
near the borders it cannot know where it is; the same net with a CoordConv first layer can compare
the requested (x, y) with its own position and generalises perfectly.
"""

from __future__ import annotations

import torch as th
import torch.nn.functional as F
from torch import nn

from coordrl.layers import CoordConv2d

CANVAS = 16


def _split(seed: int) -> tuple[th.Tensor, th.Tensor]:
    perm = th.randperm(CANVAS * CANVAS, generator=th.Generator().manual_seed(seed))
    n_train = int(0.8 * CANVAS * CANVAS)
    return perm[:n_train], perm[n_train:]


def _inputs(pixels: th.Tensor) -> th.Tensor:
    """Pixel index -> its (x, y) in [-1, 1], tiled to [N, 2, CANVAS, CANVAS]."""
    row, col = pixels // CANVAS, pixels % CANVAS
    xy = th.stack([col, row], dim=1).float() * (2 / (CANVAS - 1)) - 1
    return xy[:, :, None, None].expand(-1, -1, CANVAS, CANVAS)


def _model(coord: bool, width: int) -> nn.Module:
    first = (CoordConv2d if coord else nn.Conv2d)(2, width, 3, padding=1)
    return nn.Sequential(
        first, nn.ReLU(), nn.Conv2d(width, width, 1), nn.ReLU(), nn.Conv2d(width, 1, 1)
    )


def _train_and_test(coord: bool, width: int, seed: int = 0, steps: int = 60) -> tuple[float, int]:
    th.manual_seed(seed)
    train, test = _split(seed)
    model = _model(coord, width)
    opt = th.optim.Adam(model.parameters(), lr=2e-2)
    x_train = _inputs(train)
    for _ in range(steps):
        loss = F.cross_entropy(model(x_train).flatten(1), train)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with th.no_grad():
        accuracy = (model(_inputs(test)).flatten(1).argmax(1) == test).float().mean().item()
    return accuracy, sum(p.numel() for p in model.parameters())


def test_coordconv_solves_coordinate_classification_where_conv_fails() -> None:
    threads = th.get_num_threads()
    th.set_num_threads(1)
    try:
        coord_acc, coord_params = _train_and_test(coord=True, width=16)
        # The plain net gets a little more width so that it has at least as many parameters.
        conv_acc, conv_params = _train_and_test(coord=False, width=21)
    finally:
        th.set_num_threads(threads)
    assert conv_params >= coord_params
    assert coord_acc >= 0.99, f"CoordConv test accuracy {coord_acc:.3f}"
    assert conv_acc <= 0.2, f"plain conv test accuracy {conv_acc:.3f}"
