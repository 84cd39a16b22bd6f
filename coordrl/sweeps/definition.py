"""What a sweep is: games x algorithms x variants x seeds, the steps per run and the options
passed to every run (:class:`SweepDefinition`, one :class:`RunSpec` per run), parsed and checked
from the command line or a sweep YAML file (:func:`load_config`).

Checking a game name or a ``--set`` override needs :mod:`coordrl.envs` / :mod:`coordrl.agents`
(which import torch); they are imported inside the functions that check, so importing this
module stays light.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from coordrl import runs
from coordrl._cli import MAX_SEED, UsageError, parse_count, parse_key_values, parse_steps
from coordrl.files import FileFormatError, read_yaml
from coordrl.hardware import DEVICES
from coordrl.variant import Variant

__all__ = [
    "CHOICES",
    "CONFIG_KEYS",
    "LAUNCH_OPTIONS",
    "TRAIN_OPTIONS",
    "RunSpec",
    "SweepDefinition",
    "SweepError",
    "check_option",
    "load_config",
    "overrides_for",
    "parse_overrides",
    "parse_seeds",
    "parse_timesteps",
]

#: Sweep definition keys that pass through to every ``coordrl.train`` run (manifest key -> flag).
TRAIN_OPTIONS = {
    "env_backend": "--env-backend",
    "n_envs": "--n-envs",
    "eval_episodes": "--eval-episodes",
    "eval_freq": "--eval-freq",
}

#: How a sweep is executed: may change between reruns (not part of the definition), stored in
#: the manifest so that a rerun with only ``--out`` runs as the last launch did.
LAUNCH_OPTIONS = (
    "checkpoint_freq",
    "device",
    "backend",
    "address",
    "workers",
    "threads",
    "cpus_per_run",
    "gpus_per_run",
)

#: YAML keys accepted by ``--config`` (command-line flags with ``-`` written as ``_``).
CONFIG_KEYS = {
    "games",
    "algos",
    "variants",
    "seeds",
    "timesteps",
    "out",
    "set",
    *TRAIN_OPTIONS,
    *LAUNCH_OPTIONS,
}

#: The choices of the options that have them (the sweep CLI's parser uses them too).
CHOICES: dict[str, tuple[str, ...]] = {
    "env_backend": runs.ENV_BACKENDS,
    "backend": ("local", "ray"),
    "device": DEVICES,
}
_COUNTS = {"n_envs": 1, "eval_episodes": 1, "workers": 1, "threads": 1}
_STEP_COUNTS = {"eval_freq": 0, "checkpoint_freq": 0}


class SweepError(ValueError):
    """Bad input to the sweep (reported as one ``error:`` line, exit code 2)."""


def parse_seeds(value: int | str | Sequence[int | str], explicit: bool = False) -> list[int]:
    """Seeds of a sweep.

    A single integer ``N`` means the ``N`` seeds ``0..N-1``. Two or more values are an explicit
    list; each value is a seed or an inclusive range ``A..B`` (``5..9``). An explicit single
    seed is written as a range (``7..7``) or, in YAML, as a one-element list (``[7]``).

    :param value: an int, a string (split on whitespace/commas) or a sequence of ints/strings.
    :param explicit: treat even a single integer as a seed, not a count (YAML lists).
    :return: the seeds in the given order.
    """
    if isinstance(value, bool):
        raise SweepError(f"invalid seeds {value!r}: use a count (5) or a list (0 3 7)")
    if isinstance(value, int):
        tokens: list[str] = [str(value)]
    elif isinstance(value, str):
        tokens = [t for t in re.split(r"[\s,]+", value.strip()) if t]
    else:
        tokens = [str(v) for v in value]
    if not tokens:
        raise SweepError("no seeds given: use a count (--seeds 5 = seeds 0-4) or a list (0 3 7)")
    if len(tokens) == 1 and not explicit and re.fullmatch(r"-?\d+", tokens[0]):
        count = int(tokens[0])
        if count < 1:
            raise SweepError(f"--seeds {count}: the number of seeds must be at least 1")
        return list(range(count))
    seeds: list[int] = []
    for token in tokens:
        m = re.fullmatch(r"(\d+)(?:\.\.(\d+))?", token)
        if m is None:
            raise SweepError(
                f"invalid seed {token!r}: seeds are non-negative integers or ranges A..B (5..9)"
            )
        lo = int(m.group(1))
        hi = int(m.group(2)) if m.group(2) is not None else lo
        if hi < lo:
            raise SweepError(f"invalid seed range {token!r}: the end is smaller than the start")
        seeds.extend(range(lo, hi + 1))
    duplicates = sorted({s for s in seeds if seeds.count(s) > 1})
    if duplicates:
        raise SweepError(f"duplicate seeds {duplicates}: each seed may appear once")
    return seeds


def parse_timesteps(value: int | float | str) -> int:
    """Steps per run (:func:`coordrl._cli.parse_steps`: ``2e6``, ``2_000_000``, ``2M``)."""
    try:
        return parse_steps(value, minimum=1, what="timesteps")
    except ValueError as e:
        raise SweepError(f"invalid --timesteps: {e}; use a positive whole number") from None


def parse_overrides(items: Iterable[str] | dict[str, Any] | None) -> dict[str, str]:
    """``--set`` overrides as an ordered ``{key: value}`` dict of strings.

    A key ``ALGO:key`` (``ppo:n_epochs=4``) applies to that algorithm's runs only; in YAML
    either ``"ppo:n_epochs": 4`` or a nested ``ppo: {n_epochs: 4}``.

    :param items: ``key=value`` strings (command line, parsed by
        :func:`coordrl._cli.parse_key_values`) or a mapping (YAML); non-string YAML values are
        written as JSON, which the train CLI parses back as YAML.
    """
    if items is None:
        return {}
    if isinstance(items, dict):
        overrides: dict[str, str] = {}
        for k, v in items.items():
            if str(k) in runs.ALGOS and isinstance(v, dict):
                overrides.update({f"{k}:{kk}": vv for kk, vv in parse_overrides(v).items()})
            else:
                overrides[str(k)] = (
                    v if isinstance(v, str) else json.dumps(v, separators=(",", ":"))
                )
        return overrides
    try:
        return parse_key_values([items] if isinstance(items, str) else items)
    except UsageError as e:
        raise SweepError(str(e)) from None


def overrides_for(algo: str, overrides: dict[str, str]) -> list[str]:
    """The ``key=value`` items of ``overrides`` that apply to ``algo`` (scope prefix removed)."""
    items = []
    for key, value in overrides.items():
        scope, sep, name = key.rpartition(":")
        if not sep or scope == algo:
            items.append(f"{name}={value}")
    return items


def check_overrides(algos: Sequence[str], overrides: dict[str, str]) -> None:
    """Validate the overrides against each algorithm's config now, not hours into a sweep."""
    for key in overrides:
        scope, sep, _ = key.rpartition(":")
        if sep and scope not in algos:
            raise SweepError(
                f"--set {key}: {scope!r} is not an algorithm of this sweep ({', '.join(algos)})"
            )
    from coordrl.agents.config import ConfigError, apply_overrides, load_config
    from coordrl.agents.config import parse_overrides as parse_train_overrides

    for algo in algos:
        items = overrides_for(algo, overrides)
        if items:
            try:
                apply_overrides(load_config(algo), parse_train_overrides(items))
            except ConfigError as e:
                raise SweepError(f"{algo}: {e} (prefix a key with ALGO: to scope it)") from None


def resolve_game(name: str) -> str:
    """The game label the train CLI uses for ``name`` (and so the run directory names):
    Atari games in any spelling become their canonical name (``pong`` -> ``Pong``), other
    registered gymnasium ids (``coordrl/PointAtDot-v0``) stay as they are."""
    from coordrl.envs import UnknownEnvError, resolve_env

    try:
        return resolve_env(name).game
    except UnknownEnvError as e:
        raise SweepError(str(e)) from None


def canonical_variant(name: str) -> str:
    """Check a variant name (``conv``, ``coordconv-L0-2``, ...) and return its canonical form."""
    try:
        variant = Variant.from_name(name)
    except ValueError as e:
        raise SweepError(str(e)) from None
    try:
        return variant.canonical().name
    except ValueError as e:
        raise SweepError(f"variant {name!r}: {e}") from None


def _unique(kind: str, values: Sequence[str]) -> list[str]:
    seen: list[str] = []
    for v in values:
        if v in seen:
            raise SweepError(f"duplicate {kind} {v!r} (after normalising the names)")
        seen.append(v)
    return seen


def _scalar(value: Any) -> bool:
    return isinstance(value, (str, int)) and not isinstance(value, bool)


def check_option(key: str, value: Any, source: str) -> Any:
    """Check the type (and, where the flag's parser checks it, the range) of a sweep option
    read from a file, the sweep YAML (``--config``) or ``manifest.json``, as the flag's parser
    would; returns it normalised (names split, step counts as ints).

    :param key: a :data:`CONFIG_KEYS` key
    :param value: the value as read
    :param source: the file, for the message
    :raises SweepError: a value of the wrong type or out of range
    """
    where = f"{source}: {key}"
    if key in ("games", "algos", "variants"):
        names = value.split() if isinstance(value, str) else value
        if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
            raise SweepError(f"{where} must be a list of names (or one string), got {value!r}")
        return names
    if key == "seeds":
        ok = _scalar(value) or (isinstance(value, list) and all(_scalar(v) for v in value))
        if not ok:
            raise SweepError(f"{where} must be a count (5) or a list of seeds, got {value!r}")
        return value
    if key == "timesteps":
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise SweepError(f"{where} must be a number of steps (2e6, 2_000_000), got {value!r}")
        return value  # parsed with the flag's messages by SweepDefinition.build
    if key == "set":
        ok = isinstance(value, (str, dict)) or (
            isinstance(value, list) and all(isinstance(v, str) for v in value)
        )
        if not ok:
            raise SweepError(f"{where} must be a mapping of key: value, got {value!r}")
        return value
    try:
        if key in _COUNTS:
            return parse_count(value, _COUNTS[key])
        if key in _STEP_COUNTS:
            return parse_steps(value, _STEP_COUNTS[key])
    except ValueError as e:
        raise SweepError(f"{where}: {e}") from None
    if key in CHOICES:
        if value not in CHOICES[key]:
            raise SweepError(f"{where} must be one of {', '.join(CHOICES[key])}, got {value!r}")
        return value
    if key in ("out", "address"):
        if not isinstance(value, str) or not value:
            raise SweepError(f"{where} must be a path or address string, got {value!r}")
        return value
    if key in ("cpus_per_run", "gpus_per_run"):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
            raise SweepError(f"{where} must be a positive number, got {value!r}")
        return value
    raise SweepError(f"{source}: unknown key {key!r}; known: {', '.join(sorted(CONFIG_KEYS))}")


@dataclass
class SweepDefinition:
    """What the runs of a sweep are; stored in ``manifest.json`` and compared on every rerun.

    :param games: canonical game labels (Atari names or gymnasium ids).
    :param algos: algorithm names (``ppo``, ``a2c``, ``dqn``).
    :param variants: canonical :class:`~coordrl.variant.Variant` names.
    :param seeds: the seeds.
    :param timesteps: environment steps per run.
    :param overrides: ``--set`` overrides passed to every run.
    :param train_options: other result-relevant train CLI options (``n_envs``, ``env_backend``,
        ``eval_episodes``, ``eval_freq``); ``None``/absent means the train CLI's default.
    """

    games: list[str]
    algos: list[str]
    variants: list[str]
    seeds: list[int]
    timesteps: int
    overrides: dict[str, str] = field(default_factory=dict)
    train_options: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def build(
        cls,
        games: Sequence[str] | None,
        algos: Sequence[str] | None,
        variants: Sequence[str] | None,
        seeds: Any,
        timesteps: Any,
        overrides: dict[str, str] | None = None,
        train_options: dict[str, Any] | None = None,
        seeds_explicit: bool = False,
    ) -> SweepDefinition:
        """Validate and normalise raw values (from the command line and/or YAML)."""
        if not games:
            raise SweepError("no games: pass --games (e.g. --games Pong coordrl/PointAtDot-v0)")
        if not algos:
            raise SweepError(f"no algorithms: pass --algos (choices: {', '.join(runs.ALGOS)})")
        if not variants:
            raise SweepError("no variants: pass --variants (e.g. --variants conv coordconv)")
        if seeds is None:
            raise SweepError("no seeds: pass --seeds (5 = seeds 0-4, or a list: 0 3 7)")
        if timesteps is None:
            raise SweepError("no timesteps: pass --timesteps (e.g. --timesteps 2e6)")
        bad_algos = [a for a in algos if a not in runs.ALGOS]
        if bad_algos:
            raise SweepError(
                f"unknown algorithm {bad_algos[0]!r}: choose from {', '.join(runs.ALGOS)}"
            )
        options = {k: v for k, v in (train_options or {}).items() if v is not None}
        unknown = sorted(set(options) - set(TRAIN_OPTIONS))
        if unknown:
            raise SweepError(f"unknown train option(s) {unknown}: known: {sorted(TRAIN_OPTIONS)}")
        for key in ("n_envs", "eval_episodes"):
            if key in options and (not isinstance(options[key], int) or options[key] < 1):
                raise SweepError(f"{key} must be a positive integer, got {options[key]!r}")
        if "eval_freq" in options and (
            not isinstance(options["eval_freq"], int) or options["eval_freq"] < 0
        ):
            raise SweepError(f"eval_freq must be an integer >= 0, got {options['eval_freq']!r}")
        check_overrides(list(algos), dict(overrides or {}))
        return cls(
            games=_unique("game", [resolve_game(str(g)) for g in games]),
            algos=_unique("algorithm", [str(a) for a in algos]),
            variants=_unique("variant", [canonical_variant(str(v)) for v in variants]),
            seeds=parse_seeds(seeds, explicit=seeds_explicit),
            timesteps=parse_timesteps(timesteps),
            overrides=dict(overrides or {}),
            train_options=options,
        )

    @classmethod
    def from_dict(cls, data: Any, source: str) -> SweepDefinition:
        """A definition read back from ``manifest.json`` (written by :meth:`to_dict`), its
        types and values checked without importing torch (games and overrides are checked
        when the sweep is defined: :meth:`build`).

        :param data: the manifest's ``definition``
        :param source: the manifest file, for the message
        :raises SweepError: missing or unknown keys, wrong types or values
        """
        required = {"games", "algos", "variants", "seeds", "timesteps"}
        if not isinstance(data, dict) or not required <= set(data) <= {f.name for f in fields(cls)}:
            raise SweepError(
                f"{source}: 'definition' must be a mapping of {sorted(required)} (and overrides, "
                f"train_options), got {data!r:.200}"
            )
        where = f"{source}: definition"
        names = {k: check_option(k, data[k], where) for k in ("games", "algos", "variants")}
        bad = [a for a in names["algos"] if a not in runs.ALGOS]
        bad += [v for v in names["variants"] if not _is_variant(v)]
        if bad:
            raise SweepError(f"{where}: unknown algorithm or variant {bad[0]!r}")
        return cls(
            **names,
            seeds=_stored_seeds(data["seeds"], where),
            timesteps=_stored_timesteps(data["timesteps"], where),
            overrides=_stored_overrides(data.get("overrides", {}), where),
            train_options=_stored_train_options(data.get("train_options", {}), where),
        )

    def runs(self) -> list[RunSpec]:
        """All runs, game-major then algo, seed, variant (so early results cover all variants
        of a game)."""
        return [
            RunSpec(game, algo, variant, seed)
            for game, algo, seed, variant in itertools.product(
                self.games, self.algos, self.seeds, self.variants
            )
        ]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def differences(self, other: SweepDefinition) -> list[str]:
        """Human-readable ``key: old -> new`` lines for every key that differs."""
        a, b = self.to_dict(), other.to_dict()
        return [f"{k}: {a[k]!r} (manifest) != {b[k]!r} (command)" for k in a if a[k] != b[k]]

    def extended_by(self, other: SweepDefinition) -> SweepDefinition:
        """This (stored) definition with the games, algorithms, variants and seeds of ``other``
        added, for ``coordrl.sweep --extend``: the runs this sweep has keep their names and
        settings, and the new ones run with the same settings. The stored order is kept and new
        values follow in ``other``'s order.

        :param other: the command's definition; it must list everything this one lists and
            agree on everything else (timesteps, overrides, train options)
        :raises SweepError: ``other`` drops a value or changes a setting (names which)
        """
        problems = [
            line for line in self.differences(other) if line.split(":", 1)[0] not in GROWABLE_KEYS
        ]
        a, b = self.to_dict(), other.to_dict()
        for key in GROWABLE_KEYS:
            dropped = [v for v in a[key] if v not in b[key]]
            if dropped:
                problems.append(f"{key}: {dropped!r} of the manifest are not in the command")
        if problems:
            raise SweepError(
                "--extend only adds games, algorithms, variants or seeds; " + "; ".join(problems)
            )
        grown = {key: a[key] + [v for v in b[key] if v not in a[key]] for key in GROWABLE_KEYS}
        return SweepDefinition(
            **grown,
            timesteps=self.timesteps,
            overrides=dict(self.overrides),
            train_options=dict(self.train_options),
        )


#: The definition keys that ``--extend`` may add values to.
GROWABLE_KEYS = ("games", "algos", "variants", "seeds")


def _is_variant(name: str) -> bool:
    try:
        Variant.from_name(name)
    except ValueError:
        return False
    return True


def _stored_seeds(value: Any, where: str) -> list[int]:
    if not isinstance(value, list) or not all(
        isinstance(x, int) and not isinstance(x, bool) and 0 <= x <= MAX_SEED for x in value
    ):
        raise SweepError(f"{where}: seeds must be a list of seeds (integers), got {value!r}")
    return value


def _stored_overrides(value: Any, where: str) -> dict[str, str]:
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise SweepError(f"{where}: overrides must map keys to strings, got {value!r}")
    return value


def _stored_train_options(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict) or not set(value) <= set(TRAIN_OPTIONS):
        raise SweepError(f"{where}: train_options must be a mapping of {sorted(TRAIN_OPTIONS)}")
    return {k: check_option(k, v, where) for k, v in value.items()}


def _stored_timesteps(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise SweepError(f"{where}: timesteps must be an integer, got {value!r}")
    try:
        return parse_steps(value, minimum=1, what="timesteps")
    except ValueError as e:
        raise SweepError(f"{where}: timesteps {e}") from None


@dataclass(frozen=True)
class RunSpec:
    """One run of a sweep."""

    game: str
    algo: str
    variant: str
    seed: int

    @property
    def name(self) -> str:
        return runs.run_name(self.game, self.algo, self.variant, self.seed)


def load_config(path: str) -> dict[str, Any]:
    """Read a sweep YAML file (``--config``); unknown keys and values of the wrong type are an
    error (:func:`check_option`).

    :raises SweepError: the file is missing, unreadable, not YAML or not a mapping of the
        :data:`CONFIG_KEYS` with values of their types (the message names the file)
    """
    try:
        data = read_yaml(path, "a mapping of sweep options")
    except FileNotFoundError:
        raise SweepError(f"config file {path!r} does not exist") from None
    except FileFormatError as e:
        raise SweepError(str(e)) from None
    except OSError as e:
        raise SweepError(f"config file {path!r}: cannot be read ({e.strerror or e})") from None
    unknown = sorted(set(data) - CONFIG_KEYS)
    if unknown:
        known = ", ".join(sorted(CONFIG_KEYS))
        raise SweepError(f"{path}: unknown key(s) {unknown}; known: {known}")
    return {key: check_option(key, value, path) for key, value in data.items()}
