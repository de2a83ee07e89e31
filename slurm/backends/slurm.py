"""SLURM through submitit: one ``sbatch --array`` per resource set (``%array_parallelism`` at a time), one pack
per array task, in-process; a timed-out or preempted task checkpoints and requeues (``PackRunner`` is
``Checkpointable``; up to ``max_requeues`` times).

States come from ``squeue`` (pending/running, arrays expanded) and then ``sacct`` for jobs that left the
queue, parsed with submitit's own sacct reader. Every call has a timeout; when ``sacct`` (accounting) is not
available the notes say so and the states go on with what ``squeue`` knows.
"""

from __future__ import annotations

import functools
import getpass
import os
import subprocess
from collections.abc import Sequence
from pathlib import Path

from hpc.tasks import Pack
from slurm.backends.base import ACTIVE, Backend, SubmitError, selected
from slurm.jobs import JobUse, Submission
from slurm.resources import Resources

TIMEOUT_S = 15  # seconds any SLURM command may take
DEFAULT_MAX_ARRAY_SIZE = 1001  # SLURM's documented default MaxArraySize (task ids 0..1000)
MAX_ARRAY_ENV = "DIFFBRAIN_MAX_ARRAY_SIZE"  # a lower limit than the cluster's (a site's policy; the tests)


@functools.cache
def _cluster_max_array_size() -> tuple[int, str]:
    from slurm.probe import probe

    if not probe().answers:
        return DEFAULT_MAX_ARRAY_SIZE, "SLURM's default (no controller answers)"
    out, why = run_command(["scontrol", "show", "config"])
    for line in (out or "").splitlines():
        key, _, value = line.partition("=")
        if key.strip().lower() == "maxarraysize":
            try:
                return int(value.strip()), "the cluster's MaxArraySize"
            except ValueError:
                break
    return DEFAULT_MAX_ARRAY_SIZE, f"SLURM's default ({why or 'scontrol show config names no MaxArraySize'})"


def max_array_size() -> tuple[int, str]:
    """(how many tasks one job array may hold, where that figure comes from): ``MaxArraySize`` of
    ``scontrol show config`` (the largest task id is one less), else SLURM's default 1001; lowered by
    ``$DIFFBRAIN_MAX_ARRAY_SIZE``."""
    size, source = _cluster_max_array_size()
    try:
        own = int(os.environ.get(MAX_ARRAY_ENV, "0"))
    except ValueError:
        own = 0
    if 0 < own < size:
        return own, f"${MAX_ARRAY_ENV}"
    return size, source


def array_chunks(tasks: int, size: int) -> list[range]:
    """Task index ranges of the arrays that ``tasks`` tasks are split into, at most ``size`` each."""
    return [range(start, min(start + size, tasks)) for start in range(0, tasks, max(1, size))]


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
    if resources.nodes > 1:
        params["nodes"] = resources.nodes
    if resources.tasks_per_node > 1:  # submitit's sbatch script starts them with srun, one python each
        params["ntasks_per_node"] = resources.tasks_per_node
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


USAGE_FIELDS = "JobID,ElapsedRaw,TotalCPU,AllocCPUS,AllocTRES,MaxRSS,State"
_SIZE_UNITS = {"": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}


def cpu_seconds(text: str) -> float | None:
    """sacct's ``TotalCPU`` ([D-][HH:]MM:SS[.mmm]) in seconds; None when empty."""
    text = text.strip()
    if not text:
        return None
    days, _, clock = text.rpartition("-")
    parts = [float(p) for p in clock.split(":")]
    seconds = 0.0
    for part in parts:
        seconds = seconds * 60 + part
    return seconds + (int(days) * 86400 if days else 0)


def size_bytes(text: str) -> int | None:
    """sacct's ``MaxRSS`` (``1234K``, ``1.5G``; bytes without a suffix) in bytes; None when empty."""
    text = text.strip()
    if not text:
        return None
    unit = text[-1].upper() if text[-1].isalpha() else ""
    return int(float(text[:-1] if unit else text) * _SIZE_UNITS.get(unit, 1))


def tres_gpus(tres: str) -> int:
    """GPUs in an ``AllocTRES`` string (``gres/gpu=2``, or the sum of typed ``gres/gpu:a100=2`` entries)."""
    plain, typed = None, 0
    for item in tres.split(","):
        key, _, value = item.partition("=")
        if key == "gres/gpu":
            plain = int(value)
        elif key.startswith("gres/gpu:"):
            typed += int(value)
    return plain if plain is not None else typed


def parse_usage(out: str) -> dict[str, JobUse]:
    """``sacct -P -n -o USAGE_FIELDS`` (allocations and their steps) -> one :class:`JobUse` per job id: the
    allocation's elapsed time, CPUs, GPUs and CPU time (its steps' sum when the allocation line has none),
    and the largest step's MaxRSS."""
    allocations: dict[str, list[str]] = {}
    step_cpu: dict[str, float] = {}
    step_rss: dict[str, int] = {}
    for line in out.splitlines():
        fields = line.split("|")
        if len(fields) < 7 or "[" in fields[0]:  # a pending array's unexpanded tasks
            continue
        job_id, _, step = fields[0].partition(".")
        if not step:
            allocations[job_id] = fields
            continue
        cpu, rss = cpu_seconds(fields[2]), size_bytes(fields[5])
        if cpu is not None:
            step_cpu[job_id] = step_cpu.get(job_id, 0.0) + cpu
        if rss is not None:
            step_rss[job_id] = max(step_rss.get(job_id, 0), rss)
    uses = {}
    for job_id, (_, elapsed, total_cpu, cpus, tres, _rss, state) in ((k, v[:7]) for k, v in allocations.items()):
        cpu = cpu_seconds(total_cpu)
        uses[job_id] = JobUse(float(elapsed or 0), int(cpus or 0), tres_gpus(tres),
                              cpu if cpu else step_cpu.get(job_id, cpu), step_rss.get(job_id) or None,
                              state.split()[0] if state else "")
    return uses


class SlurmBackend(Backend):
    name = "slurm"
    label = "SLURM"
    auto_priority = 0
    detached = True
    poll_s = 5.0

    def available(self) -> bool:
        return self.availability()[0]

    def check(self, resources: Resources) -> None:
        """Any number of nodes and tasks per node: submitit's batch script starts every task with ``srun``
        (the cross-field rules are :class:`Resources`' own)."""

    def availability(self) -> tuple[bool, str]:
        """A laptop with the SLURM client installed but no cluster behind it runs sweeps locally."""
        from slurm.probe import probe

        found = probe()
        return found.answers, found.why

    def script(self, resources: Resources, tasks: int, folder: Path, name: str, after: str | None = None) -> str:
        """submitit's own sbatch script for one array of ``tasks`` tasks (what ``submit_array`` writes);
        ``after``: the array it waits for (a split array)."""
        import shlex
        import sys

        from submitit.slurm.slurm import _make_sbatch_string

        command = " ".join([shlex.quote(sys.executable), "-u -m submitit.core._submit", shlex.quote(str(folder))])
        params = slurm_parameters(resources, name)
        if after:
            params["dependency"] = f"afterany:{after}"
        return _make_sbatch_string(command=command, folder=folder, map_count=tasks if tasks > 1 else None, **params)

    def submit(self, resources: Resources, packs: Sequence[Pack], folder: Path, name: str) -> tuple[Submission, list]:
        import submitit

        from hpc.runner import PackRunner

        jobs: list = []
        previous = None
        try:
            executor = submitit.SlurmExecutor(folder=folder, max_num_timeout=resources.max_requeues)
            # arrays beyond MaxArraySize: several arrays, each after the one before it (so that no more than
            # array_parallelism tasks run at once), recorded as one submission
            for chunk in array_chunks(len(packs), max_array_size()[0]):
                params = slurm_parameters(resources, name)
                if previous is not None:
                    params["dependency"] = f"afterany:{previous}"
                executor.update_parameters(**params)
                part = executor.submit_array([PackRunner([packs[i]]) for i in chunk])
                jobs += part
                previous = part[0].job_id.split("_")[0]
        except Exception as err:  # no SLURM here, or sbatch's own message (bad partition, too many GPUs, ...)
            if jobs:  # nothing half-submitted: the arrays already queued go again
                run_command(["scancel", *sorted({job.job_id.split("_")[0] for job in jobs})])
            raise SubmitError(f"SLURM refused the job array: {str(err).strip()}") from None
        return self.recorded(folder, resources, jobs, packs), jobs

    def array_sizes(self, tasks: int) -> tuple[list[int], str]:
        size, source = max_array_size()
        return [len(chunk) for chunk in array_chunks(tasks, size)], f"at most {size} tasks per array: {source}"

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

    def accounting(self, submissions: Sequence[Submission]) -> tuple[dict[str, JobUse], str]:
        ids = sorted({array_id for sub in submissions for array_id in sub.array_ids})
        if not ids:
            return {}, "no SLURM jobs recorded"
        out, why = run_command(["sacct", "-P", "-n", "-o", USAGE_FIELDS, "-j", ",".join(ids)])
        if out is None:
            return {}, f"sacct did not answer ({why})"
        return parse_usage(out), ""

    def describe(self, resources: Resources) -> str:
        parts = [f"partition {resources.partition}" if resources.partition else "default partition"]
        if resources.processes > 1:
            parts.append(f"{resources.nodes} node{'s' if resources.nodes > 1 else ''} x "
                         f"{resources.tasks_per_node} task{'s' if resources.tasks_per_node > 1 else ''}")
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
