"""Benchmark the PointAtDot pixel environment: env steps per second.

Measures (random actions, best of ``--repeats``):

* the raw environment (``PointAtDotEnv`` directly, no wrappers),
* ``gymnasium.make`` (with gymnasium's default wrappers),
* SB3 ``DummyVecEnv`` with ``--n-envs`` copies (as built by ``make_vec_env``).

Usage::

    python scripts/bench_pixel_env.py [--steps 100000] [--n-envs 8] [--repeats 3]
"""

from __future__ import annotations

import argparse
import sys
import time

import gymnasium as gym
import numpy as np
from stable_baselines3.common.env_util import make_vec_env

from coordrl.envs import register_envs
from coordrl.envs.pixel import ENV_ID, PointAtDotEnv


def bench_single(env: gym.Env, steps: int, seed: int = 0) -> float:
    """Steps per second of one environment under random actions.

    :param env: Environment to step.
    :param steps: Number of steps to time.
    :param seed: Seed of the reset and of the action sampler.
    """
    env.reset(seed=seed)
    actions = np.random.default_rng(seed).integers(env.action_space.n, size=steps)
    start = time.perf_counter()
    for a in actions:
        if env.step(int(a))[2]:
            env.reset()
    return steps / (time.perf_counter() - start)


def bench_vec(n_envs: int, steps: int, seed: int = 0) -> float:
    """Total env steps per second of an SB3 ``DummyVecEnv`` of ``n_envs`` PointAtDot copies.

    :param n_envs: Number of environments.
    :param steps: Total env steps to time (``steps // n_envs`` vector steps).
    :param seed: Seed of the environments and of the action sampler.
    """
    venv = make_vec_env(ENV_ID, n_envs=n_envs, seed=seed)
    venv.reset()
    n_calls = max(steps // n_envs, 1)
    actions = np.random.default_rng(seed).integers(venv.action_space.n, size=(n_calls, n_envs))
    start = time.perf_counter()
    for a in actions:
        venv.step(a)
    rate = n_calls * n_envs / (time.perf_counter() - start)
    venv.close()
    return rate


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print one line per configuration."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=100_000, help="env steps per measurement")
    parser.add_argument("--n-envs", type=int, default=8, help="environments in the DummyVecEnv")
    parser.add_argument("--repeats", type=int, default=3, help="repeats; the best is reported")
    args = parser.parse_args(argv)
    register_envs()  # gym.make(ENV_ID); importing coordrl registers nothing
    if args.steps < 1 or args.n_envs < 1 or args.repeats < 1:
        sys.stderr.write("error: --steps, --n-envs and --repeats must be >= 1\n")
        return 2
    rows = [
        ("raw PointAtDotEnv", lambda: bench_single(PointAtDotEnv(), args.steps)),
        ("gymnasium.make", lambda: bench_single(gym.make(ENV_ID), args.steps)),
        (f"DummyVecEnv x{args.n_envs}", lambda: bench_vec(args.n_envs, args.steps)),
    ]
    for name, fn in rows:
        best = max(fn() for _ in range(args.repeats))
        print(f"{name:<22} {best:>10,.0f} env steps/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
