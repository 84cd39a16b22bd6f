"""What this process may run on: CPU cores, GPUs, the torch device. One answer for the train,
evaluate, sweep and paper CLIs and the environments. torch is imported only by the functions
that need it, so the sweep driver can count cores without paying for torch."""

from __future__ import annotations

import os
import re

__all__ = ["DEVICES", "available_cores", "resolve_device", "visible_gpus"]

#: The values ``--device`` accepts.
DEVICES = ("auto", "cpu", "cuda")


def available_cores() -> int:
    """CPU cores this process may run on (respects affinity and cgroup CPU sets)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def visible_gpus() -> list[str]:
    """GPU ids for ``CUDA_VISIBLE_DEVICES`` (honouring an existing setting; ``-1`` = none)."""
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is not None:
        return [g.strip() for g in env.split(",") if g.strip() and g.strip() != "-1"]
    try:
        import torch
    except ImportError:
        return []
    return [str(i) for i in range(torch.cuda.device_count())] if torch.cuda.is_available() else []


def resolve_device(name: str) -> str:
    """``"auto"`` -> ``"cuda"`` if a GPU is available else ``"cpu"``; ``"cpu"``, ``"cuda"`` and
    ``"cuda:N"`` are checked.

    :raises ValueError: an unknown name, or CUDA without a GPU (the message says what to use)
    """
    if name not in DEVICES and not re.fullmatch(r"cuda:\d+", name):
        raise ValueError(f"unknown device {name!r}: use {', '.join(DEVICES)} (or cuda:N)")
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ValueError(f"--device {name}: CUDA is not available here (use cpu or auto)")
        index = int(name.partition(":")[2] or 0)
        if index >= torch.cuda.device_count():
            raise ValueError(f"--device {name}: only {torch.cuda.device_count()} GPU(s) here")
    return name
