"""coordrl: CoordConv for deep RL -- layers, SB3 extractors, training, sweeps, statistics."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = ["AddCoords", "CoordConv2d", "CoordNatureCNN", "__version__"]

if TYPE_CHECKING:
    from coordrl.extractors import CoordNatureCNN
    from coordrl.layers import AddCoords, CoordConv2d

# Lazy exports: `import coordrl.runs` (or a CLI's --help) must not pay for importing torch/SB3.
_LAZY = {
    "AddCoords": "coordrl.layers",
    "CoordConv2d": "coordrl.layers",
    "CoordNatureCNN": "coordrl.extractors",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'coordrl' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
