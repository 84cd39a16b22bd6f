"""Reading and writing coordrl's files safely: atomic writes, JSON and YAML that name the file
when they cannot be read. Pure Python (no torch); every module that writes a file uses these.

Atomic: the bytes go to a temporary file in the same directory, are flushed to disk, and the
file is renamed over the target (``os.replace``), so a reader (or a crash) sees either the old
file or the whole new one, never half of one. Files get the mode a plain ``open()`` would give
them (``0o666`` less the umask: ``0644`` under the usual umask), whatever ``mkstemp`` chose.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import yaml

__all__ = [
    "FileFormatError",
    "atomic_write",
    "atomic_write_json",
    "atomic_write_text",
    "read_json",
    "read_yaml",
]


class FileFormatError(ValueError):
    """A file exists but cannot be read as what it should be; the message names the file."""


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path: str | os.PathLike, write: Callable[[IO[bytes]], None]) -> None:
    """Write ``path`` atomically: ``write(f)`` fills a binary temporary file that then replaces
    ``path``. The parent directory is created if needed.

    :param path: the file to (re)write
    :param write: called with the open temporary file (e.g. ``model.save``)
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    atomic_write(path, lambda f: f.write(text.encode()))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write ``obj`` as indented, key-sorted JSON to ``path`` atomically."""
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def _open_text(path: str | os.PathLike) -> IO[str]:
    """``path`` opened for reading UTF-8 text.

    :raises FileNotFoundError: no such file
    :raises FileFormatError: any other reason it cannot be opened (permissions, a directory)
    """
    try:
        return open(path, encoding="utf-8")
    except FileNotFoundError:
        raise
    except OSError as e:
        raise FileFormatError(f"{path}: cannot be read ({e.strerror or e})") from e


def read_json(path: str | os.PathLike) -> Any:
    """Read a JSON file.

    :raises FileFormatError: not valid JSON, or it cannot be read (names the file)
    :raises FileNotFoundError: no such file
    """
    try:
        with _open_text(path) as f:
            return json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise FileFormatError(f"{path}: not valid JSON ({e})") from e
    except OSError as e:  # e.g. an I/O error while reading
        if isinstance(e, FileNotFoundError):
            raise
        raise FileFormatError(f"{path}: cannot be read ({e.strerror or e})") from e


def read_yaml(path: str | os.PathLike, what: str = "a mapping") -> dict[str, Any]:
    """Read a YAML file that must hold a mapping (``yaml.safe_load``: data only, no objects).
    An empty file is an empty mapping.

    :param path: the file
    :param what: what the mapping is, for the error message (``"a mapping of sweep options"``)
    :raises FileFormatError: not valid YAML, not a mapping, or it cannot be read (names the file)
    :raises FileNotFoundError: no such file
    """
    try:
        with _open_text(path) as f:
            data = yaml.safe_load(f)
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise FileFormatError(f"{path}: not valid YAML ({first})") from e
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise FileFormatError(f"{path}: expected {what}, got {type(data).__name__}")
    return data
