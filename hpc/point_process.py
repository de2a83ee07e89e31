"""Entry point of a fresh Python process that runs one point or one pack (``python -m hpc.point_process``).

It reads its job as JSON on stdin (never a pickle): ``{"kind": "point", "store", "work_dir", "point":
{point_id, experiment, params}}`` (:meth:`hpc.tasks.PointTask.to_json`) or ``{"kind": "pack", "pack": {...}}``
(:meth:`hpc.tasks.Pack.to_json`). It dies with its parent (Linux
``PR_SET_PDEATHSIG``) and ignores the scheduler's USR2 warning signal, which its parent handles by
checkpointing and requeueing (and then stops this process).
"""

from __future__ import annotations

import json
import os
import signal
import sys


def _die_with_parent() -> None:
    expected = os.environ.get("DIFFBRAIN_PARENT_PID")
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if expected and os.getppid() != int(expected):  # the parent died before prctl took effect
        os._exit(1)


def main() -> int:
    _die_with_parent()
    signal.signal(signal.SIGUSR2, signal.SIG_IGN)
    job = json.loads(sys.stdin.read())
    from hpc.runner import Pack, PointTask, run_pack, run_point

    if job["kind"] == "point":
        run_point(job["store"], job["work_dir"], PointTask.from_json(job["point"]))
    elif job["kind"] == "pack":
        run_pack(Pack.from_json(job["pack"]))
    else:
        raise ValueError(f"unknown job kind {job['kind']!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
