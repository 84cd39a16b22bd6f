"""coordrl: CoordConv for deep RL -- layers, SB3 extractors, training, sweeps, statistics."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = [
    "AddCoords",
    "CoordConv2d",
    "CoordConvExtractor",
    "CoordNatureCNN",
    "MinAtarCNN",
    "__version__",
    "to_coordconv",
]

if TYPE_CHECKING:
    from coordrl.conversion import to_coordconv
    from coordrl.extractors import CoordConvExtractor, CoordNatureCNN, MinAtarCNN
    from coordrl.layers import AddCoords, CoordConv2d

# Lazy exports: `import coordrl.runs` (or a CLI's --help) must not pay for importing torch/SB3.
_LAZY = {
    "AddCoords": "coordrl.layers",
    "CoordConv2d": "coordrl.layers",
    "CoordConvExtractor": "coordrl.extractors",
    "CoordNatureCNN": "coordrl.extractors",
    "MinAtarCNN": "coordrl.extractors",
    "to_coordconv": "coordrl.conversion",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'coordrl' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
