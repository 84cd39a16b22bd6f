"""Not-so-Clevr coordinate classification (Liu et al., 2018, sec. 4 and appendix).

The CoordConv paper's headline experiment: given a Cartesian coordinate ``(x, y)``, output a
one-hot ``64 x 64`` image with the pixel at ``(x, y)`` switched on. A plain stack of transposed
convolutions ("deconv") is poor at this on a uniform train/test split and fails outright when a
whole quadrant of positions is held out; a tiny CoordConv model of 1x1 convolutions solves both
splits perfectly.

This module holds the pieces, with no CLI (that is :mod:`coordrl.paper`):

* :func:`make_dataset` -- every position of a ``square_size x square_size`` square on a
  ``canvas_size x canvas_size`` canvas (3136 examples for 9x9 on 64x64): centre ``(x, y)``, the
  one-hot centre pixel (as a class index, :attr:`NotSoClevr.labels`, or dense, :meth:`onehot`) and
  the rendered image.
* :func:`split_dataset` -- ``"uniform"`` (random 80/20) or ``"quadrant"`` (centres in the
  bottom-right quadrant, ``x >= canvas/2 and y >= canvas/2``, are the test set).
* :class:`CoordConvClassifier` and :class:`DeconvClassifier` -- the two models.
* :func:`train_classifier` -- softmax cross-entropy over the ``H * W`` pixels, Adam, accuracy =
  argmax pixel equals the centre pixel.

Hand-written because no library ships this dataset or these models; they are a few lines each.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch as th
from torch import nn

from coordrl.layers import CoordConv2d

__all__ = [
    "SPLITS",
    "MODELS",
    "NotSoClevr",
    "make_dataset",
    "split_dataset",
    "CoordConvClassifier",
    "DeconvClassifier",
    "build_classifier",
    "TrainConfig",
    "ClassificationResult",
    "train_classifier",
    "accuracy",
    "count_parameters",
]

SPLITS = ("uniform", "quadrant")
MODELS = ("deconv", "coordconv")


@dataclass(frozen=True)
class NotSoClevr:
    """A set of Not-so-Clevr examples (one square per image).

    :param centers: ``(N, 2)`` int64 array of square centres ``(x, y)`` (``x`` = column).
    :param images: ``(N, canvas_size, canvas_size)`` uint8 renderings (square = 255, background 0).
    :param canvas_size: Canvas side in pixels.
    :param square_size: Square side in pixels (odd, so that the centre is a pixel).
    """

    centers: np.ndarray
    images: np.ndarray
    canvas_size: int
    square_size: int

    def __len__(self) -> int:
        return len(self.centers)

    @property
    def labels(self) -> np.ndarray:
        """Index of the one-hot centre pixel in the flattened image: ``y * canvas_size + x``."""
        return self.centers[:, 1] * self.canvas_size + self.centers[:, 0]

    def onehot(self) -> np.ndarray:
        """Dense one-hot targets: ``(N, canvas_size, canvas_size)`` uint8, 1 at each centre."""
        out = np.zeros((len(self), self.canvas_size * self.canvas_size), dtype=np.uint8)
        out[np.arange(len(self)), self.labels] = 1
        return out.reshape(len(self), self.canvas_size, self.canvas_size)

    def subset(self, index: np.ndarray) -> NotSoClevr:
        """The examples selected by an index or boolean mask.

        :param index: Integer indices or a boolean mask of length ``len(self)``.
        """
        return NotSoClevr(
            self.centers[index], self.images[index], self.canvas_size, self.square_size
        )


def make_dataset(canvas_size: int = 64, square_size: int = 9) -> NotSoClevr:
    """Every placement of one square that fits entirely on the canvas.

    :param canvas_size: Canvas side in pixels (paper: 64).
    :param square_size: Odd square side in pixels (paper: 9).
    :return: ``(canvas_size - square_size + 1) ** 2`` examples (3136 for the paper's sizes), in
        row-major order of the centre (``y`` outer, ``x`` inner).
    """
    if square_size < 1 or square_size % 2 == 0:
        raise ValueError(f"square_size must be a positive odd number, got {square_size}")
    if canvas_size < square_size:
        raise ValueError(f"canvas_size={canvas_size} is smaller than square_size={square_size}")
    half = square_size // 2
    valid = np.arange(half, canvas_size - half)
    ys, xs = np.meshgrid(valid, valid, indexing="ij")
    centers = np.stack([xs.ravel(), ys.ravel()], axis=1).astype(np.int64)
    # Separable rendering: a square is the outer product of a row mask and a column mask.
    pix = np.arange(canvas_size)
    on_x = np.abs(pix[None, :] - centers[:, :1]) <= half  # (N, W)
    on_y = np.abs(pix[None, :] - centers[:, 1:]) <= half  # (N, H)
    images = (on_y[:, :, None] & on_x[:, None, :]).astype(np.uint8) * 255
    return NotSoClevr(centers, images, canvas_size, square_size)


def split_dataset(
    dataset: NotSoClevr, split: str, seed: int = 0, test_fraction: float = 0.2
) -> tuple[NotSoClevr, NotSoClevr]:
    """Split into train and test sets as in the paper.

    :param dataset: All examples (from :func:`make_dataset`).
    :param split: ``"uniform"``: a random ``test_fraction`` of the examples is the test set;
        ``"quadrant"``: the examples whose centre lies in the bottom-right quadrant
        (``x >= canvas/2`` and ``y >= canvas/2``) are the test set (deterministic).
    :param seed: Seed of the uniform split's permutation.
    :param test_fraction: Test share of the uniform split.
    :return: ``(train, test)``.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if split == "quadrant":
        half = dataset.canvas_size // 2
        test = (dataset.centers[:, 0] >= half) & (dataset.centers[:, 1] >= half)
        return dataset.subset(~test), dataset.subset(test)
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    perm = np.random.default_rng(seed).permutation(len(dataset))
    n_test = int(round(test_fraction * len(dataset)))
    return dataset.subset(np.sort(perm[n_test:])), dataset.subset(np.sort(perm[:n_test]))


def _normalise_coords(coords: th.Tensor, canvas_size: int) -> th.Tensor:
    """Map pixel coordinates ``0 .. canvas_size-1`` to ``[-1, 1]`` (the AddCoords convention)."""
    return coords.float() * (2.0 / (canvas_size - 1)) - 1.0


class CoordConvClassifier(nn.Module):
    """The paper's CoordConv coordinate classifier.

    ``(x, y)`` (normalised to ``[-1, 1]``) is tiled to a ``2 x H x W`` map; a
    :class:`~coordrl.layers.CoordConv2d` 1x1 layer adds the pixel's own ``(i, j)`` coordinates,
    then ``depth - 1`` more 1x1 convolutions (ReLU in between) produce one logit per pixel.
    Every pixel only has to compare its coordinates with the input's -- a translation-invariant
    rule a 1x1 network learns quickly and that holds for unseen positions too.

    :param canvas_size: Output side in pixels.
    :param width: Channels of the hidden layers.
    :param depth: Number of 1x1 conv layers (>= 2).
    """

    def __init__(self, canvas_size: int = 64, width: int = 16, depth: int = 3) -> None:
        super().__init__()
        if depth < 2 or width < 1:
            raise ValueError(f"need depth >= 2 and width >= 1, got depth={depth}, width={width}")
        self.canvas_size = canvas_size
        layers: list[nn.Module] = [CoordConv2d(2, width, kernel_size=1), nn.ReLU()]
        for _ in range(depth - 2):
            layers += [nn.Conv2d(width, width, kernel_size=1), nn.ReLU()]
        layers.append(nn.Conv2d(width, 1, kernel_size=1))
        self.net = nn.Sequential(*layers)

    def forward(self, coords: th.Tensor) -> th.Tensor:
        """:param coords: ``(B, 2)`` pixel coordinates ``(x, y)``.
        :return: ``(B, H * W)`` logits over the pixels (row-major)."""
        c = _normalise_coords(coords, self.canvas_size)
        n = self.canvas_size
        tiled = c[:, :, None, None].expand(-1, -1, n, n)
        return self.net(tiled).flatten(1)


class DeconvClassifier(nn.Module):
    """The paper's plain convolutional baseline: transposed convolutions from ``(x, y)`` to pixels.

    ``(x, y)`` (normalised to ``[-1, 1]``) is tiled to a ``2 x s x s`` map with
    ``s = canvas_size / 2**len(widths)``; each stride-2 4x4 transposed convolution (ReLU after)
    doubles the resolution, and a final 1x1 convolution produces one logit per pixel.

    :param canvas_size: Output side in pixels (must be ``s * 2**len(widths)``).
    :param widths: Output channels of the transposed convolutions, coarse to fine.
    """

    def __init__(self, canvas_size: int = 64, widths: tuple[int, ...] = (64, 64, 32, 16)) -> None:
        super().__init__()
        scale = 2 ** len(widths)
        if not widths or canvas_size % scale:
            raise ValueError(
                f"canvas_size={canvas_size} must be divisible by 2**len(widths)={scale}; "
                "use fewer or more upsampling layers"
            )
        self.canvas_size = canvas_size
        self.start = canvas_size // scale
        layers: list[nn.Module] = []
        in_ch = 2
        for w in widths:
            layers += [nn.ConvTranspose2d(in_ch, w, kernel_size=4, stride=2, padding=1), nn.ReLU()]
            in_ch = w
        layers.append(nn.Conv2d(in_ch, 1, kernel_size=1))
        self.net = nn.Sequential(*layers)

    def forward(self, coords: th.Tensor) -> th.Tensor:
        """:param coords: ``(B, 2)`` pixel coordinates ``(x, y)``.
        :return: ``(B, H * W)`` logits over the pixels (row-major)."""
        c = _normalise_coords(coords, self.canvas_size)
        tiled = c[:, :, None, None].expand(-1, -1, self.start, self.start)
        return self.net(tiled).flatten(1)


def build_classifier(name: str, canvas_size: int = 64) -> nn.Module:
    """Build one of :data:`MODELS` with the default (paper-like) sizes.

    :param name: ``"deconv"`` or ``"coordconv"``.
    :param canvas_size: Output side in pixels.
    """
    if name == "coordconv":
        return CoordConvClassifier(canvas_size)
    if name == "deconv":
        return DeconvClassifier(canvas_size)
    raise ValueError(f"model must be one of {MODELS}, got {name!r}")


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters.

    :param model: Any module.
    """
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


@dataclass
class TrainConfig:
    """Optimisation settings of :func:`train_classifier`.

    :param epochs: Passes over the training set.
    :param batch_size: Minibatch size.
    :param lr: Initial Adam learning rate (decayed linearly to zero over training).
    :param seed: Seeds the weights' initialisation and the minibatch order.
    :param device: Torch device string.
    """

    epochs: int = 20
    batch_size: int = 32
    lr: float = 1e-3
    seed: int = 0
    device: str = "cpu"


@dataclass
class ClassificationResult:
    """Outcome of training one model.

    :param model: Model name.
    :param params: Trainable parameters.
    :param wall_s: Training wall time in seconds (excluding the final evaluation).
    :param train_acc: Accuracy on the training set after training.
    :param test_acc: Accuracy on the test set after training.
    :param epochs: Epochs trained.
    :param history: Per-epoch ``(train_loss, train_acc_estimate)``.
    """

    model: str
    params: int
    wall_s: float
    train_acc: float
    test_acc: float
    epochs: int
    history: list[tuple[float, float]] = field(default_factory=list)


@th.no_grad()
def accuracy(
    model: nn.Module, data: NotSoClevr, device: str = "cpu", batch_size: int = 256
) -> float:
    """Share of examples whose arg-max pixel is the square's centre.

    :param model: A classifier returning ``(B, H*W)`` logits.
    :param data: Examples to score.
    :param device: Torch device string.
    :param batch_size: Evaluation batch size.
    """
    model.eval()
    coords = th.as_tensor(data.centers, device=device)
    labels = th.as_tensor(data.labels, device=device)
    correct = 0
    for start in range(0, len(data), batch_size):
        logits = model(coords[start : start + batch_size])
        correct += int((logits.argmax(1) == labels[start : start + batch_size]).sum())
    return correct / max(len(data), 1)


def train_classifier(
    name: str, train: NotSoClevr, test: NotSoClevr, config: TrainConfig
) -> ClassificationResult:
    """Train one of :data:`MODELS` with softmax cross-entropy over the pixels and Adam.

    :param name: ``"deconv"`` or ``"coordconv"``.
    :param train: Training examples.
    :param test: Test examples.
    :param config: Optimisation settings.
    """
    if config.epochs < 1 or config.batch_size < 1 or config.lr <= 0:
        raise ValueError(f"epochs, batch_size and lr must be positive, got {config}")
    th.manual_seed(config.seed)
    device = th.device(config.device)
    model = build_classifier(name, train.canvas_size).to(device)
    optimizer = th.optim.Adam(model.parameters(), lr=config.lr)
    # Linear decay to zero over training: the last iterate is then stable, so few epochs suffice.
    total_steps = config.epochs * -(-len(train) // config.batch_size)
    scheduler = th.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0 - step / total_steps)
    loss_fn = nn.CrossEntropyLoss()
    coords = th.as_tensor(train.centers, device=device)
    labels = th.as_tensor(train.labels, device=device)
    gen = th.Generator().manual_seed(config.seed)
    history: list[tuple[float, float]] = []
    start = time.perf_counter()
    for _ in range(config.epochs):
        model.train()
        perm = th.randperm(len(train), generator=gen).to(device)
        total_loss, correct = 0.0, 0
        for i in range(0, len(train), config.batch_size):
            idx = perm[i : i + config.batch_size]
            logits = model(coords[idx])
            loss = loss_fn(logits, labels[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            total_loss += loss.item() * len(idx)
            correct += int((logits.argmax(1) == labels[idx]).sum())
        history.append((total_loss / len(train), correct / len(train)))
    if device.type == "cuda":
        th.cuda.synchronize(device)
    wall = time.perf_counter() - start
    return ClassificationResult(
        model=name,
        params=count_parameters(model),
        wall_s=wall,
        train_acc=accuracy(model, train, config.device),
        test_acc=accuracy(model, test, config.device),
        epochs=config.epochs,
        history=history,
    )
