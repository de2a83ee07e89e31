"""Ask the scheduler about a sweep's jobs, and cancel them; never hang.

SLURM: ``squeue`` (pending/running, arrays expanded) and then ``sacct`` for jobs that left the queue,
parsed with submitit's own sacct reader. Every call has a timeout; when ``sacct`` (accounting) is not
available the view says so in ``notes`` and goes on with what ``squeue`` and the store know. Local jobs:
the recorded controller pid, checked to still be that process.
"""

from __future__ import annotations

import getpass
import signal
import subprocess
from dataclasses import dataclass, field

from hpc.provenance import host
from slurm.jobs import JobRecord, Submission

TIMEOUT_S = 15
ACTIVE = {"PENDING", "RUNNING", "REQUEUED", "CONFIGURING", "COMPLETING", "SUSPENDED", "RESIZING",
          "REQUEUE_HOLD", "REQUEUE_FED", "STAGE_OUT", "SIGNALING", "PREEMPTED"}
RUNNING_STATES = {"RUNNING", "COMPLETING", "CONFIGURING", "STAGE_OUT", "SIGNALING"}


@dataclass
class SchedulerView:
    states: dict[str, str] = field(default_factory=dict)  # job id -> SLURM-like state
    notes: list[str] = field(default_factory=list)

    def state(self, job_id: str) -> str:
        return self.states.get(job_id, "UNKNOWN")

    def active(self, job_id: str) -> bool:
        return self.state(job_id) in ACTIVE


def _run(cmd: list[str]) -> tuple[str | None, str]:
    """(stdout, "") or (None, why it failed)."""
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT_S)
    except FileNotFoundError:
        return None, f"{cmd[0]} not found"
    except subprocess.TimeoutExpired:
        return None, f"{cmd[0]} did not answer within {TIMEOUT_S} s"
    if out.returncode != 0:
        return None, f"{cmd[0]} failed: {(out.stderr or out.stdout).strip()[:300]}"
    return out.stdout, ""


def _squeue() -> tuple[dict[str, str] | None, str]:
    out, why = _run(["squeue", "-h", "-r", "-u", getpass.getuser(), "-o", "%i|%T"])
    if out is None:
        return None, why
    states = {}
    for line in out.splitlines():
        if "|" in line:
            job_id, state = line.strip().split("|", 1)
            states[job_id] = state.strip()
    return states, ""


def _sacct(ids: list[str]) -> tuple[dict[str, str] | None, str]:
    if not ids:
        return {}, ""
    cmd = ["sacct", "-X", "-P", "-o", "JobID,State"]
    for job_id in ids:
        cmd += ["-j", job_id]
    out, why = _run(cmd)
    if out is None:
        return None, why
    from submitit.slurm.slurm import SlurmInfoWatcher

    info = SlurmInfoWatcher().read_info(out)
    return {job_id: (stats.get("State") or "UNKNOWN").split()[0] for job_id, stats in info.items()}, ""


def _local_state(job: JobRecord) -> str:
    import psutil

    try:
        proc = psutil.Process(job.pid)
        same = job.pid_started is None or abs(proc.create_time() - job.pid_started) < 1.0
        if same and proc.status() != psutil.STATUS_ZOMBIE and "submitit" in " ".join(proc.cmdline()):
            return "RUNNING"
    except (psutil.Error, TypeError):
        pass
    return "FINISHED"


def scheduler_view(submissions: list[Submission], finished: bool = True) -> SchedulerView:
    """States of every recorded job; SLURM jobs in one squeue call, and one sacct call for the jobs that
    left the queue (``finished=False`` skips it: they are then "UNKNOWN", which is enough to wait on)."""
    view = SchedulerView()
    slurm_jobs = [job for sub in submissions if sub.executor == "slurm" for job in sub.jobs]
    for sub in submissions:
        for job in sub.jobs:
            if sub.executor == "local":
                view.states[job.job_id] = _local_state(job) if sub.host == host() else "UNKNOWN"
            elif sub.executor == "debug":
                view.states[job.job_id] = "FINISHED"
    if not slurm_jobs:
        return view
    queued, why = _squeue()
    if queued is None:
        view.notes.append(f"squeue unavailable ({why}): pending/running jobs are not known")
        queued = {}
    for job in slurm_jobs:
        if job.job_id in queued:
            view.states[job.job_id] = queued[job.job_id]
    rest = [job for job in slurm_jobs if job.job_id not in view.states]
    if rest and not finished:
        return view
    if rest:
        finished, why = _sacct(sorted({job.job_id.split("_")[0] for job in rest}))
        if finished is None:
            view.notes.append(f"sacct unavailable ({why}): states of finished jobs are not known; "
                              "counts come from the store and squeue")
            finished = {}
        for job in rest:
            view.states[job.job_id] = finished.get(job.job_id, "UNKNOWN")
    return view


def _stop_local(job: JobRecord) -> bool:
    """SIGINT to the submitit controller (what submitit's LocalJob.cancel sends): it stops its tasks."""
    import psutil

    try:
        proc = psutil.Process(job.pid)
        family = [proc, *proc.children(recursive=True)]
        controllers = [p for p in family if "submitit.local._local" in " ".join(p.cmdline())]
        for p in controllers:
            p.send_signal(signal.SIGINT)
    except psutil.Error:
        return False
    return bool(controllers)


def cancel(submissions: list[Submission], only: set[str] | None = None) -> tuple[list[str], list[str]]:
    """Cancel the sweep's active jobs (or only the job ids in ``only``); (cancelled ids, problems)."""
    view = scheduler_view(submissions)
    done, problems = [], list(view.notes)
    slurm_ids = []
    for sub in submissions:
        for job in sub.jobs:
            if only is not None and job.job_id not in only and job.job_id.split("_")[0] not in only:
                continue
            if not view.active(job.job_id) and not (sub.executor == "slurm" and view.state(job.job_id) == "UNKNOWN"):
                continue
            if sub.executor == "slurm":
                slurm_ids.append(job.job_id)
            elif sub.executor == "local" and view.state(job.job_id) == "RUNNING":
                if _stop_local(job):
                    done.append(job.job_id)
                else:
                    problems.append(f"could not stop local job {job.job_id}")
    if slurm_ids:
        out, why = _run(["scancel", *sorted(set(slurm_ids))])
        if out is None:
            problems.append(why)
        else:
            done += sorted(set(slurm_ids))
    return done, problems
