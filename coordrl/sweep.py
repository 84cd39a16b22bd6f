"""Seed sweeps: games x algorithms x variants x seeds, each run its own ``coordrl.train`` process.

::

    python -m coordrl.sweep --games Pong Breakout --algos ppo a2c --variants conv coordconv \\
        --seeds 5 --timesteps 2e6 --out sweeps/atari
    python -m coordrl.sweep --config configs/sweeps/pixel.yaml          # same, from a YAML file
    python -m coordrl.sweep --out sweeps/atari                          # resume from its manifest
    python -m coordrl.sweep --config configs/sweeps/pixel.yaml --dry-run
    python -m coordrl.sweep --config configs/sweeps/pixel.yaml --seeds 0..9 --extend  # add seeds

Rerunning the same command skips complete runs, resumes interrupted ones from their last
checkpoint and retries failed ones (``--no-retry`` keeps them failed); ``--extend`` adds new
games, algorithms, variants or seeds to it and changes nothing else. Killing the sweep, even
with SIGKILL, loses no completed run.

This module is the command line only: the sweep directory, the runs and the backends live in
:mod:`coordrl.sweeps` (the Ray backend is imported only for ``--backend ray``).
"""

from __future__ import annotations

import argparse
import contextlib
import math
import sys
from collections.abc import Sequence
from typing import Any

from coordrl._cli import (
    EXIT_FAILURE,
    EXIT_INTERRUPTED,
    EXIT_OK,
    MAX_STEPS_TEXT,
    OneLineArgumentParser,
    UsageError,
    add_set_option,
    check_output_dir,
    count_type,
    run_cli,
    steps_type,
)
from coordrl.hardware import available_cores, visible_gpus
from coordrl.runs import ALGOS
from coordrl.sweeps.attempt import DEFAULT_GRACE_S, TRAIN_MODULE, RunAttempt
from coordrl.sweeps.definition import (
    CHOICES,
    CONFIG_KEYS,
    GROWABLE_KEYS,
    LAUNCH_OPTIONS,
    TRAIN_OPTIONS,
    RunSpec,
    SweepDefinition,
    SweepError,
    load_config,
    parse_overrides,
)
from coordrl.sweeps.layout import SweepDir
from coordrl.sweeps.local import default_workers, run_local
from coordrl.sweeps.progress import Progress
from coordrl.sweeps.results import failed_runs_report, format_table, summary_table


def build_parser() -> argparse.ArgumentParser:
    p = OneLineArgumentParser(
        prog="python -m coordrl.sweep",
        description="Run games x algos x variants x seeds, each as a coordrl.train process.",
        epilog="Exit codes: 0 all runs complete, 1 a run failed or is not complete, "
        "2 bad input, 130 interrupted (rerun the same command to resume).",
    )
    g = p.add_argument_group("sweep definition (stored in SWEEP/manifest.json)")
    g.add_argument("--config", help="YAML file with any of these options (the flags override it)")
    g.add_argument("--games", nargs="+", help="Atari games (Pong, ALE/Pong-v5) or gymnasium ids")
    g.add_argument("--algos", nargs="+", help=f"algorithms ({', '.join(ALGOS)})")
    g.add_argument(
        "--variants", nargs="+", help="conv, coordconv, coordconv-all, coordconv-r, coordconv-L0-2"
    )
    g.add_argument(
        "--seeds",
        nargs="+",
        help="N = seeds 0..N-1; two or more values = explicit seeds; ranges A..B (e.g. 5..9)",
    )
    g.add_argument(
        "--timesteps",
        help=f"environment steps per run (2e6, 2_000_000, 2M; at most {MAX_STEPS_TEXT})",
    )
    add_set_option(
        g,
        "hyperparameter override for every run (repeatable); ALGO:KEY=VALUE for one "
        "algorithm's runs only (ppo:n_epochs=4)",
    )
    g.add_argument("--env-backend", choices=CHOICES["env_backend"], help="Atari vector env backend")
    g.add_argument("--n-envs", type=count_type(1), help="parallel environments per run")
    g.add_argument("--eval-episodes", type=count_type(1), help="episodes per evaluation")
    g.add_argument("--eval-freq", type=steps_type(0), help="evaluate every N environment steps")
    g.add_argument(
        "--extend",
        action="store_true",
        help="add this command's new games, algos, variants or seeds to an existing sweep "
        "(its runs are kept; every other option must match the manifest)",
    )

    e = p.add_argument_group("execution (may change between reruns)")
    e.add_argument("--out", help="sweep directory (e.g. sweeps/NAME)")
    e.add_argument(
        "--backend", choices=CHOICES["backend"], help="where runs execute (default local)"
    )
    e.add_argument("--address", help="Ray cluster address (e.g. auto, ray://head:10001)")
    e.add_argument(
        "--workers", type=count_type(1), help="concurrent runs (default: from cores and GPUs)"
    )
    e.add_argument(
        "--threads", type=count_type(1), help="torch threads per run (default: cores / workers)"
    )
    e.add_argument("--cpus-per-run", type=float, help="Ray: CPUs requested per run (default 1)")
    e.add_argument("--gpus-per-run", type=float, help="Ray: GPUs requested per run (default 0)")
    e.add_argument("--device", choices=CHOICES["device"], help="device of every run")
    e.add_argument(
        "--checkpoint-freq", type=steps_type(0), help="checkpoint every N environment steps"
    )
    e.add_argument("--no-retry", action="store_true", help="leave failed runs failed")
    e.add_argument("--dry-run", action="store_true", help="list the runs and their status only")
    e.add_argument("--grace", type=float, default=DEFAULT_GRACE_S, help=argparse.SUPPRESS)
    e.add_argument("--train-module", default=TRAIN_MODULE, help=argparse.SUPPRESS)
    # seconds between two plain status lines when stdout is not a terminal
    e.add_argument("--status-every", type=float, default=60.0, help=argparse.SUPPRESS)
    return p


def resolve_options(args: argparse.Namespace) -> tuple[dict[str, Any], bool]:
    """Merge ``--config`` and the flags (flags win). Returns the options and whether any
    option defining the sweep was given at all."""
    cfg = load_config(args.config) if args.config else {}
    opts: dict[str, Any] = dict(cfg)
    seeds_explicit = isinstance(cfg.get("seeds"), list)
    for key in CONFIG_KEYS - {"set"}:
        value = getattr(args, key, None)
        if value is not None:
            opts[key] = value
            if key == "seeds":
                seeds_explicit = False
    overrides = parse_overrides(cfg.get("set"))
    overrides.update(parse_overrides(args.set))
    opts["set"] = overrides
    opts["seeds_explicit"] = seeds_explicit
    defining = {"games", "algos", "variants", "seeds", "timesteps", *TRAIN_OPTIONS}
    given = bool(args.config or args.set) or any(getattr(args, k) is not None for k in defining)
    return opts, given


def _positive(opts: dict[str, Any], key: str, kind: type = int) -> None:
    value = opts.get(key)
    if value is not None and (not isinstance(value, (int, float)) or value <= 0):
        raise SweepError(f"--{key.replace('_', '-')} must be positive, got {value!r}")
    if value is not None and kind is int and value != int(value):
        raise SweepError(f"--{key.replace('_', '-')} must be a whole number, got {value!r}")


def main(argv: Sequence[str] | None = None) -> int:
    return run_cli(_main, argv)


def _main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    try:
        with contextlib.ExitStack() as held:
            return _sweep(args, argv, held)
    except SweepError as e:
        raise UsageError(str(e)) from None


def _against_manifest(
    sweep: SweepDir, stored: SweepDefinition, wanted: SweepDefinition, extend: bool
) -> SweepDefinition:
    """The definition to run: the manifest's if the command asks for the same sweep, the
    manifest's extended by the command's new values with ``--extend``.

    :raises SweepError: they differ without ``--extend``, or ``--extend`` would change more than
        the lists of games, algorithms, variants and seeds
    """
    if stored == wanted:
        return stored
    if extend:
        return stored.extended_by(wanted)
    diffs = "; ".join(stored.differences(wanted))
    raise SweepError(
        f"{sweep.manifest_path} disagrees with this command ({diffs}); use another --out, "
        "the stored definition (rerun with only --out), or --extend to add games, algos, "
        "variants or seeds to this sweep"
    )


def _with_launch_options(opts: dict[str, Any], stored: dict[str, Any]) -> list[str]:
    """Fill the launch options this command does not give from the manifest's (the last
    launch's), in place; returns them as flags, for the line that says so.

    :param opts: the options of this command (:func:`resolve_options`)
    :param stored: ``SweepDir.launch_options()``
    """
    taken = []
    for key in LAUNCH_OPTIONS:
        if opts.get(key) is None and stored.get(key) is not None:
            opts[key] = stored[key]
            taken.append(f"--{key.replace('_', '-')} {stored[key]}")
    return taken


def _sweep(args: argparse.Namespace, argv: Sequence[str], held: contextlib.ExitStack) -> int:
    """The sweep ``args`` ask for; ``held`` keeps the driver lock until the caller is done."""
    opts, defining_given = resolve_options(args)
    if not opts.get("out"):
        raise SweepError("no sweep directory: pass --out sweeps/NAME (or 'out:' in the config)")
    sweep = SweepDir(opts["out"])
    stored = sweep.stored_definition()
    reused = _with_launch_options(opts, sweep.launch_options() if stored is not None else {})
    for key in ("workers", "threads"):
        _positive(opts, key)
    if opts.get("checkpoint_freq") is not None and opts["checkpoint_freq"] < 0:
        raise SweepError(f"--checkpoint-freq must be >= 0, got {opts['checkpoint_freq']}")
    for key in ("cpus_per_run", "gpus_per_run"):
        _positive(opts, key, float)
    backend = opts.get("backend") or "local"
    if backend not in ("local", "ray"):
        raise SweepError(f"unknown backend {backend!r}: use 'local' or 'ray'")
    if backend == "local" and (args.address or args.gpus_per_run or args.cpus_per_run):
        # (only flags: a config file written for Ray may be run locally as it is)
        raise SweepError("--address, --cpus-per-run and --gpus-per-run need --backend ray")
    if backend == "ray":
        from coordrl.sweeps import ray_backend

        ray_backend.check_available()

    if stored is not None and not defining_given:
        definition = stored
    else:
        definition = SweepDefinition.build(
            opts.get("games"),
            opts.get("algos"),
            opts.get("variants"),
            opts.get("seeds"),
            opts.get("timesteps"),
            overrides=opts["set"],
            train_options={k: opts.get(k) for k in TRAIN_OPTIONS},
            seeds_explicit=opts["seeds_explicit"],
        )
        if stored is not None:
            definition = _against_manifest(sweep, stored, definition, args.extend)
    if args.extend and not defining_given:
        raise SweepError(
            "--extend needs the extended definition: pass --config and/or --games, --algos, "
            "--variants or --seeds with everything the sweep has plus what to add"
        )

    specs = definition.runs()
    retry = not args.no_retry
    if args.dry_run:
        return _dry_run(sweep, definition, {spec: sweep.status(spec) for spec in specs}, retry)

    check_output_dir(sweep.path, "--out")
    sweep.path.mkdir(parents=True, exist_ok=True)
    held.enter_context(sweep.driver_lock())  # one driver per sweep directory
    now = sweep.read_manifest()  # another driver may have written it since it was read
    if now is not None:
        definition = _against_manifest(sweep, now, definition, args.extend)
        added = [
            f"{key} {[v for v in getattr(definition, key) if v not in getattr(now, key)]}"
            for key in GROWABLE_KEYS
            if getattr(definition, key) != getattr(now, key)
        ]
        if added:
            print(f"sweep {sweep.path}: extended by {', '.join(added)}")
    statuses = {spec: sweep.status(spec) for spec in specs}
    if reused:
        print(f"sweep {sweep.path}: launch options from the manifest: {' '.join(reused)}")
    sweep.write_manifest(definition, argv, {k: opts.get(k) for k in LAUNCH_OPTIONS})
    sweep.fold_stale_logs(specs)

    todo = [
        s
        for s in specs
        if statuses[s] in ("new", "interrupted") or (statuses[s] == "failed" and retry)
    ]
    n_done = sum(st == "complete" for st in statuses.values())
    n_kept_failed = sum(st == "failed" for st in statuses.values()) if not retry else 0
    n_busy = sum(st == "running" for st in statuses.values())
    counts = (
        f"{len(specs)} runs ({n_done} complete, {len(todo)} to run, {n_kept_failed} failed kept, "
        f"{n_busy} running elsewhere)"
    )
    if not todo:  # (no backend started: no Ray for a finished sweep)
        if n_done == len(specs):
            print(f"sweep {sweep.path}: all {len(specs)} runs complete, nothing to do")
        else:
            print(f"sweep {sweep.path}: {counts}; nothing to do")
        return _finish(sweep, definition, specs, stopped=False)

    cpus = available_cores()
    if backend == "local":
        gpus = visible_gpus() if opts.get("device") != "cpu" else []
        workers = int(opts.get("workers") or default_workers(cpus, len(gpus)))
        threads = int(opts.get("threads") or max(1, cpus // workers))
        where = f"local, {workers} worker(s) x {threads} thread(s)"
        where += f", GPUs {','.join(gpus)}" if len(gpus) > 1 else ""
    else:
        gpus = []
        workers = int(opts.get("workers") or len(todo))
        threads = int(opts.get("threads") or max(1, math.ceil(opts.get("cpus_per_run") or 1)))
        where = (
            f"Ray, <= {workers} run(s) in flight, {opts.get('cpus_per_run') or 1:g} CPU "
            f"+ {opts.get('gpus_per_run') or 0:g} GPU per run, {threads} thread(s)"
        )
    attempts = [
        RunAttempt(
            str(sweep.path),
            spec,
            definition,
            threads=threads,
            device=opts.get("device"),
            checkpoint_freq=opts.get("checkpoint_freq"),
            retry_failed=retry,
            train_module=args.train_module,
        )
        for spec in todo
    ]
    print(f"sweep {sweep.path}: {counts}; {where}", flush=True)
    progress = Progress(
        definition.timesteps,
        {spec.name: sweep.run_dir(spec) for spec in specs},
        {spec.name: st for spec, st in statuses.items()},
        todo=[spec.name for spec in todo],
        status_every_s=args.status_every,
    )
    with progress:
        if backend == "local":
            _, stopped = run_local(attempts, workers, gpus, progress, grace_s=args.grace)
        else:
            from coordrl.sweeps import ray_backend

            _, stopped = ray_backend.run_ray(
                sweep,
                attempts,
                progress,
                address=opts.get("address"),
                max_in_flight=workers,
                cpus_per_run=float(opts.get("cpus_per_run") or 1),
                gpus_per_run=float(opts.get("gpus_per_run") or 0),
                grace_s=args.grace,
            )
    return _finish(sweep, definition, specs, stopped)


def _dry_run(
    sweep: SweepDir, definition: SweepDefinition, statuses: dict[RunSpec, str], retry: bool
) -> int:
    action = {
        "complete": "skip",
        "interrupted": "resume",
        "failed": "retry" if retry else "keep failed",
        "new": "start",
        "running": "skip (running elsewhere)",
    }
    rows = [[s.name, st, action[st]] for s, st in statuses.items()]
    print(f"sweep {sweep.path} (dry run, nothing started)")
    holder = sweep.driver_holder()
    if holder is not None:
        print(
            f"a sweep driver is running on it now (pid {holder.get('pid', '?')} on "
            f"{holder.get('host', '?')} since {holder.get('since', '?')})"
        )
    print(format_table(["run", "status", "action"], rows))
    counts = {st: list(statuses.values()).count(st) for st in action}
    print(
        f"{len(statuses)} runs: "
        + ", ".join(f"{n} {st}" for st, n in counts.items() if n)
        + f"; {definition.timesteps} timesteps each"
    )
    return EXIT_OK


def _finish(
    sweep: SweepDir, definition: SweepDefinition, specs: Sequence[RunSpec], stopped: bool
) -> int:
    statuses = {spec: sweep.status(spec) for spec in specs}
    print("\n" + summary_table(sweep, definition))
    failed = [s for s, st in statuses.items() if st == "failed"]
    if failed:
        print(f"\n{len(failed)} failed run(s):")
        print("\n".join(failed_runs_report(sweep, failed)))
    counts = {st: list(statuses.values()).count(st) for st in ("complete", "failed")}
    others = len(specs) - counts["complete"] - counts["failed"]
    print(
        f"\n{counts['complete']}/{len(specs)} runs complete, {counts['failed']} failed, "
        f"{others} not complete"
        + (" (interrupted: rerun the same command to resume)" if stopped else "")
    )
    if stopped:
        return EXIT_INTERRUPTED
    return EXIT_OK if counts["complete"] == len(specs) else EXIT_FAILURE


if __name__ == "__main__":
    sys.exit(main())
