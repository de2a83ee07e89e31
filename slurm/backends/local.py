"""This machine, through submitit's local executor.

It has no arrays, so the packs of every array are dealt into ``min(array_parallelism, packs, cpus //
cpus_per_task)`` lanes: one background process per lane, each pack of a lane in its own fresh Python process
(one process and one compilation per pack, as on SLURM). Setup lines run in a shell before each pack's
process (their output in the task log; a failing line records the pack's points as failed). The jobs ignore
SIGHUP, so they go on after the submitting terminal closes. A job's state is that of its recorded controller
process, checked to still be that process (a recycled pid is never mistaken for ours).
"""

from __future__ import annotations

import os
import shlex
import signal
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from hpc.provenance import host, now_iso
from hpc.tasks import Pack
from slurm.backends.base import Backend, selected
from slurm.jobs import JobRecord, Submission
from slurm.resources import Resources


def local_lanes(packs: list[Pack], resources: Resources) -> list[list[Pack]]:
    """Deal packs round-robin into lanes that run side by side on this machine."""
    cpus = max(1, (os.cpu_count() or 1) // resources.cpus_per_task)
    n = max(1, min(resources.array_parallelism, len(packs), cpus))
    return [packs[i::n] for i in range(n)]


def _controller_state(job: JobRecord) -> str:
    import psutil

    try:
        proc = psutil.Process(job.pid)
        same = job.pid_started is None or abs(proc.create_time() - job.pid_started) < 1.0
        if same and proc.status() != psutil.STATUS_ZOMBIE and "submitit" in " ".join(proc.cmdline()):
            return "RUNNING"
    except (psutil.Error, TypeError):
        pass
    return "FINISHED"


def _stop(job: JobRecord) -> bool:
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


class LocalBackend(Backend):
    name = "local"
    auto_priority = 1

    def available(self) -> bool:
        return True

    def arrays(self, arrays: list[tuple[Resources, list[Pack]]]) -> list[tuple[Resources, list[Pack]]]:
        """One machine: all packs share one set of lanes, with the widest resources."""
        if not arrays:
            return arrays
        widest = max((res for res, _ in arrays), key=lambda r: (r.timeout_min, r.gpus_per_node))
        return [(widest, [pack for _, packs in arrays for pack in packs])]

    def submit(self, resources: Resources, packs: Sequence[Pack], folder: Path, name: str) -> tuple[Submission, list]:
        import psutil
        import submitit

        from hpc.runner import PackRunner

        packs = [replace(pack, setup=tuple(resources.setup)) for pack in packs]
        lanes = local_lanes(packs, resources)
        executor = submitit.LocalExecutor(folder=folder, max_num_timeout=resources.max_requeues)
        # `trap '' HUP`: the jobs outlive the terminal that submitted them (an ignored signal stays ignored);
        # the controllers' own output goes to a file in the submission folder, never to that terminal
        controller_log = shlex.quote(str(folder / "controllers.log"))
        executor.update_parameters(timeout_min=resources.timeout_min * max(len(lane) for lane in lanes),
                                   gpus_per_node=resources.gpus_per_node, signal_delay_s=resources.signal_delay(),
                                   setup=["trap '' HUP", f"exec >>{controller_log} 2>&1 </dev/null"])
        jobs = executor.submit_array([PackRunner(lane, fresh_packs=True) for lane in lanes])
        records = []
        for job, lane in zip(jobs, lanes, strict=True):
            pid = int(job.job_id)
            try:
                started = psutil.Process(pid).create_time()
            except psutil.Error:
                started = None
            records.append(JobRecord(job.job_id, [pid for pack in lane for pid in pack.point_ids], pid, started))
        return Submission(now_iso(), self.name, host(), str(folder), resources.to_json(), records), jobs

    def states(self, submissions: Sequence[Submission], finished: bool = True) -> tuple[dict[str, str], list[str]]:
        """Jobs started on another host cannot be looked at from here: UNKNOWN."""
        return {job.job_id: _controller_state(job) if sub.host == host() else "UNKNOWN"
                for sub in submissions for job in sub.jobs}, []

    def cancel(self, submissions: Sequence[Submission], states: dict[str, str],
               only: set[str] | None = None) -> tuple[list[str], list[str]]:
        done, problems = [], []
        for job in (job for sub in submissions for job in sub.jobs):
            if not selected(job.job_id, only) or states.get(job.job_id) != "RUNNING":
                continue
            if _stop(job):
                done.append(job.job_id)
            else:
                problems.append(f"could not stop local job {job.job_id}")
        return done, problems


BACKEND = LocalBackend()
