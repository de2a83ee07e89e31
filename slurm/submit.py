"""Submit packs of points through an executor backend (:mod:`slurm.backends`): one submission per array.

Every submission is recorded (``slurm.jobs``) before this returns, so that status and cancel find it.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from hpc.tasks import Pack
from slurm.backends import Backend, SubmitError
from slurm.backends.base import new_folder
from slurm.jobs import Submission, record
from slurm.resources import Resources
from slurm.snapshot import setup_line, snapshot_code

__all__ = ["SubmitError", "submit"]


def submit(arrays: list[tuple[Resources, list[Pack]]], backend: Backend, jobs_dir: str | Path,
           name: str, snapshot: bool = True) -> list[tuple[Submission, list]]:
    """Submit each (resources, packs) array with ``backend`` (already resolved from ``auto``).

    ``snapshot``: the tasks import the toolkit from a copy made now (:mod:`slurm.snapshot`; not for an
    ``in_process`` backend, which runs the code already imported). Returns (recorded submission, submitit
    jobs) per array; an ``in_process`` backend has run everything when this returns. Raises
    :class:`SubmitError` if the scheduler refuses (earlier arrays stay recorded).
    """
    for resources, _ in arrays:
        backend.check(resources)
    jobs_dir = Path(jobs_dir)
    jobs_dir.mkdir(parents=True, exist_ok=True)
    arrays = [(res, packs) for res, packs in arrays if packs]
    code = {"snapshot": None, "why": "--no-snapshot" if not snapshot else "runs in the submitting process"}
    if snapshot and not backend.in_process and arrays:
        frozen = snapshot_code(jobs_dir)
        code = frozen.to_json()
        arrays = [(replace(res, setup=(setup_line(frozen), *res.setup)), packs) for res, packs in arrays]
    out = []
    for resources, packs in backend.arrays(arrays):
        sub, jobs = backend.submit(resources, packs, new_folder(jobs_dir), name)
        sub.code = code
        record(jobs_dir, sub)
        out.append((sub, jobs))
    backend.finish([job for _, jobs in out for job in jobs])
    return out
