"""PPO throughput on MinAtar: coordrl's training path vs a plain SB3 script, in one run.

Arms (same game, network, hyperparameters -- ``configs/ppo_minatar.yaml`` -- and seed):

(a) ``sb3``: what an SB3 user writes: ``gym.make("MinAtar/<Game>-v1")`` per env, SB3's ``Monitor``
    and ``DummyVecEnv``, stock ``PPO("CnnPolicy")`` with the MinAtar paper's network as a features
    extractor over the bool ``(10, 10, C)`` boards (permuted to channel-first in ``forward``),
    stock rollout buffer, the process's default OpenMP settings;
(b) ``coordrl``: coordrl's training path for ``--env MinAtar/<Game>-v1``: ``envs.make_env``
    (:class:`MinAtarVecEnv`), ``agents.build_model(..., family="minatar")`` (``MinAtarCNN``, the
    variant given by ``--variant``, uint8 rollout tensors, channels-last on the CPU),
    ``OMP_WAIT_POLICY=PASSIVE`` as the train CLI sets it and ``agents.factory.torch_threads``
    (1 thread for MinAtar on the CPU);
(c) ``sb3-passive``: (a) with ``OMP_WAIT_POLICY=PASSIVE``;
(d) ``sb3-1thread``: (a) with ``torch.set_num_threads(1)``; (c) and (d) separate the runtime
    settings from the rest of (b).

Each arm runs in its own subprocess (OpenMP reads its settings once per process), ``--repeats``
times in alternation. Every arm trains ``--steps`` (N1) steps, then on to ``--steps2`` (N2); the
reported rate is the marginal one, ``(N2 - N1) / (T(N2) - T(N1))``, so start-up (imports, model
construction, first-rollout warm-up) cancels out. The time of the marginal segment is split into
env stepping (``VecEnv.step``), the rest of rollout collection (policy forward, buffer) and the
PPO updates (``model.train``). Numbers depend on the machine and its load: quote both.

    python scripts/bench_minatar.py                               # Breakout, 4096 -> 16384
    python scripts/bench_minatar.py --game SpaceInvaders --repeats 3
    python scripts/bench_minatar.py --only coordrl --profile /tmp/coordrl.prof
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import sys
import time
from dataclasses import asdict, dataclass

from _bench import run_arm_subprocess

ARMS = {
    "sb3": "(a) plain SB3: gym.make + DummyVecEnv + PPO",
    "coordrl": "(b) coordrl: MinAtarVecEnv + build_model ({variant})",
    "sb3-passive": "(c) plain SB3 + OMP_WAIT_POLICY=PASSIVE",
    "sb3-1thread": "(d) plain SB3 + torch.set_num_threads(1)",
}


@dataclass
class Timing:
    """Times of the marginal segment (N1 -> N2 steps) of one arm, summed over repeats."""

    steps: int = 0
    wall_s: float = 0.0
    env_s: float = 0.0
    update_s: float = 0.0
    startup_s: float = 0.0  # time to N1 steps, including building the model

    def add(self, other: Timing) -> None:
        for key in asdict(self):
            setattr(self, key, getattr(self, key) + getattr(other, key))


def _sb3_model(game: str, n_envs: int, seed: int, hyperparams: dict):
    """The plain SB3 script: nothing from coordrl but the hyperparameter file."""
    import gymnasium as gym
    import minatar.gym
    import torch as th
    from stable_baselines3 import PPO
    from stable_baselines3.common.monitor import Monitor
    from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
    from stable_baselines3.common.vec_env import DummyVecEnv
    from torch import nn

    from coordrl.agents.config import resolve_hyperparams

    class MinAtarNet(BaseFeaturesExtractor):
        """MinAtar's network on (B, 10, 10, C) boards."""

        def __init__(self, observation_space: gym.Space, features_dim: int = 128) -> None:
            super().__init__(observation_space, features_dim)
            c = observation_space.shape[-1]
            self.conv = nn.Sequential(nn.Conv2d(c, 16, 3), nn.ReLU(), nn.Flatten())
            self.linear = nn.Sequential(nn.Linear(16 * 8 * 8, features_dim), nn.ReLU())

        def forward(self, obs: th.Tensor) -> th.Tensor:
            return self.linear(self.conv(obs.permute(0, 3, 1, 2)))

    minatar.gym.register_envs()
    env_id = f"MinAtar/{game}-v1"
    env = DummyVecEnv([lambda: Monitor(gym.make(env_id)) for _ in range(n_envs)])
    env.seed(seed)
    kwargs = resolve_hyperparams("ppo", hyperparams)
    policy_kwargs = dict(features_extractor_class=MinAtarNet, net_arch=[])
    return PPO("CnnPolicy", env, policy_kwargs=policy_kwargs, seed=seed, verbose=0, **kwargs)


def _coordrl_model(game: str, n_envs: int, seed: int, hyperparams: dict, variant: str):
    """What coordrl.train builds."""
    from coordrl.agents.factory import build_model
    from coordrl.envs import make_env
    from coordrl.variant import Variant

    env, spec = make_env(f"MinAtar/{game}-v1", n_envs, seed, backend="native", training=True)
    return build_model(
        "ppo", env, hyperparams, Variant.from_name(variant), seed=seed, device="cpu",
        family=spec.family,
    )  # fmt: skip


def _timed(obj, name: str, timing: Timing, field: str) -> None:
    """Wrap ``obj.name`` so that its time is added to ``timing.field``."""
    inner = getattr(obj, name)

    def wrapper(*args, **kwargs):
        start = time.perf_counter()
        try:
            return inner(*args, **kwargs)
        finally:
            setattr(timing, field, getattr(timing, field) + time.perf_counter() - start)

    setattr(obj, name, wrapper)


def _run_arm(args: argparse.Namespace, arm: str) -> Timing:
    """Build and train one arm in this process; return the marginal segment's times."""
    import torch as th

    from coordrl.agents.config import load_config
    from coordrl.agents.factory import torch_threads

    threads = args.threads or {
        "coordrl": torch_threads("minatar", "cpu"),  # what the training code applies
        "sb3-1thread": 1,
    }.get(arm)
    if threads:
        th.set_num_threads(threads)
    cfg = load_config("ppo", family="minatar")
    n_envs = args.n_envs or cfg.n_envs
    start = time.perf_counter()
    if arm == "coordrl":
        model = _coordrl_model(args.game, n_envs, args.seed, cfg.hyperparams, args.variant)
    else:
        model = _sb3_model(args.game, n_envs, args.seed, cfg.hyperparams)
    model.learn(args.steps)
    segment = Timing(startup_s=time.perf_counter() - start)
    # Time the marginal segment only.
    _timed(model.env, "step", segment, "env_s")
    _timed(model, "train", segment, "update_s")
    profiler = cProfile.Profile() if args.profile else None
    t0 = time.perf_counter()
    if profiler:
        profiler.enable()
    model.learn(args.steps2 - model.num_timesteps, reset_num_timesteps=False)
    if profiler:
        profiler.disable()
        profiler.dump_stats(args.profile)
    segment.wall_s = time.perf_counter() - t0
    segment.steps = model.num_timesteps - args.steps
    model.env.close()
    return segment


def _run_arm_subprocess(argv: list[str], arm: str) -> Timing:
    """Run ``--only arm`` in a fresh process with the arm's OpenMP setting."""
    return Timing(
        **run_arm_subprocess(__file__, argv, arm, passive=arm in ("coordrl", "sb3-passive"))
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--game", default="Breakout", help="MinAtar game (Breakout, Seaquest...)")
    parser.add_argument("--steps", type=int, default=4096, help="N1: steps before the timing")
    parser.add_argument("--steps2", type=int, default=16384, help="N2: steps at its end")
    parser.add_argument("--n-envs", type=int, default=None, help="default: the config's (8)")
    parser.add_argument(
        "--threads", type=int, default=None, help="torch threads of every arm (default: per arm)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--variant", default="coordconv", help="coordrl arm's variant name")
    parser.add_argument("--arms", nargs="+", choices=tuple(ARMS), default=list(ARMS))
    parser.add_argument("--only", choices=tuple(ARMS), default=None, help=argparse.SUPPRESS)
    parser.add_argument("--repeats", type=int, default=1, help="alternate the arms this often")
    parser.add_argument("--profile", default=None, help="cProfile file of the segment (--only)")
    args = parser.parse_args(argv)
    if not 0 < args.steps < args.steps2:
        parser.error("need 0 < --steps < --steps2")

    if args.only is not None:
        timing = _run_arm(args, args.only)
        print("RESULT " + json.dumps(asdict(timing)), flush=True)
        return 0

    import platform

    print(
        f"PPO on MinAtar/{args.game}-v1, marginal rate {args.steps} -> {args.steps2} steps, "
        f"{args.repeats} repeat(s); {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} CPUs, python {platform.python_version()}"
    )
    totals = {arm: Timing() for arm in args.arms}
    argv = list(sys.argv[1:] if argv is None else argv)
    for _ in range(args.repeats):
        for arm in args.arms:
            totals[arm].add(_run_arm_subprocess(argv, arm))
    for arm, t in totals.items():
        rollout_other = t.wall_s - t.env_s - t.update_s
        print(
            f"{ARMS[arm].format(variant=args.variant):52s} {t.steps / t.wall_s:7.0f} steps/s  "
            f"(segment {t.wall_s:5.1f} s: env step {t.env_s:5.1f} s, rest of rollouts "
            f"{rollout_other:5.1f} s, PPO updates {t.update_s:5.1f} s; start-up to "
            f"{args.steps} steps {t.startup_s / args.repeats:4.1f} s)"
        )
    if "coordrl" in totals:
        ours = totals["coordrl"]
        for ref in ("sb3", "sb3-passive"):
            if ref in totals:
                ratio = (ours.steps / ours.wall_s) / (totals[ref].steps / totals[ref].wall_s)
                print(f"ratio coordrl / {ref}: {ratio:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
