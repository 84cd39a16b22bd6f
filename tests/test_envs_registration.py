"""Importing coordrl registers nothing with gymnasium; coordrl.envs.register_envs() does, once."""

from __future__ import annotations

import json
import subprocess
import sys

import gymnasium as gym

from coordrl.agents.config import FAMILY_CONFIGS
from coordrl.agents.factory import EXTRACTORS
from coordrl.envs import ENV_FAMILIES, register_envs
from coordrl.envs.minatar import ENV_IDS
from coordrl.envs.pixel import ENV_ID

IMPORT_EVERYTHING = """
import importlib, json, pkgutil, sys, warnings
import gymnasium as gym
import ale_py  # ale-py registers its own ids when imported: not coordrl's doing
before = set(gym.registry)
import coordrl
names = ["coordrl.agents", "coordrl.envs", "coordrl.configs"]
names += [m.name for m in pkgutil.walk_packages(coordrl.__path__, "coordrl.")]
for pkg in ("coordrl.envs", "coordrl.agents"):
    path = importlib.import_module(pkg).__path__
    names += [f"{pkg}.{m.name}" for m in pkgutil.iter_modules(path)]
imported = []
for name in sorted(set(names)):
    if "ray" in name.split(".")[-1]:
        continue  # optional dependency
    importlib.import_module(name)
    imported.append(name)
after = set(gym.registry)
minatar_imported = "minatar" in sys.modules
with warnings.catch_warnings():
    warnings.simplefilter("error")  # a second registration would warn "Overriding environment"
    coordrl.envs.register_envs()
    coordrl.envs.register_envs()
print(json.dumps({
    "imported": imported,
    "added_by_import": sorted(after - before),
    "minatar_imported": minatar_imported,
    "added_by_register": sorted(set(gym.registry) - after),
}))
"""


def test_importing_coordrl_registers_nothing_and_register_envs_is_idempotent() -> None:
    proc = subprocess.run(
        [sys.executable, "-c", IMPORT_EVERYTHING],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert {"coordrl.envs.minatar", "coordrl.envs.pixel", "coordrl.extractors"} <= set(
        out["imported"]
    )
    assert out["added_by_import"] == []
    assert out["minatar_imported"] is False  # MinAtar is imported only when it is used
    assert set(out["added_by_register"]) == {ENV_ID, *ENV_IDS}


def test_register_envs_makes_the_ids_usable_with_gym_make() -> None:
    register_envs()
    register_envs()
    assert gym.make(ENV_ID).observation_space.shape == (1, 44, 44)
    env = gym.make("MinAtar/Breakout-v1")
    assert env.observation_space.shape == (10, 10, 4) and env.action_space.n == 3


def test_every_env_family_has_a_config_and_a_network() -> None:
    assert set(FAMILY_CONFIGS) == set(EXTRACTORS) == set(ENV_FAMILIES)
