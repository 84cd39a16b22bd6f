"""Experimental variants: which conv layers get coordinate channels, and their names.

A variant is named once, here, and the name is used everywhere (run directories, sweeps,
reports): ``conv``, ``coordconv`` (first layer), ``coordconv-all``, ``coordconv-L0-2``, each
with an optional ``-r`` suffix for the radius channel and an optional ``-zero`` suffix (after
``-r``) for zero-initialised coordinate weights (``coordconv-zero``, ``coordconv-all-r-zero``).
Pure Python: importing this module does not import torch.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["COORD_INITS", "CoordLayersSpec", "Variant", "parse_coord_layers"]

CoordLayersSpec = str | int | Iterable[int]

#: How coordinate weights start (see :mod:`coordrl.conversion`): ``"default"`` (like the other
#: input channels of a fresh conv layer) or ``"zero"`` (the network starts as its plain-conv self).
COORD_INITS: tuple[str, ...] = ("default", "zero")


def parse_coord_layers(coord_layers: CoordLayersSpec, n_layers: int = 3) -> tuple[int, ...]:
    """Normalise a ``coord_layers`` specification to a sorted tuple of conv-layer indices.

    :param coord_layers: ``"none"``, ``"first"`` (= ``(0,)``), ``"all"``, a comma-separated string
        of indices (``"0,2"``), a single int, or an iterable of ints
    :param n_layers: number of conv layers the indices refer to
    :return: sorted, de-duplicated tuple of indices in ``[0, n_layers)``
    """
    help_msg = (
        f"use 'none', 'first', 'all', a list of conv-layer indices in 0..{n_layers - 1}, "
        "or a comma-separated string such as '0,2'"
    )
    if isinstance(coord_layers, str):
        spec = coord_layers.strip().lower()
        if spec == "none":
            return ()
        if spec == "first":
            return (0,)
        if spec == "all":
            return tuple(range(n_layers))
        try:
            indices = [int(part) for part in spec.split(",")]
        except ValueError:
            raise ValueError(f"invalid coord_layers {coord_layers!r}: {help_msg}") from None
    elif isinstance(coord_layers, bool):
        raise ValueError(f"invalid coord_layers {coord_layers!r}: {help_msg}")
    elif isinstance(coord_layers, int):
        indices = [coord_layers]
    else:
        try:
            indices = [int(i) for i in coord_layers]
        except (TypeError, ValueError):
            raise ValueError(f"invalid coord_layers {coord_layers!r}: {help_msg}") from None
    bad = [i for i in indices if not 0 <= i < n_layers]
    if bad:
        raise ValueError(f"coord_layers index out of range {bad} in {coord_layers!r}: {help_msg}")
    return tuple(sorted(set(indices)))


@dataclass(frozen=True)
class Variant:
    """Which conv layers of the network get coordinate channels, and how their weights start.

    :param coord_layers: ``"none"``, ``"first"``, ``"all"`` or comma-separated layer indices
        (``"0,2"``) of the network's conv layers (three in the Nature CNN, one in MinAtar's).
    :param with_r: also add the radius channel.
    :param coord_init: ``"default"`` or ``"zero"`` (name suffix ``-zero``): initialisation of the
        coordinate weights, see :mod:`coordrl.conversion`.
    """

    coord_layers: str = "none"
    with_r: bool = False
    coord_init: str = "default"

    def __post_init__(self) -> None:
        if self.coord_init not in COORD_INITS:
            raise ValueError(
                f"unknown coord_init {self.coord_init!r}: use one of "
                + ", ".join(repr(c) for c in COORD_INITS)
            )

    @property
    def coordconv(self) -> bool:
        return self.coord_layers != "none"

    @property
    def name(self) -> str:
        if not self.coordconv:
            return "conv"
        name = "coordconv"
        if self.coord_layers != "first":
            name += (
                "-all" if self.coord_layers == "all" else "-L" + self.coord_layers.replace(",", "-")
            )
        return name + ("-r" if self.with_r else "") + ("-zero" if self.coord_init == "zero" else "")

    @classmethod
    def from_name(cls, name: str) -> Variant:
        """Inverse of :attr:`name`: ``conv``, ``coordconv``, ``coordconv-all``, ``coordconv-r``,
        ``coordconv-all-r``, ``coordconv-L0-2`` (layers 0 and 2), ``coordconv-L1-r``, each
        CoordConv name optionally ending in ``-zero`` (``coordconv-zero``,
        ``coordconv-all-r-zero``) ..."""
        m = re.fullmatch(r"coordconv(?:-(all|L\d+(?:-\d+)*))?(-r)?(-zero)?", name)
        if name == "conv":
            return cls()
        if m is None:
            raise ValueError(
                f"unknown variant {name!r}: use 'conv', 'coordconv', 'coordconv-all', "
                "'coordconv-r', 'coordconv-all-r' or 'coordconv-L<i>[-<j>...]' "
                "(e.g. coordconv-L0-2), optionally followed by '-zero' (zero-initialised "
                "coordinate weights, e.g. coordconv-r-zero)"
            )
        layers, r, zero = m.group(1), m.group(2), m.group(3)
        if layers is None:
            coord_layers = "first"
        elif layers == "all":
            coord_layers = "all"
        else:
            coord_layers = ",".join(layers[1:].split("-"))
        return cls(
            coord_layers=coord_layers,
            with_r=r is not None,
            coord_init="zero" if zero else "default",
        )

    def canonical(self) -> Variant:
        """The same variant with its layers written one way only (``"0"`` -> ``"first"``,
        ``"0,1,2"`` -> ``"all"``, ``"2,0"`` -> ``"0,2"``), so that equal variants have equal
        :attr:`name` and so equal run-directory names; without coordinate layers ``with_r`` and
        ``coord_init`` mean nothing and are reset. Raises ``ValueError`` for layers the Nature
        CNN does not have."""
        layers = parse_coord_layers(self.coord_layers)
        if not layers:
            coord_layers = "none"
        elif layers == (0,):
            coord_layers = "first"
        elif layers == (0, 1, 2):
            coord_layers = "all"
        else:
            coord_layers = ",".join(str(i) for i in layers)
        if coord_layers == "none":
            return Variant()
        return Variant(coord_layers=coord_layers, with_r=self.with_r, coord_init=self.coord_init)
