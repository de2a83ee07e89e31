"""submitit's debug executor: every pack runs now, in the submitting process, one after the other.

Setup lines are not run (there is no task shell); use the local backend for them.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from hpc.tasks import Pack
from slurm.backends.base import Backend
from slurm.jobs import Submission
from slurm.resources import Resources


class DebugBackend(Backend):
    name = "debug"
    in_process = True

    def available(self) -> bool:
        return True

    def submit(self, resources: Resources, packs: Sequence[Pack], folder: Path, name: str) -> tuple[Submission, list]:
        import submitit

        from hpc.runner import PackRunner

        executor = submitit.DebugExecutor(folder=folder)
        jobs = executor.submit_array([PackRunner([pack]) for pack in packs])
        return self.recorded(folder, resources, jobs, packs), jobs

    def finish(self, jobs: list) -> None:
        for job in jobs:
            job.result()

    def states(self, submissions: Sequence[Submission], finished: bool = True) -> tuple[dict[str, str], list[str]]:
        """Its jobs ended when ``submit`` returned."""
        return {job.job_id: "FINISHED" for sub in submissions for job in sub.jobs}, []

    def cancel(self, submissions: Sequence[Submission], states: dict[str, str],
               only: set[str] | None = None) -> tuple[list[str], list[str]]:
        return [], []

    def setup_note(self, lines: str) -> str:
        return f"  {lines} NOT run: the debug executor runs packs in this process (use --executor local)"


BACKEND = DebugBackend()
