"""Run one benchmark measurement in a fresh Python process (its own compilation cache, memory peak and XLA
flags) and read back the JSON it prints on a ``RESULT`` line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time


def run_child(code: str, params: dict, timeout: float, env: dict | None = None) -> dict:
    """``params`` merged with the child's result (or an ``error``) and ``process_seconds``.

    The child gets ``params`` as JSON in ``sys.argv[1]``; CPU JAX and no progress bars unless ``env`` says.
    """
    start = time.perf_counter()
    full_env = {**os.environ, "JAX_PLATFORMS": os.environ.get("JAX_PLATFORMS", "cpu"), "DIFFBRAIN_NO_PROGRESS": "1",
                **(env or {})}
    try:
        proc = subprocess.run([sys.executable, "-c", code, json.dumps(params)], capture_output=True, text=True,
                              timeout=timeout, env=full_env)
    except subprocess.TimeoutExpired:
        return {**params, "error": f"timed out after {timeout:.0f} s"}
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        return {**params, "error": (proc.stderr.strip().splitlines() or ["no output"])[-1]}
    return {**params, **json.loads(lines[-1][len("RESULT "):]), "process_seconds": time.perf_counter() - start}
