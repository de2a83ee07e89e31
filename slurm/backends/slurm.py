"""SLURM through submitit: one ``sbatch --array`` per resource set (``%array_parallelism`` at a time), one pack
per array task, in-process; a timed-out or preempted task checkpoints and requeues (``PackRunner`` is
``Checkpointable``; up to ``max_requeues`` times).

States come from ``squeue`` (pending/running, arrays expanded) and then ``sacct`` for jobs that left the
queue, parsed with submitit's own sacct reader. Every call has a timeout; when ``sacct`` (accounting) is not
available the notes say so and the states go on with what ``squeue`` knows.
"""

from __future__ import annotations

import getpass
import subprocess
from collections.abc import Sequence
from pathlib import Path

from hpc.tasks import Pack
from slurm.backends.base import ACTIVE, Backend, SubmitError, selected
from slurm.jobs import Submission
from slurm.resources import Resources

TIMEOUT_S = 15  # seconds any SLURM command may take


def slurm_parameters(resources: Resources, name: str) -> dict:
    """submitit SlurmExecutor parameters for ``resources``."""
    params = {
        "job_name": name, "time": resources.timeout_min, "cpus_per_task": resources.cpus_per_task,
        "array_parallelism": resources.array_parallelism, "signal_delay_s": resources.signal_delay(),
    }
    for key in ("partition", "account", "qos", "constraint"):
        if getattr(resources, key):
            params[key] = getattr(resources, key)
    if resources.gpus_per_node:
        params["gpus_per_node"] = resources.gpus_per_node
    if resources.mem_gb:
        mem = resources.mem_gb
        params["mem"] = f"{int(mem)}GB" if float(mem).is_integer() else f"{int(mem * 1024)}MB"
    if resources.setup:
        params["setup"] = list(resources.setup)
    return params


def run_command(cmd: list[str]) -> tuple[str | None, str]:
    """(stdout, "") or (None, why it failed), within :data:`TIMEOUT_S`."""
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
    out, why = run_command(["squeue", "-h", "-r", "-u", getpass.getuser(), "-o", "%i|%T"])
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
    out, why = run_command(cmd)
    if out is None:
        return None, why
    from submitit.slurm.slurm import SlurmInfoWatcher

    info = SlurmInfoWatcher().read_info(out)
    return {job_id: (stats.get("State") or "UNKNOWN").split()[0] for job_id, stats in info.items()}, ""


class SlurmBackend(Backend):
    name = "slurm"
    label = "SLURM"
    auto_priority = 0
    detached = True
    poll_s = 5.0

    def available(self) -> bool:
        return self.availability()[0]

    def availability(self) -> tuple[bool, str]:
        """A laptop with the SLURM client installed but no cluster behind it runs sweeps locally."""
        from slurm.probe import probe

        found = probe()
        return found.answers, found.why

    def script(self, resources: Resources, tasks: int, folder: Path, name: str) -> str | None:
        """submitit's own sbatch script for one array of ``tasks`` tasks (what ``submit_array`` writes)."""
        import shlex
        import sys

        from submitit.slurm.slurm import _make_sbatch_string

        command = " ".join([shlex.quote(sys.executable), "-u -m submitit.core._submit", shlex.quote(str(folder))])
        return _make_sbatch_string(command=command, folder=folder, map_count=tasks if tasks > 1 else None,
                                   **slurm_parameters(resources, name))

    def submit(self, resources: Resources, packs: Sequence[Pack], folder: Path, name: str) -> tuple[Submission, list]:
        import submitit

        from hpc.runner import PackRunner

        try:
            executor = submitit.SlurmExecutor(folder=folder, max_num_timeout=resources.max_requeues)
            executor.update_parameters(**slurm_parameters(resources, name))
            jobs = executor.submit_array([PackRunner([pack]) for pack in packs])
        except Exception as err:  # no SLURM here, or sbatch's own message (bad partition, too many GPUs, ...)
            raise SubmitError(f"SLURM refused the job array: {str(err).strip()}") from None
        return self.recorded(folder, resources, jobs, packs), jobs

    def states(self, submissions: Sequence[Submission], finished: bool = True) -> tuple[dict[str, str], list[str]]:
        jobs = [job for sub in submissions for job in sub.jobs]
        states: dict[str, str] = {}
        notes: list[str] = []
        if not jobs:
            return states, notes
        queued, why = _squeue()
        if queued is None:
            notes.append(f"squeue unavailable ({why}): pending/running jobs are not known")
            queued = {}
        for job in jobs:
            if job.job_id in queued:
                states[job.job_id] = queued[job.job_id]
        rest = [job for job in jobs if job.job_id not in states]
        if not rest or not finished:
            return states, notes
        left, why = _sacct(sorted({job.job_id.split("_")[0] for job in rest}))
        if left is None:
            notes.append(f"sacct unavailable ({why}): states of finished jobs are not known; "
                         "counts come from the store and squeue")
            left = {}
        for job in rest:
            states[job.job_id] = left.get(job.job_id, "UNKNOWN")
        return states, notes

    def cancel(self, submissions: Sequence[Submission], states: dict[str, str],
               only: set[str] | None = None) -> tuple[list[str], list[str]]:
        ids = sorted({job.job_id for sub in submissions for job in sub.jobs if selected(job.job_id, only)
                      and states.get(job.job_id, "UNKNOWN") in ACTIVE | {"UNKNOWN"}})
        if not ids:
            return [], []
        out, why = run_command(["scancel", *ids])
        return ([], [why]) if out is None else (ids, [])

    def describe(self, resources: Resources) -> str:
        parts = [f"partition {resources.partition}" if resources.partition else "default partition"]
        if resources.gpus_per_node:
            parts.append(f"{resources.gpus_per_node} GPU")
        parts.append(f"{resources.cpus_per_task} CPU")
        if resources.mem_gb:
            parts.append(f"{resources.mem_gb:g} GB")
        parts.append(f"{resources.timeout_min} min")
        return ", ".join(parts)

    def setup_note(self, lines: str) -> str:
        return f"  {lines} run in the task's shell before each task"

    def job_ids(self, submission: Submission) -> str:
        return ", ".join(submission.array_ids)


BACKEND = SlurmBackend()
