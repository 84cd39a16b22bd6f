"""Shared test helpers: model files crafted to run code when SB3 would load them."""

from __future__ import annotations

import base64
import io
import json
import pickle
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest


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
