"""Training throughput: SB3's reference Atari pipeline vs coordrl (CoordConv, native env).

Trains the same algorithm with the same hyperparameters (``configs/<algo>.yaml``) for the same
number of environment steps on an Atari game with

(a) ``reference``: SB3 as its users run it: ``make_atari_env`` + ``VecFrameStack(4)``, the stock
    algorithm with ``CnnPolicy`` (NatureCNN), stock rollout buffer, NCHW convolutions, the
    process's default OpenMP settings;
(b) ``coordrl``: what ``python -m coordrl.train --coordconv`` builds and runs: the native ale-py
    vector env (``envs.make_env``), ``agents.build_model`` with
    ``CoordNatureCNN(coord_layers="first")`` (channels-last on the CPU, uint8 rollout tensors),
    and ``OMP_WAIT_POLICY=PASSIVE`` as the train CLI sets it;
(c) ``reference-passive``: (a) with ``OMP_WAIT_POLICY=PASSIVE``, to separate the gain of that
    runtime setting from the rest.

Each arm runs in its own subprocess (OpenMP reads its settings once per process), ``--repeats``
times in alternation; the script prints steps/s (wall clock, and per CPU-second of the process),
the split between collecting rollouts and the gradient updates, and the ratios. Numbers depend on
the machine and its load: quote them with the machine and whether it was shared.

    python scripts/bench_train_throughput.py                 # PPO, Pong, 8192 steps, CPU
    python scripts/bench_train_throughput.py --variant conv --steps 4096 16384  # marginal rate
    python scripts/bench_train_throughput.py --algo dqn --steps 20000 --device cuda
    python scripts/bench_train_throughput.py --only coordrl --profile /tmp/coordrl.prof
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch as th
from _bench import run_arm_subprocess

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from coordrl.agents.config import ALGOS, load_config, resolve_hyperparams  # noqa: E402
from coordrl.agents.factory import build_model  # noqa: E402
from coordrl.envs import make_env  # noqa: E402
from coordrl.envs.atari import atari_env_id, canonical_game  # noqa: E402
from coordrl.variant import Variant  # noqa: E402


@dataclass
class Timing:
    """Accumulated time of one pipeline over its rounds."""

    name: str
    steps: int = 0
    wall_s: float = 0.0
    cpu_s: float = 0.0
    update_s: float = 0.0

    @property
    def steps_per_s(self) -> float:
        return self.steps / self.wall_s

    @property
    def steps_per_cpu_s(self) -> float:
        return self.steps / self.cpu_s


def _reference_model(algo: str, game: str, n_envs: int, seed: int, device: str, hyperparams):
    from stable_baselines3.common.env_util import make_atari_env
    from stable_baselines3.common.vec_env import VecFrameStack

    env = VecFrameStack(make_atari_env(atari_env_id(game), n_envs=n_envs, seed=seed), n_stack=4)
    kwargs = resolve_hyperparams(algo, hyperparams)
    return ALGOS[algo]("CnnPolicy", env, seed=seed, device=device, verbose=0, **kwargs)


def _coordrl_model(algo: str, game: str, n_envs: int, seed: int, device: str, hyperparams, variant):
    env, _ = make_env(game, n_envs, seed, backend="native", training=True)
    return build_model(algo, env, hyperparams, variant, seed=seed, device=device)


def _time_updates(model, timing: Timing) -> None:
    """Wrap ``model.train`` (the gradient updates) to add its time to ``timing.update_s``."""
    inner_train = model.train

    def timed_train(*args, **kwargs):
        start = time.perf_counter()
        inner_train(*args, **kwargs)
        timing.update_s += time.perf_counter() - start

    model.train = timed_train


def _learn_round(model, steps: int, timing: Timing, profiler: cProfile.Profile | None) -> None:
    before = model.num_timesteps
    wall, cpu = time.perf_counter(), time.process_time()
    if profiler:
        profiler.enable()
    model.learn(steps, reset_num_timesteps=before == 0)
    if profiler:
        profiler.disable()
    timing.wall_s += time.perf_counter() - wall
    timing.cpu_s += time.process_time() - cpu
    timing.steps += model.num_timesteps - before


ARM_TITLES = {
    "reference": "(a) reference: SB3 make_atari_env, NatureCNN",
    "coordrl": "(b) coordrl: {variant}, native env",
    "reference-passive": "(c) reference + OMP_WAIT_POLICY=PASSIVE",
}


def _run_arm(args, arm: str, game: str, n_envs: int, hyperparams, variant) -> Timing:
    """Build and train one arm in this process."""
    if arm == "coordrl":
        model = _coordrl_model(
            args.algo, game, n_envs, args.seed, args.device, hyperparams, variant
        )
    else:
        model = _reference_model(args.algo, game, n_envs, args.seed, args.device, hyperparams)
    timing = Timing(arm)
    _time_updates(model, timing)
    profiler = cProfile.Profile() if args.profile else None
    _learn_round(model, args.steps[-1], timing, profiler)
    if profiler:
        profiler.dump_stats(args.profile)
    model.env.close()
    return timing


def _run_arm_subprocess(argv: list[str], arm: str) -> Timing:
    """Run ``--only arm`` in a fresh process with the arm's OpenMP setting."""
    return Timing(**run_arm_subprocess(__file__, argv, arm, passive=arm != "reference"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--algo", choices=sorted(ALGOS), default="ppo")
    parser.add_argument("--game", default="Pong")
    parser.add_argument(
        "--steps",
        type=int,
        nargs="+",
        default=[8192],
        help="env steps per pipeline; two counts (e.g. 4096 16384) also give the marginal rate "
        "between them, in which start-up, evaluation and saving cancel out",
    )
    parser.add_argument("--n-envs", type=int, default=None, help="default: the config's n_envs")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: cores)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--variant", default="coordconv", help="coordrl arm's variant name")
    parser.add_argument(
        "--arms",
        nargs="+",
        choices=tuple(ARM_TITLES),
        default=["reference", "coordrl", "reference-passive"],
        help="which pipelines to compare",
    )
    parser.add_argument(
        "--only", choices=tuple(ARM_TITLES), default=None, help="run one arm in this process"
    )
    parser.add_argument("--repeats", type=int, default=1, help="alternate the arms this often")
    parser.add_argument(
        "--learning-starts",
        type=int,
        default=None,
        help="DQN: learning_starts for both arms (default: steps // 10, so updates are timed)",
    )
    parser.add_argument("--profile", default=None, help="cProfile output file (with --only)")
    args = parser.parse_args(argv)

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    th.set_num_threads(args.threads or cores or 1)
    game = canonical_game(args.game)
    cfg = load_config(args.algo)
    n_envs = args.n_envs or cfg.n_envs
    hyperparams = dict(cfg.hyperparams)
    if len(args.steps) > 2 or min(args.steps) < 1 or len(set(args.steps)) < len(args.steps):
        parser.error("--steps takes one or two different positive counts")
    if args.algo == "dqn":
        most = max(args.steps)
        hyperparams["learning_starts"] = (
            args.learning_starts if args.learning_starts is not None else most // 10
        )
        hyperparams["buffer_size"] = min(hyperparams.get("buffer_size", 100_000), most)
    variant = Variant.from_name(args.variant)
    print(
        f"{args.algo.upper()} on {game}: {' and '.join(map(str, args.steps))} steps, "
        f"n_envs={n_envs}, "
        f"device={args.device}, "
        f"torch threads={th.get_num_threads()}, cores={cores}, torch {th.__version__}"
    )

    if args.only is not None:
        timing = _run_arm(args, args.only, game, n_envs, hyperparams, variant)
        print("RESULT " + json.dumps(asdict(timing)), flush=True)
        return 0

    base_argv = argv if argv is not None else sys.argv[1:]
    totals = {
        (arm, steps): Timing(ARM_TITLES[arm].format(variant=variant.name))
        for steps in args.steps
        for arm in args.arms
    }
    for _ in range(args.repeats):
        for steps in args.steps:
            for arm in args.arms:
                # a later --steps overrides the earlier one(s)
                timing = _run_arm_subprocess([*base_argv, "--steps", str(steps)], arm)
                total = totals[arm, steps]
                for key in ("steps", "wall_s", "cpu_s", "update_s"):
                    setattr(total, key, getattr(total, key) + getattr(timing, key))
    for (_, steps), t in totals.items():
        print(
            f"{t.name:48s} {steps:>7} steps: {t.steps_per_s:7.1f} steps/s "
            f"{t.steps_per_cpu_s:7.1f} steps/CPU-s  ({t.steps} steps, {t.wall_s:.1f} s: "
            f"rollouts {t.wall_s - t.update_s:.1f} s, updates {t.update_s:.1f} s)"
        )
    rates = {(arm, steps): t.steps_per_s for (arm, steps), t in totals.items()}
    if len(args.steps) == 2:
        low, high = sorted(args.steps)
        for arm in args.arms:
            a, b = totals[arm, low], totals[arm, high]
            if b.steps <= a.steps or b.wall_s <= a.wall_s:
                parser.error(
                    f"{low} and {high} steps trained the same rollouts: use counts "
                    "further apart (e.g. 4096 16384)"
                )
            rates[arm, "marginal"] = (b.steps - a.steps) / (b.wall_s - a.wall_s)
            print(
                f"{ARM_TITLES[arm].format(variant=variant.name):48s} marginal {low}->{high}: "
                f"{rates[arm, 'marginal']:7.1f} steps/s"
            )
    if "coordrl" in args.arms:
        for ref in ("reference", "reference-passive"):
            if ref not in args.arms:
                continue
            keys = [*args.steps, "marginal"] if len(args.steps) == 2 else args.steps
            for key in keys:
                print(
                    f"ratio coordrl / {ref} ({key} steps): "
                    f"{rates['coordrl', key] / rates[ref, key]:.2f}x wall"
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
