"""Algorithm configurations: ``configs/<algo>.yaml`` plus ``--set key=value`` overrides.

One file per algorithm and environment family (:data:`FAMILY_CONFIGS`), as rl-baselines3-zoo
picks hyperparameters per env family: ``configs/<algo>.yaml`` (rl-zoo3's Atari settings; also
used for coordrl's pixel envs and other gymnasium ids) and ``configs/<algo>_minatar.yaml``
(MinAtar). The YAML files use rl-baselines3-zoo's conventions so that its hyperparameters can be
copied verbatim:

* ``lin_X`` (for ``learning_rate``, ``clip_range``, ``clip_range_vf``) is a schedule decaying
  linearly from ``X`` to 0 over training, as rl-zoo3's ``linear_schedule`` (value =
  ``progress_remaining * X``).
* ``policy_kwargs`` may be rl-zoo3's string form ``"dict(optimizer_class=RMSpropTFLike,
  optimizer_kwargs=dict(eps=1e-5))"`` or a YAML mapping. rl-zoo3 ``eval()``\\ s that string; here
  it is parsed with :mod:`ast` and only literals, ``dict(...)`` and the class names in
  :data:`KNOWN_NAMES` are accepted, so a config file cannot run code.
* ``policy``, ``n_envs`` and ``n_timesteps`` are not algorithm arguments (see :data:`META_KEYS`).

Every other key must be an argument of the algorithm's ``__init__``; unknown keys are rejected
with the list of valid ones. The raw (unresolved, YAML-serialisable) values are what a run
directory's ``config.yaml`` stores; :func:`resolve_hyperparams` turns them into SB3 arguments.
"""

from __future__ import annotations

import ast
import importlib.resources
import inspect
import math
import re
import types
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_args, get_origin

import torch as th
import yaml
from stable_baselines3 import A2C, DQN, PPO
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.sb2_compat.rmsprop_tf_like import RMSpropTFLike
from stable_baselines3.common.utils import LinearSchedule
from torch import nn

from coordrl.files import FileFormatError, read_yaml

__all__ = [
    "ALGOS",
    "AlgoConfig",
    "ConfigError",
    "CONFIG_DIR",
    "FAMILY_CONFIGS",
    "KNOWN_NAMES",
    "META_KEYS",
    "SCHEDULE_KEYS",
    "apply_overrides",
    "check_kwargs",
    "check_policy_kwargs",
    "linear_schedule",
    "load_config",
    "parse_overrides",
    "parse_policy_kwargs",
    "resolve_hyperparams",
    "valid_keys",
]

#: The algorithms coordrl trains, by CLI name.
ALGOS: dict[str, type[BaseAlgorithm]] = {"ppo": PPO, "a2c": A2C, "dqn": DQN}

#: The shipped hyperparameter files: the package ``coordrl.configs`` (``configs/`` of the checkout).
CONFIG_DIR = Path(str(importlib.resources.files("coordrl.configs")))

#: Config file of each environment family (``EnvSpec.family``), ``{algo}`` filled in.
FAMILY_CONFIGS: dict[str, str] = {
    "atari": "{algo}.yaml",
    "minatar": "{algo}_minatar.yaml",
    "pixel": "{algo}.yaml",  # coordrl's pixel envs start from the Atari settings (+ --set)
    "gym": "{algo}.yaml",
}

#: Keys of a config that are not algorithm ``__init__`` arguments.
META_KEYS: dict[str, str] = {
    "policy": "SB3 policy alias; only CnnPolicy (the features extractor is coordrl's CNN)",
    "n_envs": "number of parallel training environments",
    "n_timesteps": "training budget in environment steps",
}

#: Keys that accept rl-zoo3's ``lin_X`` schedule strings.
SCHEDULE_KEYS: frozenset[str] = frozenset({"learning_rate", "clip_range", "clip_range_vf"})

#: ``__init__`` arguments that are not hyperparameters: set by the CLI / factory.
_RESERVED: dict[str, str] = {
    "policy": "",
    "env": "",
    "_init_setup_model": "",
    "seed": "use --seed",
    "device": "use --device",
    "tensorboard_log": "the run directory's tb/ is used",
    "verbose": "",
    "rollout_buffer_class": "coordrl sets it (uint8 rollout buffer)",
}

#: Names that may appear in a ``policy_kwargs`` string (rl-zoo3 evaluates them as code).
KNOWN_NAMES: dict[str, Any] = {
    "RMSpropTFLike": RMSpropTFLike,
    **{
        f"{prefix}.optim.{name}": getattr(th.optim, name)
        for prefix in ("th", "torch")
        for name in ("Adam", "AdamW", "RMSprop", "SGD")
    },
    **{
        f"{prefix}.{name}": getattr(nn, name)
        for prefix in ("nn", "th.nn", "torch.nn")
        for name in ("ReLU", "Tanh", "ELU", "GELU", "LeakyReLU", "SiLU", "Sigmoid")
    },
}
_LIN_RE = re.compile(r"lin_([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)")
_NUMBER_RE = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")


class ConfigError(ValueError):
    """A config file or override that cannot be used; the message says what to change."""


@dataclass
class AlgoConfig:
    """One algorithm's configuration.

    :param algo: ``"ppo"``, ``"a2c"`` or ``"dqn"``.
    :param n_envs: number of parallel training environments.
    :param n_timesteps: training budget in environment steps.
    :param hyperparams: raw algorithm keyword arguments (``lin_X`` strings and ``policy_kwargs``
        strings unresolved, so the dict is YAML-serialisable); see :func:`resolve_hyperparams`.
    :param policy: SB3 policy alias.
    """

    algo: str
    n_envs: int
    n_timesteps: int
    hyperparams: dict[str, Any] = field(default_factory=dict)
    policy: str = "CnnPolicy"


def valid_keys(algo: str) -> list[str]:
    """Keys a config of ``algo`` may contain: the algorithm's ``__init__`` arguments (minus the
    ones the CLI sets) plus :data:`META_KEYS`, sorted."""
    cls = _algo_class(algo)
    params = inspect.signature(cls.__init__).parameters
    return sorted({k for k in params if k not in _RESERVED and k != "self"} | set(META_KEYS))


def linear_schedule(initial_value: float) -> LinearSchedule:
    """rl-zoo3's ``linear_schedule``: ``progress_remaining * initial_value`` (from
    ``initial_value`` at the start to 0 at the end). SB3's picklable :class:`LinearSchedule`.

    :param initial_value: value at the start of training
    """
    return LinearSchedule(start=float(initial_value), end=0.0, end_fraction=1.0)


def load_config(algo: str, path: str | Path | None = None, family: str = "atari") -> AlgoConfig:
    """Load the shipped config of ``algo`` for an environment family (or ``path``) and validate
    its keys and values.

    :param algo: ``"ppo"``, ``"a2c"`` or ``"dqn"``
    :param path: another YAML file with the same layout (then ``family`` is not used)
    :param family: ``EnvSpec.family`` of the env (:data:`FAMILY_CONFIGS`): ``"atari"``
        (``configs/<algo>.yaml``), ``"minatar"`` (``configs/<algo>_minatar.yaml``), ``"pixel"``
        or ``"gym"`` (the Atari file)
    :raises ConfigError: unknown algorithm or family, unreadable file, unknown key or bad value
    """
    _algo_class(algo)
    if family not in FAMILY_CONFIGS:
        raise ConfigError(
            f"unknown environment family {family!r}; choose one of {', '.join(FAMILY_CONFIGS)}"
        )
    if path is None:
        path = CONFIG_DIR / FAMILY_CONFIGS[family].format(algo=algo)
    path = Path(path)
    try:
        raw = read_yaml(path, "a mapping of key: value")
    except FileNotFoundError:
        raise ConfigError(f"config file {path} not found") from None
    except FileFormatError as e:
        raise ConfigError(f"config file {e}") from None
    return config_from_dict(algo, raw, source=str(path))


def config_from_dict(algo: str, raw: dict[str, Any], source: str = "config") -> AlgoConfig:
    """Build and validate an :class:`AlgoConfig` from a flat ``{key: value}`` mapping.

    :param algo: ``"ppo"``, ``"a2c"`` or ``"dqn"``
    :param raw: meta keys and algorithm arguments, as in ``configs/<algo>.yaml``
    :param source: where ``raw`` came from, for error messages
    """
    raw = {k: _coerce_number(v) for k, v in raw.items()}
    _check_keys(algo, raw, source)
    hyperparams = {k: v for k, v in raw.items() if k not in META_KEYS}
    cfg = AlgoConfig(
        algo=algo,
        n_envs=_positive_int(raw.get("n_envs", 1), "n_envs", source),
        n_timesteps=_positive_int(raw.get("n_timesteps", 1_000_000), "n_timesteps", source),
        hyperparams=hyperparams,
        policy=str(raw.get("policy", "CnnPolicy")),
    )
    if cfg.policy != "CnnPolicy":
        raise ConfigError(
            f"{source}: policy {cfg.policy!r} is not supported; coordrl trains CnnPolicy with "
            "its CoordConv features extractors (set policy: CnnPolicy)"
        )
    resolve_hyperparams(algo, hyperparams, source)  # validate values now, not at build time
    return cfg


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """Parse ``--set key=value`` items; values are parsed as YAML (``64`` -> int,
    ``1e-4`` -> float, ``true`` -> bool, ``lin_1e-4`` -> str, ``[64, 64]`` -> list).

    :param items: strings ``"key=value"`` (split by :func:`coordrl._cli.parse_key_values`, the
        one ``key=value`` parser of train and sweep)
    :raises ConfigError: an item without ``=`` or with an empty key
    """
    from coordrl._cli import UsageError, parse_key_values

    try:
        pairs = parse_key_values(items)
    except UsageError as e:
        raise ConfigError(str(e)) from None
    out: dict[str, Any] = {}
    for key, text in pairs.items():
        try:
            value = yaml.safe_load(text) if text.strip() else None
        except yaml.YAMLError:
            value = text  # e.g. a policy_kwargs string "dict(a=1)": parsed later
        out[key] = _coerce_number(value)
    return out


def apply_overrides(cfg: AlgoConfig, overrides: dict[str, Any]) -> AlgoConfig:
    """A new config with ``overrides`` applied and validated.

    :param cfg: the base configuration
    :param overrides: ``{key: value}`` (see :func:`parse_overrides`)
    :raises ConfigError: unknown key (the message lists the valid keys) or bad value
    """
    raw: dict[str, Any] = {
        "policy": cfg.policy,
        "n_envs": cfg.n_envs,
        "n_timesteps": cfg.n_timesteps,
        **cfg.hyperparams,
    }
    raw.update(overrides)
    return config_from_dict(cfg.algo, raw, source="--set")


def resolve_hyperparams(
    algo: str, hyperparams: dict[str, Any], source: str = "config"
) -> dict[str, Any]:
    """Turn raw hyperparameters into SB3 keyword arguments: ``lin_X`` -> schedule,
    ``policy_kwargs`` string -> dict with classes; checks value types against the defaults of
    the algorithm's ``__init__``.

    :param algo: ``"ppo"``, ``"a2c"`` or ``"dqn"``
    :param hyperparams: raw algorithm arguments (no meta keys)
    :param source: where they came from, for error messages
    :raises ConfigError: a value of the wrong type
    """
    params = inspect.signature(_algo_class(algo).__init__).parameters
    out: dict[str, Any] = {}
    for key, value in hyperparams.items():
        if key == "policy_kwargs":
            out[key] = parse_policy_kwargs(value, source)
            check_policy_kwargs(algo, out[key], source)
        elif key in SCHEDULE_KEYS and isinstance(value, str):
            m = _LIN_RE.fullmatch(value.strip())
            if m is None:
                raise ConfigError(
                    f"{source}: {key}={value!r} is neither a number nor a linear schedule "
                    "'lin_<start>' (e.g. lin_2.5e-4)"
                )
            out[key] = linear_schedule(float(m.group(1)))
        else:
            out[key] = _check_type(key, value, params[key].default, source)
    return out


def parse_policy_kwargs(value: Any, source: str = "config") -> dict[str, Any]:
    """``policy_kwargs`` as a dict: rl-zoo3's string form ``"dict(k=v, ...)"`` is parsed safely
    (literals, ``dict(...)``, lists/tuples/dicts and the names in :data:`KNOWN_NAMES` only); a
    mapping is taken as is, with string values that name a known class resolved.

    :param value: ``None``, a mapping or a string
    :param source: where it came from, for error messages
    :raises ConfigError: anything else, or an unknown name
    """
    if value is None:
        return {}
    if isinstance(value, dict):
        return {k: _resolve_names(v) for k, v in value.items()}
    if not isinstance(value, str):
        raise ConfigError(f"{source}: policy_kwargs must be a mapping or a 'dict(...)' string")
    try:
        tree = ast.parse(value.strip(), mode="eval")
        result = _eval_node(tree.body)
    except (SyntaxError, ValueError) as e:
        raise ConfigError(f"{source}: cannot parse policy_kwargs {value!r}: {e}") from None
    if not isinstance(result, dict):
        raise ConfigError(f"{source}: policy_kwargs {value!r} must be a dict(...)")
    return result


#: ``policy_kwargs`` keys the policy accepts but coordrl decides (why, for the message).
_RESERVED_POLICY_KWARGS: dict[str, str] = {
    "features_extractor_class": "coordrl always uses its CoordConv extractor; choose the variant "
    "with --coordconv / --coord-layers / --with-r",
}
#: Keys of a ``net_arch`` mapping (separate actor and critic networks of PPO/A2C).
_NET_ARCH_KEYS = ("pi", "vf")
#: Constructor arguments that a ``*_kwargs`` mapping can never hold (passed positionally).
_POSITIONAL = {"self", "observation_space", "action_space", "lr_schedule", "params"}


def check_policy_kwargs(algo: str, kwargs: dict[str, Any], source: str = "config") -> None:
    """Check parsed ``policy_kwargs`` against what ``algo``'s ``CnnPolicy`` accepts, before any
    policy is built: every key is an argument of its ``__init__`` (not one coordrl sets),
    ``net_arch`` a list of positive integers (PPO/A2C: or a mapping of ``pi`` / ``vf`` lists),
    every other value of the type its annotation names (a class for ``activation_fn`` and
    ``optimizer_class``, ``true``/``false`` for flags, a mapping for ``*_kwargs``), and the keys of
    ``optimizer_kwargs`` arguments of the optimizer. ``features_extractor_kwargs`` depends on
    the env family: :func:`coordrl.agents.factory.check_extractor_kwargs` checks it.

    :param algo: ``"ppo"``, ``"a2c"`` or ``"dqn"``
    :param kwargs: ``policy_kwargs`` as :func:`parse_policy_kwargs` returns them
    :param source: where they came from, for the message
    :raises ConfigError: the first problem, naming the key and what to write instead
    """
    policy = _algo_class(algo).policy_aliases["CnnPolicy"]
    for key in kwargs:
        if key in _RESERVED_POLICY_KWARGS:
            raise ConfigError(
                f"{source}: policy_kwargs.{key} cannot be set: {_RESERVED_POLICY_KWARGS[key]}"
            )
    where = f"{source}: policy_kwargs"
    params = check_kwargs(
        policy, kwargs, where, f"{algo.upper()}'s CnnPolicy", reserved=_RESERVED_POLICY_KWARGS
    )
    if "net_arch" in kwargs:
        mapping_ok = any(get_origin(t) is dict for t in get_args(params["net_arch"].annotation))
        _check_net_arch(kwargs["net_arch"], mapping_ok, f"{source}: policy_kwargs.net_arch")
    optimizer = kwargs.get("optimizer_class", params["optimizer_class"].default)
    if isinstance(kwargs.get("optimizer_kwargs"), dict):
        where = f"{where}.optimizer_kwargs"
        if "lr" in kwargs["optimizer_kwargs"]:
            raise ConfigError(f"{where}.lr cannot be set: SB3 sets it; use learning_rate")
        check_kwargs(optimizer, kwargs["optimizer_kwargs"], where, optimizer.__name__, ["lr"])


def check_kwargs(
    cls: type, kwargs: dict[str, Any], where: str, what: str, reserved: Iterable[str] = ()
) -> dict[str, inspect.Parameter]:
    """Check keyword arguments for ``cls(...)`` without calling it: each key is an argument of
    its ``__init__`` and each value has the type the argument's annotation names (when it is a
    simple one: a class, ``bool``, ``int``, ``float``, a mapping, or a union of these).

    :param cls: the class (a policy, an optimizer, a features extractor)
    :param kwargs: the arguments
    :param where: what the arguments are, for the message (``"--set: policy_kwargs"``)
    :param what: the class as the message names it
    :param reserved: arguments that coordrl sets (not listed as valid; the caller rejects them
        first with the reason)
    :return: the parameters of ``cls.__init__``, by name
    :raises ConfigError: an unknown key or a value of the wrong type
    """
    params = dict(inspect.signature(cls.__init__, eval_str=True).parameters)
    valid = sorted(
        name
        for name, p in params.items()
        if name not in _POSITIONAL
        and name not in set(reserved)
        and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    )
    for key, value in kwargs.items():
        if key not in valid:
            raise ConfigError(
                f"{where}: unknown key {key!r} for {what}; valid keys: {', '.join(valid)}"
            )
        if key == "net_arch":
            continue  # its shape: _check_net_arch
        expected = _annotation_error(value, params[key])
        if expected:
            raise ConfigError(f"{where}.{key} must be {expected}, got {value!r}")
    return params


def _annotation_error(value: Any, param: inspect.Parameter) -> str:
    """What ``value`` should be instead (``""`` when it fits ``param``'s annotation or the
    annotation is not a simple one)."""
    annotation = param.annotation
    options = get_args(annotation) if isinstance(annotation, types.UnionType) else (annotation,)
    if value is None and (param.default is None or type(None) in options):
        return ""
    described = []
    for option in options:
        origin = get_origin(option) or option
        if origin is type and get_args(option):
            base = get_args(option)[0]
            if isinstance(value, type) and issubclass(value, base):
                return ""
            described.append(f"a {base.__module__.split('.')[0]} {base.__name__} class")
        elif origin is bool:
            if isinstance(value, bool):
                return ""
            described.append("true or false")
        elif origin in (int, float):
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                if origin is float or isinstance(value, int):
                    return ""
            described.append("an integer" if origin is int else "a number")
        elif origin is dict:
            if isinstance(value, dict):
                return ""
            described.append("a mapping (dict(...))")
        elif option is not type(None):
            return ""  # an annotation this check does not know: SB3 decides
    return " or ".join(dict.fromkeys(described))


def _check_net_arch(value: Any, mapping_ok: bool, where: str) -> None:
    """``net_arch``: a list of positive layer sizes, or (``mapping_ok``) ``pi``/``vf`` lists."""

    def sizes_ok(layers: Any) -> bool:
        return isinstance(layers, (list, tuple)) and all(
            isinstance(n, int) and not isinstance(n, bool) and n > 0 for n in layers
        )

    if sizes_ok(value):
        return
    if mapping_ok and isinstance(value, dict):
        unknown = sorted(set(value) - set(_NET_ARCH_KEYS), key=str)
        if not unknown and all(sizes_ok(v) for v in value.values()):
            return
    shape = "a list of positive layer sizes ([64, 64])"
    if mapping_ok:
        shape += " or dict(pi=[...], vf=[...])"
    raise ConfigError(f"{where} must be {shape}, got {value!r}")


# --------------------------------------------------------------------------------- helpers
def _algo_class(algo: str) -> type[BaseAlgorithm]:
    try:
        return ALGOS[algo]
    except KeyError:
        raise ConfigError(
            f"unknown algorithm {algo!r}; choose one of {', '.join(sorted(ALGOS))}"
        ) from None


def _check_keys(algo: str, raw: dict[str, Any], source: str) -> None:
    valid = set(valid_keys(algo))
    for key in raw:
        if key in valid:
            continue
        if key in _RESERVED and _RESERVED[key]:
            raise ConfigError(f"{source}: {key!r} cannot be set here ({_RESERVED[key]})")
        raise ConfigError(
            f"{source}: unknown hyperparameter {key!r} for {algo.upper()}; valid keys: "
            + ", ".join(sorted(valid))
        )


def _coerce_number(value: Any) -> Any:
    """PyYAML (YAML 1.1) reads ``1e-4`` as a string; read number-like strings as numbers."""
    if isinstance(value, str) and _NUMBER_RE.fullmatch(value.strip()):
        try:
            return int(value)
        except ValueError:
            return float(value)
    return value


def _positive_int(value: Any, key: str, source: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value):
        raise ConfigError(f"{source}: {key} must be a positive integer, got {value!r}")
    if int(value) < 1:
        raise ConfigError(f"{source}: {key} must be a positive integer, got {value!r}")
    return int(value)


def _check_type(key: str, value: Any, default: Any, source: str) -> Any:
    """Check ``value`` against the type of the ``__init__`` default (when it has a simple one);
    returns it, with an integral float (``1e5``) made an int where an int is expected."""
    if value is None or default is inspect.Parameter.empty or default is None:
        return value
    if isinstance(default, bool):
        ok = isinstance(value, bool)
        kind = "true or false"
    elif key == "train_freq" and isinstance(value, (list, tuple)):
        # off-policy (frequency, unit), e.g. [1, "episode"]
        ok = len(value) == 2 and isinstance(value[0], int) and value[1] in ("step", "episode")
        kind = "an integer or [n, 'step' | 'episode']"
        value = tuple(value)
    elif isinstance(default, int):
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        ok = isinstance(value, int) and not isinstance(value, bool)
        kind = "an integer"
    elif isinstance(default, float):
        ok = (
            isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        )
        kind = "a number" + (" or 'lin_<start>'" if key in SCHEDULE_KEYS else "")
    else:
        return value
    if not ok:
        raise ConfigError(f"{source}: {key} must be {kind}, got {value!r}")
    return value


def _resolve_names(value: Any) -> Any:
    if isinstance(value, str) and value in KNOWN_NAMES:
        return KNOWN_NAMES[value]
    if isinstance(value, dict):
        return {k: _resolve_names(v) for k, v in value.items()}
    return value


def _dotted(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = _dotted(node.value)
        return None if base is None else f"{base}.{node.attr}"
    return None


def _eval_node(node: ast.expr) -> Any:
    """Evaluate the safe subset of Python that rl-zoo3's policy_kwargs strings use."""
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        operand = _eval_node(node.operand)
        if isinstance(operand, (int, float)) and not isinstance(operand, bool):
            return -operand if isinstance(node.op, ast.USub) else operand
    if isinstance(node, (ast.List, ast.Tuple)):
        items = [_eval_node(e) for e in node.elts]
        return items if isinstance(node, ast.List) else tuple(items)
    if isinstance(node, ast.Dict) and all(k is not None for k in node.keys):
        return {_eval_node(k): _eval_node(v) for k, v in zip(node.keys, node.values, strict=True)}  # type: ignore[arg-type]
    if isinstance(node, ast.Call) and _dotted(node.func) == "dict" and not node.args:
        if any(kw.arg is None for kw in node.keywords):
            raise ValueError("'**' is not supported")
        return {kw.arg: _eval_node(kw.value) for kw in node.keywords}
    name = _dotted(node)
    if name is not None:
        if name in KNOWN_NAMES:
            return KNOWN_NAMES[name]
        if name in ("True", "False", "None"):
            return {"True": True, "False": False, "None": None}[name]
        raise ValueError(f"unknown name {name!r} (known: {', '.join(sorted(KNOWN_NAMES))})")
    raise ValueError(f"unsupported expression {ast.unparse(node)!r}")
