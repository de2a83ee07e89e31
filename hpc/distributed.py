"""One point computed by several processes: ``jax.distributed`` under SLURM's ``srun``.

A job asked with ``nodes`` x ``tasks_per_node`` > 1 runs one Python per task, started by ``srun`` (submitit's
batch script). :func:`process_group` reads who this process is from SLURM's variables (no JAX imported);
:func:`initialize` calls ``jax.distributed.initialize()`` once per process, before the point's experiment
touches JAX, so that ``jax.devices()`` lists every process's devices (the data-parallel mesh spans them all).
Without ``srun`` (a batch script that runs Python itself, the local executor inside an allocation) SLURM's
step variables are missing: JAX would find no cluster and the processes would never meet, so this says so in
the task log and the process runs the point alone.

Only process 0 writes the store. Every process must run the same points in the same order (their collectives
pair up), so process 0 decides which points of a pack run and leaves that list in the work folder
(:func:`share_plan`), and the others read it (:func:`read_plan`) instead of looking at a store that process 0
may already be writing.

When a point fails on another process, that process leaves a note in the work folder (:func:`report_failure`:
its index and error) before it stops. Process 0 may then be blocked in a collective that will never complete
(JAX would only notice the missing process after its heartbeat timeout, 100 s, and then end process 0 without
a record), so while it runs a point a :class:`FailureWatch` thread looks for such notes and, on the first,
records the point as failed naming that process and ends process 0 at once.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

PLAN_WAIT_S = 600.0  # how long a process waits for process 0's list of points (it may still be starting)
WATCH_EVERY_S = 0.5  # how often process 0 looks for another process's failure note while it runs a point


@dataclass(frozen=True)
class ProcessGroup:
    """This process among the processes of one task: ``index`` of ``count``, on ``nodes``; ``launched``:
    started by ``srun`` with the step's variables (else ``why`` says what is missing)."""

    index: int = 0
    count: int = 1
    nodes: tuple[str, ...] = ()
    launched: bool = False
    why: str = ""
    job: str = field(default="", compare=False)

    @property
    def distributed(self) -> bool:
        """Several processes compute each point together."""
        return self.count > 1 and self.launched

    @property
    def writes(self) -> bool:
        """Whether this process writes points to the store (process 0 alone)."""
        return self.index == 0 or not self.distributed

    def record(self) -> dict:
        """What a point records of the processes that computed it."""
        return {"count": self.count if self.distributed else 1, "index": self.index if self.distributed else 0,
                "nodes": list(self.nodes), "distributed": self.distributed}


def expand_nodelist(text: str) -> tuple[str, ...]:
    """SLURM's compact host list (``node[01-03,07],gpu5``) as host names."""
    hosts: list[str] = []
    i = 0
    while i < len(text):
        j = i
        while j < len(text) and text[j] not in ",[":
            j += 1
        prefix = text[i:j]
        if j < len(text) and text[j] == "[":
            end = text.index("]", j)
            for part in text[j + 1:end].split(","):
                low, _, high = part.partition("-")
                if high:
                    hosts += [f"{prefix}{n:0{len(low)}d}" for n in range(int(low), int(high) + 1)]
                else:
                    hosts.append(prefix + low)
            j = end + 1
        elif prefix:
            hosts.append(prefix)
        i = j + 1 if j < len(text) and text[j] == "," else j
    return tuple(hosts)


def _int(env: dict, name: str, default: int) -> int:
    try:
        return int(env.get(name, default))
    except ValueError:
        return default


def process_group(env: dict | None = None) -> ProcessGroup:
    """Who this process is, from SLURM's variables (``env``: ``os.environ``)."""
    env = os.environ if env is None else env
    job = env.get("SLURM_JOB_ID", "")
    tasks = _int(env, "SLURM_NTASKS", 1)
    if not job or tasks <= 1:
        return ProcessGroup(nodes=expand_nodelist(env.get("SLURM_JOB_NODELIST", "")), job=job)
    step = ("SLURM_STEP_NODELIST", "SLURM_PROCID", "SLURM_LOCALID", "SLURM_STEP_NUM_TASKS")
    missing = [name for name in step if name not in env]
    if missing:
        why = (f"SLURM job {job} has {tasks} tasks, but this process was not started by srun ({', '.join(missing)} "
               "not set): it runs its points alone (jax.distributed is not initialised)")
        return ProcessGroup(0, tasks, expand_nodelist(env.get("SLURM_JOB_NODELIST", "")), False, why, job)
    return ProcessGroup(_int(env, "SLURM_PROCID", 0), _int(env, "SLURM_STEP_NUM_TASKS", tasks),
                        expand_nodelist(env["SLURM_STEP_NODELIST"]), True, "", job)


_INITIALIZED: list[ProcessGroup] = []


def initialize(group: ProcessGroup, log=print) -> bool:
    """Join the task's other processes with ``jax.distributed.initialize()`` (once per process; before any
    JAX computation). Returns whether this process is part of a distributed run; says why not in the log."""
    if not group.distributed:
        if group.why:
            log(f"  note: {group.why}")
        return False
    if _INITIALIZED:
        return True
    import jax

    started = time.perf_counter()
    # the coordinator, process count and index come from SLURM's variables; raises when JAX already computed
    jax.distributed.initialize()
    _INITIALIZED.append(group)
    log(f"  jax.distributed: process {jax.process_index()} of {jax.process_count()} on {','.join(group.nodes)}; "
        f"{jax.local_device_count()} local of {jax.device_count()} devices "
        f"({time.perf_counter() - started:.1f} s)")
    if (jax.process_index(), jax.process_count()) != (group.index, group.count):
        raise RuntimeError(f"JAX sees process {jax.process_index()} of {jax.process_count()}, SLURM says "
                           f"{group.index} of {group.count}")
    return True


def plan_path(work_dir: str | Path, group: ProcessGroup, point_ids: list[str]) -> Path:
    """Where process 0 leaves the points of one pack it runs (per job, requeue and pack)."""
    import hashlib

    digest = hashlib.sha256(",".join(point_ids).encode()).hexdigest()[:12]
    restart = os.environ.get("SLURM_RESTART_COUNT", "0")
    return Path(work_dir) / "distributed" / f"{group.job or 'job'}-r{restart}-{digest}.json"


def share_plan(path: Path, to_run: list[str]) -> None:
    """Process 0: publish the points every process of the task runs (written whole, then renamed)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    staged = path.with_suffix(f".{os.getpid()}.tmp")
    staged.write_text(json.dumps({"run": to_run}))
    os.replace(staged, path)


def read_plan(path: Path, wait_s: float = PLAN_WAIT_S) -> list[str]:
    """Another process: the points process 0 runs (waits for its list; TimeoutError after ``wait_s``)."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            return list(json.loads(path.read_text())["run"])
        except FileNotFoundError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"process 0 left no list of points at {path} within {wait_s:.0f} s") from None
            time.sleep(0.2)


def _note_prefix(work_dir: str | Path, group: ProcessGroup, point_id: str) -> tuple[Path, str]:
    restart = os.environ.get("SLURM_RESTART_COUNT", "0")
    return Path(work_dir) / "distributed", f"{group.job or 'job'}-r{restart}-{point_id}-failed-p"


def report_failure(work_dir: str | Path, group: ProcessGroup, point_id: str, error: str) -> Path:
    """Another process: leave a note that ``point_id`` failed here (read by process 0's :class:`FailureWatch`)."""
    folder, prefix = _note_prefix(work_dir, group, point_id)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{prefix}{group.index}.json"
    staged = path.with_suffix(f".{os.getpid()}.tmp")
    staged.write_text(json.dumps({"process": group.index, "count": group.count, "error": error}))
    os.replace(staged, path)
    return path


def failures(work_dir: str | Path, group: ProcessGroup, point_id: str, only: int | None = None) -> list[dict]:
    """The failure notes processes left for ``point_id`` in this job (and requeue), lowest process first
    (``only``: that process's)."""
    folder, prefix = _note_prefix(work_dir, group, point_id)
    notes = []
    for path in sorted(folder.glob(f"{prefix}{'*' if only is None else only}.json")):
        try:
            notes.append(json.loads(path.read_text()))
        except (OSError, ValueError):  # being renamed into place: read next time
            continue
    return sorted(notes, key=lambda n: n["process"])


class FailureWatch:
    """Process 0, while it runs one point: a thread that looks every ``every_s`` for another process's failure
    note for that point and calls ``on_failure(note)`` on the first (which records the point and ends the
    process: the main thread may be stuck in a collective). ``fired`` says whether it did; after the ``with``
    block it never fires."""

    def __init__(self, work_dir: str | Path, group: ProcessGroup, point_id: str, on_failure: Callable[[dict], None],
                 every_s: float = WATCH_EVERY_S):
        self.work_dir, self.group, self.point_id = work_dir, group, point_id
        self.on_failure, self.every_s = on_failure, every_s
        self.fired = False
        self._stop, self._lock = threading.Event(), threading.Lock()
        self._thread = threading.Thread(target=self._watch, name=f"failure-watch-{point_id}", daemon=True)

    def __enter__(self) -> FailureWatch:
        if self.group.distributed and self.group.writes:
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        with self._lock:  # waits while a firing watch records the point
            self._stop.set()

    def _watch(self) -> None:
        while not self._stop.wait(self.every_s):
            notes = failures(self.work_dir, self.group, self.point_id)
            if notes:
                with self._lock:
                    if self._stop.is_set():
                        return
                    self.fired = True
                    self.on_failure(notes[0])
                return


def end_process(code: int = 1) -> None:
    """End this process now (its main thread may be blocked in a collective that never completes)."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
