"""Bookkeeping of a sweep's submissions, so that status and cancel find its jobs later.

One JSON line per submitted array in ``<jobs dir>/submissions.jsonl`` (see
:func:`slurm.resources.jobs_dir_for`): executor, scheduler job ids, the points each job runs, and for
local jobs the controller's pid and start time (a recycled pid is never mistaken for ours).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

SUBMISSIONS = "submissions.jsonl"


@dataclass
class JobRecord:
    job_id: str  # "12_3" (array task), "12" (single job), the pid of a local job, or a debug id
    points: list[str]
    pid: int | None = None  # local jobs: the submitit controller process
    pid_started: float | None = None  # its start time (psutil create_time)


@dataclass(frozen=True)
class JobUse:
    """What the scheduler's accounting says one job held and used (SLURM: ``sacct``)."""

    elapsed_s: float  # wall time the allocation was held
    alloc_cpus: int
    alloc_gpus: int
    cpu_s: float | None = None  # CPU time used by its steps (TotalCPU); None when not reported
    max_rss_bytes: int | None = None  # largest step's peak resident memory; None without a gather plugin
    state: str = ""


@dataclass
class Submission:
    submitted: str
    executor: str  # slurm | local | debug
    host: str
    folder: str  # submitit folder of this submission (pickles and logs)
    resources: dict
    jobs: list[JobRecord] = field(default_factory=list)
    code: dict | None = None  # the code snapshot its tasks import (slurm.snapshot), or why there is none

    @property
    def array_ids(self) -> list[str]:
        """Scheduler ids to query or cancel as a whole (the array id of an array, else each job id)."""
        return sorted({job.job_id.split("_")[0] for job in self.jobs})

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> Submission:
        jobs = [JobRecord(**j) for j in data.get("jobs", [])]
        return cls(data["submitted"], data["executor"], data["host"], data["folder"], data.get("resources", {}), jobs,
                   data.get("code"))


def record(jobs_dir: str | Path, submission: Submission) -> None:
    """Append one submission (a single write of one line, so concurrent appends do not interleave)."""
    jobs_dir = Path(jobs_dir)
    jobs_dir.mkdir(parents=True, exist_ok=True)
    line = (json.dumps(submission.to_json(), separators=(",", ":")) + "\n").encode()
    fd = os.open(jobs_dir / SUBMISSIONS, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


def load(jobs_dir: str | Path) -> list[Submission]:
    """Every recorded submission, oldest first (a torn last line from a crash is skipped)."""
    path = Path(jobs_dir) / SUBMISSIONS
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        try:
            out.append(Submission.from_json(json.loads(line)))
        except (json.JSONDecodeError, KeyError, TypeError):
            continue
    return out


def latest_job_of_points(submissions: list[Submission]) -> dict[str, tuple[Submission, JobRecord]]:
    """For each point, the most recent submission and job that ran (or runs) it."""
    out = {}
    for sub in submissions:
        for job in sub.jobs:
            for point_id in job.points:
                out[point_id] = (sub, job)
    return out
