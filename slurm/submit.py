"""Submit packs of points through submitit: one SLURM job array per resource set, or local processes.

- ``slurm``: one ``sbatch --array`` per resource set (``%array_parallelism`` at a time), one pack per array
  task, in-process; a timed-out or preempted task checkpoints and requeues (``PackRunner`` is
  ``Checkpointable``; up to ``max_requeues`` times).
- ``local``: submitit's local executor on this machine. It has no arrays, so the packs are dealt into
  ``min(array_parallelism, packs, cpus // cpus_per_task)`` lanes: one background process per lane, each
  pack of a lane in its own fresh Python process (one process and one compilation per pack, as on SLURM).
  Setup lines run in a shell before each pack's process (their output in the task log; a failing line
  records the pack's points as failed). The jobs ignore SIGHUP, so they go on after the submitting
  terminal closes.
- ``debug``: submitit's debug executor: every pack runs now, in this process, one after the other.

Every submission is recorded (``slurm.jobs``) before this returns, so that status and cancel find it.
"""

from __future__ import annotations

import os
import shlex
import uuid
from dataclasses import replace
from pathlib import Path

from hpc.provenance import host, now_iso
from hpc.runner import Pack, PackRunner
from slurm.jobs import JobRecord, Submission, record
from slurm.resources import Resources


class SubmitError(RuntimeError):
    """The scheduler refused a submission (its message says why)."""


def _folder(jobs_dir: Path) -> Path:
    """A fresh submitit folder per submission (job ids restart at 1 on a fresh test cluster)."""
    stamp = now_iso()[:19].replace(":", "").replace("-", "")
    return jobs_dir / "submitit" / f"{stamp}-{uuid.uuid4().hex[:6]}"


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


def _recorded(executor: str, folder: Path, resources: Resources, jobs: list, packs: list[Pack]) -> Submission:
    records = [JobRecord(job.job_id, [p[0] for p in pack.points]) for job, pack in zip(jobs, packs, strict=True)]
    return Submission(now_iso(), executor, host(), str(folder), resources.to_json(), records)


def _submit_slurm(resources: Resources, packs: list[Pack], jobs_dir: Path, name: str) -> tuple[Submission, list]:
    import submitit

    folder = _folder(jobs_dir)
    try:
        executor = submitit.SlurmExecutor(folder=folder, max_num_timeout=resources.max_requeues)
        executor.update_parameters(**slurm_parameters(resources, name))
        jobs = executor.submit_array([PackRunner([pack]) for pack in packs])
    except Exception as err:  # no SLURM here, or sbatch's own message (bad partition, too many GPUs, ...)
        raise SubmitError(f"SLURM refused the job array: {str(err).strip()}") from None
    return _recorded("slurm", folder, resources, jobs, packs), jobs


def local_lanes(packs: list[Pack], resources: Resources) -> list[list[Pack]]:
    """Deal packs round-robin into lanes that run side by side on this machine."""
    cpus = max(1, (os.cpu_count() or 1) // resources.cpus_per_task)
    n = max(1, min(resources.array_parallelism, len(packs), cpus))
    return [packs[i::n] for i in range(n)]


def _submit_local(resources: Resources, packs: list[Pack], jobs_dir: Path) -> tuple[Submission, list]:
    import psutil
    import submitit

    packs = [replace(pack, setup=tuple(resources.setup)) for pack in packs]
    lanes = local_lanes(packs, resources)
    folder = _folder(jobs_dir)
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
        records.append(JobRecord(job.job_id, [p[0] for pack in lane for p in pack.points], pid, started))
    return Submission(now_iso(), "local", host(), str(folder), resources.to_json(), records), jobs


def _submit_debug(resources: Resources, packs: list[Pack], jobs_dir: Path) -> tuple[Submission, list]:
    import submitit

    folder = _folder(jobs_dir)
    executor = submitit.DebugExecutor(folder=folder)
    jobs = executor.submit_array([PackRunner([pack]) for pack in packs])
    return _recorded("debug", folder, resources, jobs, packs), jobs


def submit(arrays: list[tuple[Resources, list[Pack]]], executor: str, jobs_dir: str | Path,
           name: str) -> list[tuple[Submission, list]]:
    """Submit each (resources, packs) array with ``executor`` (slurm | local | debug, already resolved).

    Returns (recorded submission, submitit jobs) per array; the debug executor has run everything when
    this returns. Raises :class:`SubmitError` if the scheduler refuses (earlier arrays stay recorded).
    """
    jobs_dir = Path(jobs_dir)
    jobs_dir.mkdir(parents=True, exist_ok=True)
    arrays = [(res, packs) for res, packs in arrays if packs]
    out = []
    if executor == "local" and arrays:  # one machine: all packs share one set of lanes
        widest = max((res for res, _ in arrays), key=lambda r: (r.timeout_min, r.gpus_per_node))
        arrays = [(widest, [pack for _, packs in arrays for pack in packs])]
    for resources, packs in arrays:
        if executor == "slurm":
            sub, jobs = _submit_slurm(resources, packs, jobs_dir, name)
        elif executor == "local":
            sub, jobs = _submit_local(resources, packs, jobs_dir)
        elif executor == "debug":
            sub, jobs = _submit_debug(resources, packs, jobs_dir)
        else:
            raise ValueError(f"unknown executor {executor!r}")
        record(jobs_dir, sub)
        out.append((sub, jobs))
    if executor == "debug":
        for _, jobs in out:
            for job in jobs:
                job.result()
    return out
