"""Submit packs of points through an executor backend (:mod:`slurm.backends`): one submission per array.

Every submission is recorded (``slurm.jobs``) before this returns, so that status and cancel find it.
"""

from __future__ import annotations

from pathlib import Path

from hpc.tasks import Pack
from slurm.backends import Backend, SubmitError
from slurm.backends.base import new_folder
from slurm.jobs import Submission, record
from slurm.resources import Resources

__all__ = ["SubmitError", "submit"]


def submit(arrays: list[tuple[Resources, list[Pack]]], backend: Backend, jobs_dir: str | Path,
           name: str) -> list[tuple[Submission, list]]:
    """Submit each (resources, packs) array with ``backend`` (already resolved from ``auto``).

    Returns (recorded submission, submitit jobs) per array; an ``in_process`` backend has run everything
    when this returns. Raises :class:`SubmitError` if the scheduler refuses (earlier arrays stay recorded).
    """
    jobs_dir = Path(jobs_dir)
    jobs_dir.mkdir(parents=True, exist_ok=True)
    out = []
    for resources, packs in backend.arrays([(res, packs) for res, packs in arrays if packs]):
        sub, jobs = backend.submit(resources, packs, new_folder(jobs_dir), name)
        record(jobs_dir, sub)
        out.append((sub, jobs))
    backend.finish([job for _, jobs in out for job in jobs])
    return out
