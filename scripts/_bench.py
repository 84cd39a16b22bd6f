"""What the benchmark scripts share: running one arm in a fresh process (so that each arm gets
its own OpenMP setting, which libgomp reads once, at torch's import) and reading its result."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any


def run_arm_subprocess(script: str, argv: list[str], arm: str, passive: bool) -> dict[str, Any]:
    """Run ``script *argv --only arm`` in a fresh process and return the JSON of the line it
    prints as ``RESULT {...}``.

    :param script: the benchmark's ``__file__``
    :param argv: its arguments (without ``--only``)
    :param arm: the arm to run
    :param passive: set ``OMP_WAIT_POLICY=PASSIVE`` (as coordrl's CLIs do) unless already set
    :raises RuntimeError: the arm printed no result (its output is in the message)
    """
    env = dict(os.environ)
    if passive:
        env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    cmd = [sys.executable, str(Path(script).resolve()), *argv, "--only", arm]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT ") :])
    raise RuntimeError(f"{arm} arm failed:\n{proc.stdout}\n{proc.stderr}")
