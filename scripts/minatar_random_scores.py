"""Random-policy scores of the MinAtar games on coordrl's evaluation env (the reference points
``coordrl.analysis.reference_scores`` normalises MinAtar aggregates with).

    python scripts/minatar_random_scores.py --episodes 1000

Uniform random actions over each game's action set (the v1 ids: the minimal action set), MinAtar's
defaults (sticky actions 0.1, difficulty ramping), full episodes as ``coordrl.evaluate`` plays them
(``make_env(..., training=False)``), 8 envs in parallel, seed 0. Prints mean and standard error.
"""

from __future__ import annotations

import argparse
import math
import platform
import time

import numpy as np

from coordrl.envs import make_env
from coordrl.envs.minatar import ENV_IDS


def random_returns(env_id: str, episodes: int, seed: int, n_envs: int = 8) -> list[float]:
    env, _ = make_env(env_id, n_envs, seed, training=False)
    env.action_space.seed(seed)
    returns: list[float] = []
    env.reset()
    while len(returns) < episodes:
        actions = np.array([env.action_space.sample() for _ in range(n_envs)])
        _, _, dones, infos = env.step(actions)
        for done, info in zip(dones, infos, strict=True):
            if done and "episode" in info:
                returns.append(float(info["episode"]["r"]))
    env.close()
    return returns[:episodes]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--episodes", type=int, default=1000, help="episodes per game (default 1000)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    print(f"# {time.strftime('%Y-%m-%d')}, {platform.processor() or platform.machine()}")
    print("| game | random return | s.e. | episodes |\n|---|---:|---:|---:|")
    for env_id in ENV_IDS:
        r = random_returns(env_id, args.episodes, args.seed)
        se = float(np.std(r, ddof=1)) / math.sqrt(len(r))
        print(f"| {env_id} | {np.mean(r):.3f} | {se:.3f} | {len(r)} |", flush=True)


if __name__ == "__main__":
    main()
