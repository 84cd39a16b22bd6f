"""Random-policy throughput of the Atari env backends: native (ale-py C++) vs SB3 reference.

Usage::

    python scripts/bench_envs.py                       # Pong, 8 envs, 2000 vector steps
    python scripts/bench_envs.py --game Breakout --n-envs 16 --steps 1000

Prints one row per backend (the native one runs each game on its own C++ thread): wall-clock
agent steps/s summed over the envs, emulator frames/s (x4 frame skip), agent steps per
CPU-second of this process (C++ worker threads included; less sensitive to other jobs on a shared
machine than wall time) and the speed-ups over the SB3 reference. Env creation and the first
reset are not timed. Numbers on a machine shared with other jobs are provisional: the load
average is printed with them.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time

import numpy as np

from coordrl.envs.atari import FRAME_SKIP, canonical_game, make_atari_vec_env
from coordrl.envs.errors import UnknownEnvError
from coordrl.hardware import available_cores


def measure(game: str, backend: str, n_envs: int, steps: int, seed: int = 0) -> tuple[float, float]:
    """Throughput of a uniform random policy.

    :param game: Atari game (any spelling).
    :param backend: ``"native"`` or ``"sb3"``.
    :param n_envs: number of parallel envs.
    :param steps: vector steps to time (each is ``n_envs`` agent steps).
    :param seed: env and action seed.
    :return: (agent steps per wall-clock second, agent steps per CPU-second of this process).
    """
    env = make_atari_vec_env(game, n_envs, seed=seed, backend=backend)
    try:
        rng = np.random.default_rng(seed)
        actions = rng.integers(0, env.action_space.n, size=(steps, n_envs))
        env.reset()
        for a in actions[: min(50, steps)]:  # warm-up
            env.step(a)
        wall, cpu = time.perf_counter(), time.process_time()
        for a in actions:
            env.step(a)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    finally:
        env.close()
    return steps * n_envs / wall, steps * n_envs / max(cpu, 1e-9)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--game", default="Pong", help="Atari game (default: Pong)")
    parser.add_argument("--n-envs", type=int, default=8, help="parallel envs (default: 8)")
    parser.add_argument("--steps", type=int, default=2000, help="vector steps timed (default 2000)")
    parser.add_argument("--repeats", type=int, default=1, help="best of N runs (default: 1)")
    args = parser.parse_args(argv)
    try:
        game = canonical_game(args.game)
    except UnknownEnvError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.n_envs < 1 or args.steps < 1 or args.repeats < 1:
        print("error: --n-envs, --steps and --repeats must be positive", file=sys.stderr)
        return 2
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"{game}, {args.n_envs} envs, {args.steps} vector steps, random policy; "
        f"{available_cores()} cores, load average {load:.1f} ({platform.processor() or 'cpu'})"
    )
    rows: list[tuple[str, float, float]] = []
    for name, backend in [("sb3 (reference)", "sb3"), ("native", "native")]:
        runs = [measure(game, backend, args.n_envs, args.steps) for _ in range(args.repeats)]
        rows.append((name, max(r[0] for r in runs), max(r[1] for r in runs)))
    ref_wall, ref_cpu = rows[0][1], rows[0][2]
    print(
        f"{'backend':<20}{'steps/s':>9}{'frames/s':>10}{'speed-up':>10}"
        f"{'steps/cpu-s':>13}{'cpu speed-up':>14}"
    )
    for name, wall, cpu in rows:
        print(
            f"{name:<20}{wall:>9.0f}{wall * FRAME_SKIP:>10.0f}{wall / ref_wall:>9.2f}x"
            f"{cpu:>13.0f}{cpu / ref_cpu:>13.2f}x"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
