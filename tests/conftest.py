"""Fixtures shared by several test files."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from pathlib import Path

import pytest


@pytest.fixture
def file_modes_enforced(tmp_path_factory) -> None:
    """Skip the test where this process ignores file modes: root (or any process with
    ``CAP_DAC_OVERRIDE``) opens a mode-000 file, so a "no permission" case cannot fail there.
    Probed rather than read from ``os.geteuid()``: root without that capability is enforced."""
    probe = tmp_path_factory.mktemp("mode-probe") / "probe"
    probe.write_text("")
    probe.chmod(0)
    try:
        probe.open().close()
    except PermissionError:
        return
    finally:
        probe.chmod(0o644)
    pytest.skip("this process reads files whatever their mode (root): no permission case here")


@pytest.fixture
def wrong_modes() -> Callable[[Path], dict[str, str]]:
    """A function: the files (and directories) under a directory whose mode is not the one a
    plain ``open()`` (``mkdir()``) gives, ``0o666`` (``0o777``) less the umask."""
    mask = os.umask(0)
    os.umask(mask)

    def check(root: Path) -> dict[str, str]:
        wrong = {}
        for path in sorted(Path(root).rglob("*")):
            mode = stat.S_IMODE(path.stat().st_mode)
            expected = (0o777 if path.is_dir() else 0o666) & ~mask
            if mode != expected:
                wrong[str(path.relative_to(root))] = f"{mode:o} (expected {expected:o})"
        return wrong

    return check
