"""Random-policy scores on coordrl's evaluation env: the MinAtar reference points that
``coordrl.analysis.reference_scores`` normalises MinAtar aggregates with, and the "random play"
baseline of an Atari game under coordrl's own evaluation protocol.

    python scripts/random_scores.py --episodes 1000                     # the MinAtar games
    python scripts/random_scores.py --games Krull CrazyClimber --episodes 30

Uniform random actions over each game's action set, full episodes as ``coordrl.evaluate`` plays
them (``make_env(..., training=False)``: MinAtar's defaults, sticky actions 0.1, difficulty
ramping; Atari's evaluation protocol of the chosen backend: 1-30 no-ops, full games, unclipped
scores, the 108k-frame cap), 8 envs in parallel, the episodes spread evenly over the envs as SB3's
``evaluate_policy`` does (so that short episodes are not over-counted), seed 0. Prints mean and
standard error.
"""

from __future__ import annotations

import argparse
import math
import platform
import time

import numpy as np

from coordrl.envs import make_env
from coordrl.envs.minatar import ENV_IDS


def random_returns(
    game: str, episodes: int, seed: int, n_envs: int = 8, backend: str = "native"
) -> list[float]:
    """Returns of ``episodes`` full episodes of uniform random play.

    :param game: any game coordrl's ``make_env`` knows (MinAtar id, Atari name)
    :param episodes: how many episodes
    :param seed: env and action-sampling seed
    :param n_envs: envs in parallel (fewer if ``episodes`` is smaller)
    :param backend: Atari vector env backend
    """
    n_envs = max(1, min(n_envs, episodes))
    env, _ = make_env(game, n_envs, seed, backend=backend, training=False)
    env.action_space.seed(seed)
    # as SB3's evaluate_policy: env i plays its share of the episodes and no more
    targets = [episodes // n_envs + (i < episodes % n_envs) for i in range(n_envs)]
    counts = [0] * n_envs
    returns: list[float] = []
    env.reset()
    while counts != targets:
        actions = np.array([env.action_space.sample() for _ in range(n_envs)])
        _, _, dones, infos = env.step(actions)
        for i, (done, info) in enumerate(zip(dones, infos, strict=True)):
            if done and "episode" in info and counts[i] < targets[i]:
                returns.append(float(info["episode"]["r"]))
                counts[i] += 1
    env.close()
    return returns


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--games", nargs="+", default=list(ENV_IDS), help="default: the MinAtar games")
    p.add_argument("--episodes", type=int, default=1000, help="episodes per game (default 1000)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--env-backend", choices=["native", "sb3"], help="Atari backend")
    args = p.parse_args()
    print(f"# {time.strftime('%Y-%m-%d')}, {platform.processor() or platform.machine()}")
    print("| game | random return | s.e. | episodes |\n|---|---:|---:|---:|")
    for game in args.games:
        r = random_returns(game, args.episodes, args.seed, backend=args.env_backend or "native")
        se = float(np.std(r, ddof=1)) / math.sqrt(len(r)) if len(r) > 1 else float("nan")
        print(f"| {game} | {np.mean(r):.3f} | {se:.3f} | {len(r)} |", flush=True)


if __name__ == "__main__":
    main()
