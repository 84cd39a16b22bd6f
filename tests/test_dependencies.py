"""Imports that have broken before: keep them failing loudly in CI rather than at report time."""

import importlib

import pytest


@pytest.mark.parametrize(
    "module",
    ["rliable.library", "rliable.metrics", "rliable.plot_utils", "arch", "ale_py", "tensorboard"],
)
def test_import(module: str) -> None:
    # rliable -> arch 7.x raises a TypeError at import under pandas 3; pyproject pins pandas<3.
    importlib.import_module(module)


def test_ale_roms_ship_with_ale_py() -> None:
    import ale_py.roms

    assert "pong" in ale_py.roms.get_all_rom_ids()
