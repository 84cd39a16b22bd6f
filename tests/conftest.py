"""Shared test helpers: fixtures for file modes and permissions, and model files crafted to run
code when SB3 would load them."""

from __future__ import annotations

import base64
import io
import json
import os
import pickle
import stat
import zipfile
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


class CreatesFile:
    """Unpickling this object creates the file ``path``: what a malicious model file would do,
    made harmless (``open(path, "w")``)."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def craft_model(src: Path, dst: Path, marker: Path, where: str) -> Path:
    """Copy the SB3 model zip ``src`` to ``dst`` with one entry that creates ``marker`` when it
    is unpickled.

    :param where: ``"data"`` (an extra pickled entry in ``data``), ``"policy_class"`` (SB3's
        pickled policy class replaced: SB3's own ``load`` unpickles it), or a tensor file
        (``"policy.pth"``, ``"pytorch_variables.pth"``: a torch file holding the object)
    """
    import torch

    with zipfile.ZipFile(src) as archive:
        entries = {name: archive.read(name) for name in archive.namelist()}
    if where in ("data", "policy_class"):
        data = json.loads(entries["data"])
        payload = base64.b64encode(pickle.dumps(CreatesFile(marker))).decode()
        key = "coordrl_extra" if where == "data" else "policy_class"
        data[key] = {":type:": "<class 'builtins.object'>", ":serialized:": payload}
        entries["data"] = json.dumps(data).encode()
    else:
        buffer = io.BytesIO()
        torch.save({"weight": CreatesFile(marker)}, buffer)
        entries[where] = buffer.getvalue()
    with zipfile.ZipFile(dst, "w") as archive:
        for name, content in entries.items():
            archive.writestr(name, content)
    return dst


@pytest.fixture
def craft() -> Callable[[Path, Path, Path, str], Path]:
    """:func:`craft_model`."""
    return craft_model
