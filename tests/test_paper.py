"""Tests for the Not-so-Clevr coordinate classification reproduction (coordrl/notsoclevr.py,
coordrl/paper.py)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch as th

from coordrl.layers import CoordConv2d
from coordrl.notsoclevr import (
    CoordConvClassifier,
    DeconvClassifier,
    TrainConfig,
    count_parameters,
    make_dataset,
    split_dataset,
    train_classifier,
)
from coordrl.paper import main


@pytest.fixture(scope="module")
def dataset():
    return make_dataset()


def test_dataset_covers_every_position(dataset) -> None:
    assert len(dataset) == 56 * 56
    assert dataset.images.shape == (3136, 64, 64) and dataset.images.dtype == np.uint8
    assert dataset.centers.min() == 4 and dataset.centers.max() == 59
    assert len({tuple(c) for c in dataset.centers}) == 3136
    # Each image is exactly a 9x9 square centred on its centre; one-hot marks the centre.
    for i in (0, 1234, 3135):
        x, y = dataset.centers[i]
        expected = np.zeros((64, 64), np.uint8)
        expected[y - 4 : y + 5, x - 4 : x + 5] = 255
        np.testing.assert_array_equal(dataset.images[i], expected)
        onehot = dataset.onehot()[i]
        assert onehot.sum() == 1 and onehot[y, x] == 1
        assert dataset.labels[i] == y * 64 + x


def test_quadrant_split_holds_out_exactly_one_quadrant(dataset) -> None:
    train, test = split_dataset(dataset, "quadrant")
    assert len(train) == 3136 - 28 * 28 and len(test) == 28 * 28
    in_quadrant = lambda c: (c[:, 0] >= 32) & (c[:, 1] >= 32)  # noqa: E731
    assert in_quadrant(test.centers).all()
    assert not in_quadrant(train.centers).any()
    assert {tuple(c) for c in test.centers} == {
        (x, y) for x in range(32, 60) for y in range(32, 60)
    }


def test_uniform_split_is_a_seeded_80_20_partition(dataset) -> None:
    train, test = split_dataset(dataset, "uniform", seed=0)
    assert len(test) == round(0.2 * 3136) and len(train) + len(test) == 3136
    assert {tuple(c) for c in train.centers}.isdisjoint({tuple(c) for c in test.centers})
    again, _ = split_dataset(dataset, "uniform", seed=0)
    other, _ = split_dataset(dataset, "uniform", seed=1)
    np.testing.assert_array_equal(train.centers, again.centers)
    assert not np.array_equal(train.centers, other.centers)
    with pytest.raises(ValueError, match="split"):
        split_dataset(dataset, "diagonal")


def test_models_output_one_logit_per_pixel() -> None:
    coords = th.tensor([[4, 59], [31, 32]])
    coordconv, deconv = CoordConvClassifier(), DeconvClassifier()
    assert isinstance(coordconv.net[0], CoordConv2d)
    assert coordconv(coords).shape == deconv(coords).shape == (2, 4096)
    assert count_parameters(deconv) > 100 * count_parameters(coordconv)


def _run_cli(args: list[str]) -> int:
    try:
        return main(args)
    except SystemExit as exc:  # argparse errors
        return int(exc.code)


def test_coordconv_generalises_to_the_held_out_quadrant_via_cli(capsys) -> None:
    """The paper's headline result, through the CLI: CoordConv gets the unseen quadrant right.

    One epoch (about 3 s of CPU) is enough; the deconv baseline is covered separately below.
    """
    code = _run_cli(
        ["classification", "--split", "quadrant", "--epochs", "1", "--models", "coordconv"]
        + ["--device", "cpu", "--threads", "1", "--seed", "0"]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert "2352 train / 784 test" in out
    row = next(line for line in out.splitlines() if line.startswith("| coordconv |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[1] == "369" and cells[2] == "1"
    train_acc, test_acc = (float(c.rstrip("%")) for c in cells[4:6])
    assert test_acc >= 99.0, out
    assert train_acc >= 99.0, out


def test_train_classifier_reports_deconv_result(dataset) -> None:
    th.set_num_threads(1)
    train, test = split_dataset(dataset, "uniform")
    tiny_train, tiny_test = train.subset(np.arange(64)), test.subset(np.arange(16))
    result = train_classifier("deconv", tiny_train, tiny_test, TrainConfig(epochs=1, seed=0))
    assert result.model == "deconv" and result.epochs == 1 and len(result.history) == 1
    assert result.params == count_parameters(DeconvClassifier())
    assert 0.0 <= result.train_acc <= 1.0 and 0.0 <= result.test_acc <= 1.0
    with pytest.raises(ValueError, match="model"):
        train_classifier("mlp", tiny_train, tiny_test, TrainConfig(epochs=1))


@pytest.mark.parametrize(
    "args",
    [
        ["classification", "--split", "diagonal"],
        ["classification", "--split", "uniform", "--epochs", "0"],
        ["classification", "--split", "uniform", "--lr", "-1"],
        ["classification", "--split", "uniform", "--models", "resnet"],
        ["classification", "--split", "uniform", "--device", "quantum"],
        ["classification", "--split", "uniform", "--epochs", "many"],
        ["regression"],
        [],
    ],
)
def test_cli_bad_input_exits_2_with_one_error_line(args: list[str], capsys) -> None:
    assert _run_cli(args) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), captured.err
    assert captured.out == ""


def test_cli_module_entry_point_exit_code() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "coordrl.paper", "classification", "--split", "nope"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: ") and len(proc.stderr.strip().splitlines()) == 1
