"""The run directory: the one on-disk contract between ``train``, ``sweep`` and ``compare``.

A run directory holds one training run of one (game, algo, variant, seed)::

    RUN_DIR/
      config.yaml        resolved configuration (written before training starts)
      model.zip          final model (written when training completes)
      checkpoints/       periodic and on-interrupt checkpoints (SB3 ``.zip``)
      tb/                TensorBoard event files
      evaluations.json   periodic evaluations so far (rewritten atomically after each one)
      result.json        final result; its presence means the run is complete
      train.log          stdout/stderr of the run when launched by the sweep runner
      error.json         written by the sweep runner when the run's process failed

Every JSON file is written atomically (temp file + ``os.replace``) so a crash never leaves a
file that looks complete.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

CONFIG_FILE = "config.yaml"
MODEL_FILE = "model.zip"
CHECKPOINT_DIR = "checkpoints"
TB_DIR = "tb"
EVALS_FILE = "evaluations.json"
RESULT_FILE = "result.json"
LOG_FILE = "train.log"
ERROR_FILE = "error.json"

RESULT_SCHEMA_VERSION = 1


class CorruptRunError(ValueError):
    """A file in a run directory exists but cannot be read as what it should be."""


def run_name(game: str, algo: str, variant: str, seed: int) -> str:
    """Directory name of a run, e.g. ``Pong_ppo_coordconv_s0``.

    ``game`` is the canonical Atari name (``Pong``) or a gymnasium env id, whose ``/`` and
    ``:`` are replaced by ``-`` (``coordrl/PointAtDot-v0`` -> ``coordrl-PointAtDot-v0``).
    """
    safe_game = re.sub(r"[^A-Za-z0-9._-]", "-", game)
    return f"{safe_game}_{algo}_{variant}_s{seed}"


@dataclass
class RunResult:
    """What a completed run reports (``result.json``).

    :param game: canonical Atari game name (``Pong``) or the gymnasium env id that was trained.
    :param env_id: the environment id actually built (e.g. ``ALE/Pong-v5`` or ``coordrl/...``).
    :param is_atari: whether ``game`` is an Atari game (enables human-normalised scores).
    :param timesteps: the target number of environment steps.
    :param steps_done: environment steps actually trained.
    :param final_returns: per-episode full-game (unclipped) returns of the final evaluation.
    :param curve_steps: training steps at which periodic evaluations were made.
    :param curve_returns: per evaluation, the per-episode returns.
    """

    game: str
    env_id: str
    is_atari: bool
    algo: str
    variant: str
    seed: int
    timesteps: int
    steps_done: int
    final_returns: list[float]
    final_lengths: list[int] = field(default_factory=list)
    curve_steps: list[int] = field(default_factory=list)
    curve_returns: list[list[float]] = field(default_factory=list)
    wall_time_s: float = 0.0
    fps: float = 0.0
    device: str = "cpu"
    extra: dict[str, Any] = field(default_factory=dict)
    schema_version: int = RESULT_SCHEMA_VERSION


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` so that readers see either the old or the whole new file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def read_json(path: str | os.PathLike) -> Any:
    """Read a JSON file; a file that is not valid JSON raises :class:`CorruptRunError` naming it."""
    try:
        with open(path) as f:
            return json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CorruptRunError(f"{path}: not valid JSON ({e})") from e


def write_result(run_dir: str | os.PathLike, result: RunResult) -> None:
    atomic_write_json(Path(run_dir) / RESULT_FILE, asdict(result))


def read_result(run_dir: str | os.PathLike) -> RunResult:
    """Load ``RUN_DIR/result.json``; raises :class:`CorruptRunError` naming the file if it is
    unreadable or lacks required fields, ``FileNotFoundError`` if the run is not complete."""
    path = Path(run_dir) / RESULT_FILE
    data = read_json(path)
    if not isinstance(data, dict):
        raise CorruptRunError(f"{path}: expected a JSON object")
    try:
        result = RunResult(**data)
    except TypeError as e:
        raise CorruptRunError(f"{path}: does not match the result schema ({e})") from e
    if not isinstance(result.final_returns, list) or not all(
        isinstance(x, (int, float)) for x in result.final_returns
    ):
        raise CorruptRunError(f"{path}: 'final_returns' must be a list of numbers")
    if len(result.curve_steps) != len(result.curve_returns):
        raise CorruptRunError(f"{path}: 'curve_steps' and 'curve_returns' differ in length")
    return result


def checkpoints(run_dir: str | os.PathLike) -> list[Path]:
    """The checkpoint ``.zip`` files in ``RUN_DIR/checkpoints`` (``*_<steps>_steps.zip``, SB3's
    CheckpointCallback naming), oldest (fewest steps) first."""
    found = []
    for p in (Path(run_dir) / CHECKPOINT_DIR).glob("*_steps.zip"):
        m = re.search(r"_(\d+)_steps\.zip$", p.name)
        if m:
            found.append((int(m.group(1)), p))
    return [p for _, p in sorted(found)]


def latest_checkpoint(run_dir: str | os.PathLike) -> Path | None:
    """The newest checkpoint ``.zip`` in ``RUN_DIR/checkpoints`` (by step count in its name)."""
    found = checkpoints(run_dir)
    return found[-1] if found else None


def run_status(run_dir: str | os.PathLike) -> str:
    """``"complete"`` (result.json present), ``"failed"`` (error.json present, no result),
    ``"interrupted"`` (config.yaml present, no result or error) or ``"new"`` (nothing yet)."""
    run_dir = Path(run_dir)
    if (run_dir / RESULT_FILE).exists():
        return "complete"
    if (run_dir / ERROR_FILE).exists():
        return "failed"
    if (run_dir / CONFIG_FILE).exists():
        return "interrupted"
    return "new"
