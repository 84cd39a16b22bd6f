"""Fixtures shared by several test files."""

from __future__ import annotations

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
