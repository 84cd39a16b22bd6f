"""Sweep throughput: aggregate environment steps/s of K concurrent runs vs one run alone.

For each K in ``--concurrency`` this runs a real ``python -m coordrl.sweep`` of K seeds with
``--workers K`` (torch threads per run = cores // K unless ``--threads``) into a temporary
directory, and reports:

- wall: the whole sweep, process start-up included;
- aggregate steps/s: K x timesteps / wall (what a researcher gets out of the machine);
- training steps/s: the sum over runs of ``result.json``'s ``fps`` (training loop only);
- speed-up of the aggregate over K = 1.

Examples::

    python scripts/bench_sweep.py                                   # pixel env, K = 1 2 4
    python scripts/bench_sweep.py --game Pong --timesteps 20000 --concurrency 1 2 4 8
    python scripts/bench_sweep.py --device cuda --concurrency 1 4 8 16   # a GPU machine

Numbers depend on the machine and on whatever else runs on it.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from coordrl import runs
from coordrl.hardware import available_cores
from coordrl.sweeps.results import format_table


def bench(args: argparse.Namespace, k: int, root: Path) -> dict[str, float]:
    out = root / f"k{k}"
    threads = args.threads or max(1, available_cores() // k)
    cmd = [sys.executable, "-m", "coordrl.sweep", "--games", args.game, "--algos", args.algo]
    cmd += ["--variants", args.variant, "--seeds", str(k), "--timesteps", str(args.timesteps)]
    cmd += ["--n-envs", str(args.n_envs), "--eval-episodes", "1", "--eval-freq", "0"]
    cmd += ["--checkpoint-freq", "0", "--workers", str(k), "--threads", str(threads)]
    cmd += ["--out", str(out)]
    if args.device:
        cmd += ["--device", args.device]
    for item in args.set or []:
        cmd += ["--set", item]
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"error: the sweep with K={k} failed:\n{proc.stdout[-2000:]}{proc.stderr}")
    fps = [runs.read_result(d).fps for d in sorted((out / "runs").iterdir())]
    return {"k": k, "threads": threads, "wall": wall, "agg": k * args.timesteps / wall,
            "train": sum(fps)}  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--game", default="coordrl/PointAtDot-v0", help="Atari game or gymnasium id")
    p.add_argument("--algo", default="ppo")
    p.add_argument("--variant", default="conv")
    p.add_argument("--timesteps", type=int, default=10_000, help="per run")
    p.add_argument("--n-envs", type=int, default=8)
    p.add_argument("--concurrency", type=int, nargs="+", default=[1, 2, 4])
    p.add_argument("--threads", type=int, help="torch threads per run (default cores // K)")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"])
    p.add_argument(
        "--set",
        nargs="+",
        action="extend",
        default=["n_steps=64", "batch_size=256"],
        help="hyperparameter overrides (default: short PPO rollouts)",
    )
    p.add_argument("--json", help="also write the rows to this JSON file")
    args = p.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench_sweep_") as tmp:
        rows = [bench(args, k, Path(tmp)) for k in args.concurrency]
    base = rows[0]["agg"] if rows and rows[0]["k"] == 1 else None
    print(
        f"{args.game} {args.algo} {args.variant}: {args.timesteps} steps/run, "
        f"{args.n_envs} envs/run, {available_cores()} cores, pid {os.getpid()}"
    )
    table = [
        [
            str(r["k"]),
            str(r["threads"]),
            f"{r['wall']:.1f}",
            f"{r['agg']:.0f}",
            f"{r['train']:.0f}",
            f"{r['agg'] / base:.2f}x" if base else "-",
        ]
        for r in rows
    ]
    header = ["runs", "threads/run", "wall s", "aggregate steps/s", "training steps/s", "speed-up"]
    print(format_table(header, table))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
