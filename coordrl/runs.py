"""The run directory: the one on-disk contract between ``train``, ``sweep`` and ``compare``.

A run directory holds one training run of one (game, algo, variant, seed)::

    RUN_DIR/
      config.yaml        resolved configuration (written before training starts)
      model.zip          final model (written when training completes)
      checkpoints/       periodic and on-interrupt checkpoints (SB3 ``.zip``)
      tb/                TensorBoard event files
      evaluations.json   periodic evaluations so far (rewritten atomically after each one)
      result.json        final result; its presence means the run is complete
      progress.json      steps done, target and rate, rewritten every few seconds while training
      train.log          stdout/stderr of the run when launched by the sweep runner
      error.json         written by the sweep runner when the run's process failed

This module is the only code that knows these names and formats: ``train`` writes through
it, ``sweep`` and ``compare`` read through it. Every file is written atomically
(:mod:`coordrl.files`) so a crash never leaves a file that looks complete. Pure Python: no
torch, so the sweep driver and ``compare`` stay light.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
import zipfile
from collections.abc import Callable
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import IO, Any

from coordrl import __version__
from coordrl.files import (
    FileFormatError,
    atomic_write,
    atomic_write_json,
    atomic_write_text,
    read_json,
    read_yaml,
)

__all__ = [
    "ALGOS",
    "ENV_BACKENDS",
    "CorruptRunError",
    "ModelFile",
    "ModelFileError",
    "RunConfig",
    "RunResult",
    "append_log",
    "checkpoint_path",
    "checkpoints",
    "game_key",
    "latest_checkpoint",
    "parse_run_name",
    "read_config",
    "read_error",
    "read_evaluations",
    "read_model_file",
    "read_progress",
    "read_result",
    "run_name",
    "run_status",
    "set_attempt_aside",
    "tb_event_files",
    "write_config",
    "write_error",
    "write_evaluations",
    "write_model",
    "write_progress",
    "write_result",
]

CONFIG_FILE = "config.yaml"
MODEL_FILE = "model.zip"
CHECKPOINT_DIR = "checkpoints"
TB_DIR = "tb"
EVALS_FILE = "evaluations.json"
RESULT_FILE = "result.json"
PROGRESS_FILE = "progress.json"
LOG_FILE = "train.log"
ERROR_FILE = "error.json"

RESULT_SCHEMA_VERSION = 1

#: The algorithms a run may use (``coordrl.agents`` maps them to SB3 classes).
ALGOS = ("ppo", "a2c", "dqn")

#: The env backends a run may use (``coordrl.envs`` builds them; its ``BACKENDS`` is the same).
ENV_BACKENDS = ("native", "sb3")

#: A file of a run directory that exists but cannot be read as what it should be.
CorruptRunError = FileFormatError

_CHECKPOINT_RE = re.compile(r"_(\d+)_steps\.zip$")
_RUN_NAME_RE = re.compile(
    r"^(?P<game>.+)_(?P<algo>[A-Za-z0-9]+)_(?P<variant>conv|coordconv[^_]*)_s(?P<seed>\d+)$"
)


# ------------------------------------------------------------------------------ value types
def _is_int(value: Any) -> bool:
    """An integer read from JSON/YAML (``true`` is not one)."""
    return isinstance(value, int) and not isinstance(value, bool)


def _numbers(value: Any) -> bool:
    """A list of numbers read from JSON (no ``true``/``false``, no strings, no ``null``)."""
    return isinstance(value, list) and all(
        isinstance(x, (int, float)) and not isinstance(x, bool) for x in value
    )


# ------------------------------------------------------------------------------ names
def run_name(game: str, algo: str, variant: str, seed: int) -> str:
    """Directory name of a run, e.g. ``Pong_ppo_coordconv_s0``.

    ``game`` is the canonical Atari name (``Pong``) or a gymnasium env id, whose ``/`` and
    ``:`` are replaced by ``-`` (``coordrl/PointAtDot-v0`` -> ``coordrl-PointAtDot-v0``).
    """
    safe_game = re.sub(r"[^A-Za-z0-9._-]", "-", game)
    return f"{safe_game}_{algo}_{variant}_s{seed}"


def parse_run_name(name: str) -> tuple[str, str, str, int] | None:
    """``"Pong_ppo_coordconv_s0"`` -> ``("Pong", "ppo", "coordconv", 0)``; ``None`` if the name
    does not follow :func:`run_name` (the game is the sanitised directory form)."""
    m = _RUN_NAME_RE.match(name)
    if m is None:
        return None
    return m["game"], m["algo"], m["variant"], int(m["seed"])


def game_key(game: str) -> str:
    """A game's identity whatever its spelling: letters and digits only, lower case, without
    an ``ALE/`` prefix or a ``-vN`` suffix, so ``ms_pacman``, ``MsPacman``, ``ALE/MsPacman-v5``
    and the directory form ``coordrl-PointAtDot-v0`` of ``coordrl/PointAtDot-v0`` compare equal
    to their canonical names."""
    name = re.sub(r"NoFrameskip-v\d+$", "", re.sub(r"^ALE/(.+)-v\d+$", r"\1", game))
    return re.sub(r"[^a-z0-9]", "", name.lower())


# ------------------------------------------------------------------------------ config.yaml
@dataclass
class RunConfig:
    """Everything that defines a run; saved as ``RUN_DIR/config.yaml`` and reloaded by
    ``--resume`` and ``python -m coordrl.evaluate``.

    :param game: canonical Atari name or gymnasium id (``EnvSpec.game``)
    :param env_id: the gymnasium id the env follows (``EnvSpec.env_id``)
    :param is_atari: whether ``game`` is an Atari game
    :param algo: ``ppo``, ``a2c`` or ``dqn``
    :param variant: variant name (``conv``, ``coordconv``, ``coordconv-all-r``...)
    :param coord_layers: CoordConv layers (``none``, ``first``, ``all``, ``0,2``...)
    :param with_r: radius channel
    :param seed: seed of agent and envs
    :param timesteps: training target in environment steps
    :param n_envs: parallel training envs
    :param env_backend: ``native`` or ``sb3``
    :param device: the device asked for (``auto``, ``cpu``, ``cuda``)
    :param eval_episodes: full games per evaluation
    :param eval_freq: evaluate every this many env steps (0: final evaluation only)
    :param eval_deterministic: greedy actions in evaluations (default: sample, as rl-zoo3 does
        for Atari)
    :param checkpoint_freq: checkpoint every this many env steps (0: only on interrupt)
    :param keep_checkpoints: keep the newest this many periodic checkpoints (0: all)
    :param hyperparams: raw algorithm arguments (``lin_X`` / ``policy_kwargs`` strings as written)
    :param coordrl_version: version that created the run
    :param command: the command line that created the run
    """

    game: str
    env_id: str
    is_atari: bool
    algo: str
    variant: str
    coord_layers: str
    with_r: bool
    seed: int
    timesteps: int
    n_envs: int
    env_backend: str
    device: str
    eval_episodes: int
    eval_freq: int
    eval_deterministic: bool
    checkpoint_freq: int
    keep_checkpoints: int
    hyperparams: dict[str, Any] = field(default_factory=dict)
    coordrl_version: str = __version__
    command: str = ""


_CONFIG_TYPES: dict[str, type | tuple[type, ...]] = {
    "game": str,
    "env_id": str,
    "is_atari": bool,
    "algo": str,
    "variant": str,
    "coord_layers": str,
    "with_r": bool,
    "seed": int,
    "timesteps": int,
    "n_envs": int,
    "env_backend": str,
    "device": str,
    "eval_episodes": int,
    "eval_freq": int,
    "eval_deterministic": bool,
    "checkpoint_freq": int,
    "keep_checkpoints": int,
    "hyperparams": dict,
    "coordrl_version": str,
    "command": str,
}


def write_config(run_dir: str | Path, config: RunConfig) -> None:
    """Write ``RUN_DIR/config.yaml`` (creating ``run_dir``)."""
    import yaml

    atomic_write_text(Path(run_dir) / CONFIG_FILE, yaml.safe_dump(asdict(config), sort_keys=False))


def read_config(run_dir: str | Path) -> RunConfig:
    """Read ``RUN_DIR/config.yaml`` (data only: ``yaml.safe_load``) and check its keys and the
    types of its values. What the values mean (algorithm arguments, variant) is checked by the
    caller that knows them (:func:`coordrl.training.check_config`).

    :raises CorruptRunError: not YAML, missing or unknown keys, wrong types (names the file)
    :raises FileNotFoundError: no config.yaml
    """
    path = Path(run_dir) / CONFIG_FILE
    data = read_yaml(path, "a run configuration mapping")
    names = {f.name for f in fields(RunConfig)}
    required = {
        f.name for f in fields(RunConfig) if f.default is MISSING and f.default_factory is MISSING
    }
    missing = sorted(required - set(data))
    unknown = sorted(set(data) - names)
    if missing or unknown:
        what = "; ".join(
            x
            for x in (
                f"missing {missing}" if missing else "",
                f"unknown {unknown}" if unknown else "",
            )
            if x
        )
        raise CorruptRunError(f"{path}: does not describe a run ({what})")
    for key, value in data.items():
        kind = _CONFIG_TYPES[key]
        ok = isinstance(value, kind) and not (kind is int and isinstance(value, bool))
        if not ok:
            raise CorruptRunError(
                f"{path}: {key} must be {getattr(kind, '__name__', kind)}, got {value!r}"
            )
    return RunConfig(**data)


# ------------------------------------------------------------------------------ evaluations
def read_evaluations(run_dir: str | Path) -> list[dict[str, Any]]:
    """The evaluations recorded in ``RUN_DIR/evaluations.json`` (empty if there is none):
    ``[{"step", "returns", "lengths", "final"}, ...]`` in the order they were made."""
    path = Path(run_dir) / EVALS_FILE
    if not path.exists():
        return []
    data = read_json(path)
    if not isinstance(data, dict) or not isinstance(data.get("evaluations"), list):
        raise CorruptRunError(f"{path}: expected {{'evaluations': [...]}}")
    for e in data["evaluations"]:
        if not isinstance(e, dict) or not {"step", "returns", "lengths", "final"} <= set(e):
            raise CorruptRunError(f"{path}: each evaluation needs step, returns, lengths, final")
        if not (
            _is_int(e["step"])
            and _numbers(e["returns"])
            and isinstance(e["lengths"], list)
            and all(_is_int(n) for n in e["lengths"])
            and isinstance(e["final"], bool)
        ):
            raise CorruptRunError(
                f"{path}: an evaluation needs an integer step, lists of numbers for returns and "
                f"lengths and a true/false final, got {e!r:.200}"
            )
    return data["evaluations"]


def write_evaluations(run_dir: str | Path, evaluations: list[dict[str, Any]]) -> None:
    """Rewrite ``RUN_DIR/evaluations.json`` with ``evaluations`` (atomically)."""
    atomic_write_json(Path(run_dir) / EVALS_FILE, {"evaluations": evaluations})


# ------------------------------------------------------------------------------ models
def checkpoint_path(run_dir: str | Path, steps: int) -> Path:
    """``RUN_DIR/checkpoints/model_<steps>_steps.zip`` (SB3's CheckpointCallback naming)."""
    return Path(run_dir) / CHECKPOINT_DIR / f"model_{int(steps)}_steps.zip"


def checkpoints(run_dir: str | Path) -> list[Path]:
    """The checkpoint ``.zip`` files in ``RUN_DIR/checkpoints`` (``*_<steps>_steps.zip``),
    oldest (fewest steps) first."""
    found = []
    for p in (Path(run_dir) / CHECKPOINT_DIR).glob("*_steps.zip"):
        m = _CHECKPOINT_RE.search(p.name)
        if m:
            found.append((int(m.group(1)), p))
    return [p for _, p in sorted(found)]


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    """The newest checkpoint ``.zip`` in ``RUN_DIR/checkpoints`` (by step count in its name)."""
    found = checkpoints(run_dir)
    return found[-1] if found else None


def write_model(path: str | Path, save: Callable[[IO[bytes]], None]) -> None:
    """Write a model file (``model.zip`` or a checkpoint) atomically; ``save`` is e.g. SB3's
    ``model.save`` (it accepts an open binary file)."""
    atomic_write(path, save)


#: Attributes that SB3 (2.x) stores *pickled* (``{":serialized:": base64 cloudpickle}``) in a
#: PPO, A2C or DQN model's ``data``. coordrl never unpickles them: the loader
#: (:func:`coordrl.checkpoint.load_model`) rebuilds every one of them from ``config.yaml`` and
#: the env, exactly as a new run builds them. A file pickling anything else is refused.
SERIALIZED_KEYS = frozenset(
    {
        "policy_class",
        "policy_kwargs",
        "observation_space",
        "action_space",
        "learning_rate",
        "lr_schedule",
        "clip_range",
        "clip_range_vf",
        "exploration_schedule",
        "train_freq",
        "action_noise",
        "rollout_buffer_class",
        "rollout_buffer_kwargs",
        "replay_buffer_class",
        "replay_buffer_kwargs",
        "ep_info_buffer",
        "ep_success_buffer",
        "_last_obs",
        "_last_episode_starts",
        "_last_original_obs",
    }
)
#: Entries of SB3's model zip: ``data`` (JSON), tensor files (``.pth``), two text files.
MODEL_TENSOR_FILES = ("policy.pth", "policy.optimizer.pth", "pytorch_variables.pth")
_MODEL_REQUIRED = frozenset({"data", "policy.pth", "policy.optimizer.pth"})
_MODEL_TEXT = frozenset({"_stable_baselines3_version", "system_info.txt"})


class ModelFileError(FileFormatError):
    """A model file (``model.zip``, a checkpoint) that coordrl will not load: not a zip, damaged,
    or holding something coordrl does not read without unpickling; the message names the file."""


@dataclass(frozen=True)
class ModelFile:
    """What :func:`read_model_file` read from an SB3 model zip, without unpickling anything.

    :param path: the file
    :param data: SB3's ``data`` entry parsed as JSON, less its pickled (``:serialized:``)
        entries, which the loader rebuilds (:data:`SERIALIZED_KEYS`)
    :param tensors: the raw bytes of each ``.pth`` entry (``policy.pth``...), for
        ``torch.load(..., weights_only=True)``
    """

    path: Path
    data: dict[str, Any]
    tensors: dict[str, bytes]


def read_model_file(path: str | Path) -> ModelFile:
    """Read an SB3 model zip (``model.zip``, a checkpoint) as data only: ``data`` with
    :mod:`json`, the ``.pth`` entries as bytes. Nothing is unpickled here, and the file is read
    once (the caller loads the tensors from these bytes, not from the file again).

    Hand-written rather than SB3's ``load_from_zip_file`` because that one unpickles every
    ``:serialized:`` entry not replaced by ``custom_objects``, and a crafted entry then runs code.

    :raises ModelFileError: not a zip (or truncated), empty, a damaged entry, an unexpected or
        missing entry, ``data`` that is not a JSON object, or a pickled entry outside
        :data:`SERIALIZED_KEYS` (names the file)
    :raises FileNotFoundError: no such file
    """
    path = Path(path)
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
            if not names:
                raise ModelFileError(f"{path}: an empty zip, not a model")
            known = _MODEL_REQUIRED | _MODEL_TEXT | set(MODEL_TENSOR_FILES)
            unexpected = sorted(set(names) - known)
            if unexpected or len(set(names)) != len(names):
                raise ModelFileError(
                    f"{path}: unexpected entries {unexpected or 'duplicated'} (not an SB3 "
                    "PPO/A2C/DQN model saved by coordrl)"
                )
            missing = sorted(_MODEL_REQUIRED - set(names))
            if missing:
                raise ModelFileError(f"{path}: no {', '.join(missing)} (not a complete model)")
            raw = archive.read("data")
            tensors = {
                name.removesuffix(".pth"): archive.read(name)
                for name in MODEL_TENSOR_FILES
                if name in names
            }
    except zipfile.BadZipFile as e:  # also a CRC error in an entry: a damaged file
        raise ModelFileError(f"{path}: not a readable zip ({e}; truncated or not a model)") from e
    except (OSError, EOFError, zipfile.LargeZipFile, NotImplementedError) as e:
        if isinstance(e, FileNotFoundError):
            raise
        raise ModelFileError(f"{path}: cannot be read ({type(e).__name__}: {e})") from e
    return ModelFile(path, _model_data(path, raw), tensors)


def _model_data(path: Path, raw: bytes) -> dict[str, Any]:
    """SB3's ``data`` JSON without its pickled entries (refusing unknown ones)."""
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ModelFileError(f"{path}: its data entry is not valid JSON ({e})") from e
    if not isinstance(data, dict):
        raise ModelFileError(f"{path}: its data entry is not a JSON object")
    pickled = {k for k, v in data.items() if isinstance(v, dict) and ":serialized:" in v}
    unknown = sorted(pickled - SERIALIZED_KEYS)
    if unknown:
        raise ModelFileError(
            f"{path}: refused: it holds pickled objects coordrl does not rebuild ({unknown}); "
            "loading them would run code from the file"
        )
    return {k: v for k, v in data.items() if k not in pickled}


# ------------------------------------------------------------------------------ result.json
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


def write_result(run_dir: str | Path, result: RunResult) -> None:
    """Write ``RUN_DIR/result.json`` (atomically): from now on the run is complete."""
    atomic_write_json(Path(run_dir) / RESULT_FILE, asdict(result))


def read_result(run_dir: str | Path) -> RunResult:
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
    for key in ("game", "env_id", "algo", "variant"):
        if not isinstance(getattr(result, key), str):
            raise CorruptRunError(f"{path}: {key!r} must be a string")
    for key in ("seed", "timesteps", "steps_done"):
        if not _is_int(getattr(result, key)):
            raise CorruptRunError(f"{path}: {key!r} must be an integer")
    if not _numbers(result.final_returns):
        raise CorruptRunError(f"{path}: 'final_returns' must be a list of numbers")
    if not isinstance(result.curve_steps, list) or not all(_is_int(s) for s in result.curve_steps):
        raise CorruptRunError(f"{path}: 'curve_steps' must be a list of integers")
    if not isinstance(result.curve_returns, list) or not all(
        _numbers(r) for r in result.curve_returns
    ):
        raise CorruptRunError(f"{path}: 'curve_returns' must be a list of lists of numbers")
    if len(result.curve_steps) != len(result.curve_returns):
        raise CorruptRunError(f"{path}: 'curve_steps' and 'curve_returns' differ in length")
    return result


# ------------------------------------------------------------------------------ progress.json
def write_progress(run_dir: str | Path, steps: int, timesteps: int, fps: float) -> None:
    """Rewrite ``RUN_DIR/progress.json``: ``steps`` done of ``timesteps``, at ``fps`` steps/s
    (the rate of this session), stamped with the time (seconds since the epoch)."""
    atomic_write_json(
        Path(run_dir) / PROGRESS_FILE,
        {"steps": int(steps), "timesteps": int(timesteps), "fps": float(fps), "time": time.time()},
    )


def read_progress(run_dir: str | Path) -> dict[str, Any] | None:
    """``{"steps", "timesteps", "fps", "time"}`` from ``RUN_DIR/progress.json``, or ``None``
    when there is none or it cannot be read (progress is advisory, never an error)."""
    try:
        data = read_json(Path(run_dir) / PROGRESS_FILE)
    except (OSError, CorruptRunError):
        return None
    keys = ("steps", "timesteps", "fps", "time")
    if not isinstance(data, dict) or not all(
        isinstance(data.get(k), (int, float)) and not isinstance(data.get(k), bool) for k in keys
    ):
        return None
    return data


# ------------------------------------------------------------------------------ error.json, log
def write_error(run_dir: str | Path, error: dict[str, Any]) -> None:
    """Write ``RUN_DIR/error.json`` (creating ``run_dir``): the run failed. ``error`` holds at
    least ``returncode`` and ``error`` (one line); the sweep adds ``log``, ``command``..."""
    atomic_write_json(Path(run_dir) / ERROR_FILE, error)


def read_error(run_dir: str | Path) -> dict[str, Any]:
    """``RUN_DIR/error.json`` as a dict.

    :raises CorruptRunError: not a JSON object; ``FileNotFoundError``: no error.json
    """
    path = Path(run_dir) / ERROR_FILE
    data = read_json(path)
    if not isinstance(data, dict):
        raise CorruptRunError(f"{path}: expected a JSON object")
    return data


def tb_event_files(run_dir: str | Path) -> list[str]:
    """The names of the TensorBoard event files in ``RUN_DIR/tb`` (sorted)."""
    return sorted(p.name for p in (Path(run_dir) / TB_DIR).glob("events.out.tfevents.*"))


def set_attempt_aside(run_dir: str | Path, target: str | Path, tb_files: list[str]) -> None:
    """Keep a failed attempt in ``target`` (a new directory) and leave the run directory ready
    to resume: ``tb_files`` (the attempt's TensorBoard event files, which would otherwise be read
    as part of the resumed run) move to ``target/tb/``, ``train.log`` is copied (the run
    directory keeps the whole history), and ``error.json`` moves last, so that an interruption
    part way leaves the run failed, to be set aside again.

    :param run_dir: the failed run's directory
    :param target: where the attempt goes (must not exist)
    :param tb_files: names in ``RUN_DIR/tb`` (those that no longer exist are skipped)
    """
    run_dir, target = Path(run_dir), Path(target)
    target.mkdir(parents=True)
    if (run_dir / LOG_FILE).exists():
        shutil.copy2(run_dir / LOG_FILE, target / LOG_FILE)
    for name in tb_files:
        source = run_dir / TB_DIR / Path(name).name  # a name, never a path out of tb/
        if source.is_file():
            (target / TB_DIR).mkdir(exist_ok=True)
            os.replace(source, target / TB_DIR / source.name)
    os.replace(run_dir / ERROR_FILE, target / ERROR_FILE)


def append_log(run_dir: str | Path, log: str | Path) -> Path:
    """Append the file ``log`` to ``RUN_DIR/train.log`` (synced to disk) and return its path."""
    run_log = Path(run_dir) / LOG_FILE
    with open(log, "rb") as src, open(run_log, "ab") as dst:
        shutil.copyfileobj(src, dst)
        dst.flush()
        os.fsync(dst.fileno())
    return run_log


# ------------------------------------------------------------------------------ status
def run_status(run_dir: str | Path) -> str:
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
