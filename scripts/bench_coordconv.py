"""Benchmark: cost of CoordConv in a PPO-sized update of the Nature CNN.

Times forward + backward of a batch of 256 Atari observations (4x84x84 uint8, converted to float
and divided by 255 as SB3 does) through:

* SB3's ``NatureCNN`` (the baseline),
* ``CoordNatureCNN`` with CoordConv in the first layer and in all layers (fast path),
* ``CoordNatureCNN`` (first layer) using the naive concatenate-then-convolve path,

each in the default (contiguous NCHW) and channels-last memory formats, the first conv layer
alone (plain ``Conv2d`` vs fast ``CoordConv2d`` vs naive), and a whole PPO minibatch step of SB3's
``ActorCriticCnnPolicy`` (``evaluate_actions`` + loss + backward + Adam step, as inside
``PPO.train``) with the extractor at ``coord_layers`` none / first / all. The configurations are
run round-robin (one timing of each per round) so that load from other processes affects all of
them alike; the table reports the median over rounds and the overhead relative to the baseline
row of its part in the same memory format.

Usage::

    python scripts/bench_coordconv.py --device cpu --repeats 30 --threads 2
    # on a machine shared with other jobs: CPU time of one thread is far less noisy than wall time
    python scripts/bench_coordconv.py --device cpu --repeats 15 --threads 1 --clock cpu
    python scripts/bench_coordconv.py --device cuda --repeats 100
"""

# ruff: noqa: E402  (OMP_WAIT_POLICY must be set before torch is imported)
from __future__ import annotations

import os

# As in coordrl.train: idle OpenMP threads that spin distort timings on a small machine.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse
import datetime as dt
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import gymnasium as gym
import numpy as np
import torch as th
from stable_baselines3.common.policies import ActorCriticCnnPolicy
from stable_baselines3.common.torch_layers import NatureCNN
from torch import nn

from coordrl.extractors import CoordNatureCNN
from coordrl.layers import CoordConv2d


@dataclass
class Case:
    """One benchmarked configuration.

    :param group: table section (``update`` or ``first layer``)
    :param name: row label
    :param channels_last: memory format of input and conv weights
    :param baseline: name of the row the overhead is computed against
    :param step: runs one forward + backward pass
    """

    group: str
    name: str
    channels_last: bool
    baseline: str
    step: Callable[[], None]


def _sync(device: th.device) -> None:
    if device.type == "cuda":
        th.cuda.synchronize(device)


def _make_step(
    module: nn.Module, obs: th.Tensor, channels_last: bool, scale: bool
) -> Callable[[], None]:
    """Forward + backward of ``module`` on ``obs`` (uint8 -> float / 255 when ``scale``).

    Channels-last converts only the input (as ``CoordNatureCNN(channels_last=True)`` does)."""
    params = list(module.parameters())

    def step() -> None:
        x = obs.float() / 255.0 if scale else obs
        if channels_last:
            x = x.contiguous(memory_format=th.channels_last)
        loss = module(x).float().square().mean()
        grads = th.autograd.grad(loss, params)
        del grads

    return step


def _make_ppo_step(
    coord_layers: str, device: th.device, obs: th.Tensor, channels_last: bool
) -> Callable[[], None]:
    """One PPO minibatch step of SB3's CNN actor-critic policy with ``CoordNatureCNN``."""
    space = gym.spaces.Box(0, 255, (4, 84, 84), np.uint8)
    policy = ActorCriticCnnPolicy(
        space,
        gym.spaces.Discrete(6),
        lr_schedule=lambda _: 2.5e-4,
        features_extractor_class=CoordNatureCNN,
        features_extractor_kwargs=dict(coord_layers=coord_layers),
        net_arch=[],
    ).to(device)
    if channels_last:  # after construction: SB3's orthogonal init needs contiguous weights
        policy.features_extractor.cnn.to(memory_format=th.channels_last)
        policy.features_extractor.channels_last = True
    actions = th.randint(0, 6, (obs.shape[0],), device=device)

    def step() -> None:
        values, log_prob, entropy = policy.evaluate_actions(obs, actions)
        loss = values.square().mean() - log_prob.mean() - 0.01 * entropy.mean()
        policy.optimizer.zero_grad()
        loss.backward()
        policy.optimizer.step()

    return step


def build_cases(device: th.device, batch: int, formats: list[bool]) -> list[Case]:
    """All benchmark configurations on ``device``."""
    space = gym.spaces.Box(0, 255, (4, 84, 84), np.uint8)
    obs = th.randint(0, 256, (batch, 4, 84, 84), dtype=th.uint8, device=device)
    cases: list[Case] = []
    for cl in formats:
        suffix = " (channels-last)" if cl else ""
        base = "NatureCNN (SB3)" + suffix
        extractors: list[tuple[str, nn.Module]] = [
            (base, NatureCNN(space)),
            ("CoordNatureCNN first" + suffix, CoordNatureCNN(space, coord_layers="first")),
            ("CoordNatureCNN all" + suffix, CoordNatureCNN(space, coord_layers="all")),
        ]
        naive = CoordNatureCNN(space, coord_layers="first")
        naive.cnn[0].naive = True
        extractors.append(("naive-concat CoordConv first" + suffix, naive))
        for name, module in extractors:
            step = _make_step(module.to(device), obs, cl, scale=True)
            cases.append(Case("update", name, cl, base, step))

        x = (obs.float() / 255.0).contiguous(
            memory_format=th.channels_last if cl else th.contiguous_format
        )
        plain = nn.Conv2d(4, 32, 8, stride=4).to(device)
        fast = CoordConv2d(4, 32, 8, stride=4).to(device)
        slow = CoordConv2d(4, 32, 8, stride=4, naive=True).to(device)
        conv_base = "Conv2d" + suffix
        for name, module in [
            (conv_base, plain),
            ("CoordConv2d fast" + suffix, fast),
            ("CoordConv2d naive" + suffix, slow),
        ]:
            cases.append(Case("first layer", name, cl, conv_base, _make_step(module, x, cl, False)))

        ppo_base = "PPO minibatch, coord_layers=none" + suffix
        for layers in ("none", "first", "all"):
            name = f"PPO minibatch, coord_layers={layers}" + suffix
            step = _make_ppo_step(layers, device, obs, cl)
            cases.append(Case("ppo step", name, cl, ppo_base, step))
    return cases


def run(
    cases: list[Case], device: th.device, repeats: int, warmup: int, clock: str = "wall"
) -> dict[str, list[float]]:
    """Round-robin timing; returns milliseconds per case name.

    :param clock: ``wall`` (``time.perf_counter``) or ``cpu`` (``time.process_time``: CPU time of
        this process, all threads summed -- insensitive to other processes taking the CPU)
    """
    timer = time.perf_counter if clock == "wall" else time.process_time
    for case in cases:
        for _ in range(warmup):
            case.step()
    _sync(device)
    times: dict[str, list[float]] = {case.name: [] for case in cases}
    for _ in range(repeats):
        for case in cases:
            _sync(device)
            start = timer()
            case.step()
            _sync(device)
            times[case.name].append((timer() - start) * 1e3)
    return times


def format_table(cases: list[Case], times: dict[str, list[float]]) -> str:
    """Markdown table: median, IQR and minimum milliseconds, and the overhead against the
    same-format baseline by median and by minimum (the minimum is the least disturbed by other
    activity on a small or shared machine)."""
    lines = [
        "| part | configuration | median ms | IQR ms | min ms | overhead (median) "
        "| overhead (min) |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for case in cases:
        t = times[case.name]
        med, low = statistics.median(t), min(t)
        q = statistics.quantiles(t, n=4) if len(t) >= 2 else [med, med, med]
        base = times[case.baseline]
        if case.name == case.baseline:
            over_med = over_min = "baseline"
        else:
            over_med = f"{100 * (med / statistics.median(base) - 1):+.1f}%"
            over_min = f"{100 * (low / min(base) - 1):+.1f}%"
        lines.append(
            f"| {case.group} | {case.name} | {med:.2f} | {q[2] - q[0]:.2f} | {low:.2f} "
            f"| {over_med} | {over_min} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1 or auto (default cpu)")
    parser.add_argument("--repeats", type=int, default=20, help="timed rounds (default 20)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed rounds first (default 3)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument(
        "--clock",
        choices=["wall", "cpu"],
        default="wall",
        help="wall: elapsed time; cpu: process CPU time (CPU only; use with --threads 1 on a "
        "shared machine)",
    )
    parser.add_argument("--batch", type=int, default=256, help="batch size (default 256)")
    parser.add_argument(
        "--formats",
        choices=["both", "default", "channels-last"],
        default="both",
        help="memory formats to time (default both)",
    )
    args = parser.parse_args(argv)
    if args.repeats < 2 or args.warmup < 0 or args.batch < 1:
        print("error: need --repeats >= 2, --warmup >= 0, --batch >= 1", file=sys.stderr)
        return 2
    device_name = args.device
    if device_name == "auto":
        device_name = "cuda" if th.cuda.is_available() else "cpu"
    try:
        device = th.device(device_name)
    except RuntimeError:
        print(f"error: invalid --device {args.device!r} (use cpu, cuda or auto)", file=sys.stderr)
        return 2
    if args.clock == "cpu" and device.type != "cpu":
        print("error: --clock cpu only measures CPU devices; use --clock wall", file=sys.stderr)
        return 2
    if device.type == "cuda" and not th.cuda.is_available():
        print("error: --device cuda but CUDA is not available; use --device cpu", file=sys.stderr)
        return 2
    if args.threads is not None:
        th.set_num_threads(args.threads)
    th.manual_seed(0)
    formats = {"both": [False, True], "default": [False], "channels-last": [True]}[args.formats]

    cases = build_cases(device, args.batch, formats)
    times = run(cases, device, args.repeats, args.warmup, args.clock)

    hw = th.cuda.get_device_name(device) if device.type == "cuda" else platform.processor()
    print(
        f"# CoordConv benchmark {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC\n"
        f"device={device} ({hw or platform.machine()}), torch {th.__version__}, "
        f"threads={th.get_num_threads()}, batch={args.batch}x4x84x84, "
        f"forward+backward, {args.clock} clock, median of {args.repeats} round-robin rounds\n"
    )
    print(format_table(cases, times))
    return 0


if __name__ == "__main__":
    sys.exit(main())
