"""Run a pack of points on a node and write each into the store.

A pack is plain data (:mod:`hpc.tasks`: the store, a work folder, :class:`PointTask` s): ``sweeps`` builds
it, ``slurm`` submits it, and this module runs it. For each point not yet complete: the registered
experiment runs with a :class:`RunContext` (seed from the params, the devices it may use, a checkpoint folder
that survives requeues, progress lines in the job log); the result goes into the store with its
:class:`PointRecord` and the completion marker last.
A point that raises, returns something other than a Dataset, or breaks ``must_be_finite`` is written as
failed with its error text, and the pack goes on. Experiments with ``fresh_process`` run each point in a
new Python process (:mod:`hpc.point_process`).

A task of several processes (``nodes`` x ``tasks_per_node`` > 1, started by ``srun``: :mod:`hpc.distributed`)
computes each point together: every process joins ``jax.distributed`` before the experiment runs and runs
the points process 0 chose; process 0 alone writes the store (and the checkpoints), the others compute and
go on. A point's completion never waits for another process: process 0 writes it when its own run returns.

:class:`PackRunner` is submitit-``Checkpointable``: on a timeout or preemption signal submitit requeues it
as it was submitted, and the requeued run skips every point the store already holds.
"""

from __future__ import annotations

import collections
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import traceback
from pathlib import Path

from submitit.helpers import Checkpointable

from analysis.store import (
    COMPLETE,
    CORRUPT,
    FAILED,
    INCOMPLETE,
    PointExists,
    point_state,
    read_point_attrs,
    remove_leftovers,
    state_of,
    write_point,
)
from diffbrain import experiments
from diffbrain.context import RunContext
from hpc import distributed, provenance
from hpc.devices import PointDevices
from hpc.tasks import Pack, PointTask, point_record

__all__ = ["COMPUTED", "INTERRUPTED", "Pack", "PackRunner", "PointTask", "run_pack", "run_point", "run_point_fresh"]

PROGRESS_EVERY_S = 10.0
INTERRUPTED = "interrupted"  # the point's process was stopped by a signal: left incomplete, rerun later
COMPUTED = "computed"  # a process other than 0 of a distributed task: computed its part, process 0 writes


def log(message: str) -> None:
    print(f"{provenance.now_iso()[:19]} {message}", flush=True)


class ProgressLog:
    """``ctx.progress`` for a point: a line in the job log at most every 10 s (and at the end)."""

    def __init__(self, point_id: str, every_s: float = PROGRESS_EVERY_S):
        self.point_id, self.every_s, self.last = point_id, every_s, 0.0

    def __call__(self, fraction: float, message: str = "") -> None:
        now = time.monotonic()
        if fraction >= 1.0 or now - self.last >= self.every_s:
            self.last = now
            log(f"  {self.point_id} {fraction:6.1%} {message}")


def check_result(experiment, result) -> str | None:
    """Why a result is not a successful point, or None."""
    import numpy as np
    import xarray as xr

    if not isinstance(result, xr.Dataset):
        return f"experiment {experiment.name!r} returned {type(result).__name__}, not an xarray.Dataset"
    for name in experiment.must_be_finite:
        if name not in result.variables:
            return f"result has no variable {name!r}, which experiment {experiment.name!r} declares must be finite"
        values = np.asarray(result[name].values)
        if values.dtype.kind in "fc":
            bad = int(values.size - np.isfinite(values).sum())
            if bad:
                return f"{name} is not finite ({bad} of {values.size} values are NaN or infinite)"
    return None


def checkpoint_dir(work_dir: str | Path, point_id: str) -> Path:
    return Path(work_dir) / "checkpoints" / point_id


def run_point(store: str, work_dir: str, task: PointTask) -> str:
    """Run one point in this process and write it; returns "complete" or "failed" ("computed" on a process
    other than 0 of a distributed task, which writes nothing)."""
    exp = experiments.get(task.experiment)
    group = distributed.process_group()
    distributed.initialize(group, log)  # before the experiment computes anything with JAX
    ckpt = checkpoint_dir(work_dir, task.point_id)
    ckpt.mkdir(parents=True, exist_ok=True)
    devices = PointDevices()
    ctx = RunContext(seed=task.seed, point_id=task.point_id, checkpoint_dir=ckpt,
                     progress=ProgressLog(task.point_id), devices=devices, writes_checkpoints=group.writes)
    started, t0 = provenance.now_iso(), time.perf_counter()
    result, error = None, None

    def failed_elsewhere(note: dict) -> None:  # process 0, from its watch thread: another process's part failed
        why = (f"process {note['process']} of {note['count']} failed while process 0 was still in the point "
               f"(its collectives would never complete):\n{note['error']}")
        record = point_record(task, FAILED, why, started, provenance.now_iso(), time.perf_counter() - t0, devices,
                              processes=group.record())
        try:
            write_point(store, task.point_id, None, record)
        except PointExists as err:
            log(f"  {task.point_id}: {err}")
        log(f"  {task.point_id}: failed on process {note['process']} of {note['count']}; recorded as failed, "
            "this process stops")
        shutil.rmtree(ckpt, ignore_errors=True)
        distributed.end_process(1)

    watch = distributed.FailureWatch(work_dir, group, task.point_id, failed_elsewhere)
    try:
        with watch:
            result = exp.run(exp.validate(task.params), ctx)
            error = check_result(exp, result)
    except Exception:  # a failing point is recorded and the pack goes on (signals are BaseException)
        error = traceback.format_exc()
    if watch.fired:  # recorded by the watch
        return FAILED
    wall = time.perf_counter() - t0
    if not group.writes:
        return _computed_elsewhere(task, group, error, work_dir)
    record = point_record(task, FAILED if error else COMPLETE, error, started, provenance.now_iso(), wall, devices,
                          processes=group.record())
    import xarray as xr

    dataset = result if isinstance(result, xr.Dataset) else None
    try:
        write_point(store, task.point_id, dataset, record)
    except PointExists as err:  # another task wrote it meanwhile: theirs stays
        log(f"  {task.point_id}: {err}")
        return state_of(read_point_attrs(store, task.point_id))
    except Exception:
        why = "the result could not be written:\n" + traceback.format_exc()
        record.status, record.error = FAILED, (error or "") + why
        write_point(store, task.point_id, None, record)
    shutil.rmtree(ckpt, ignore_errors=True)
    return record.status


def _computed_elsewhere(task: PointTask, group: distributed.ProcessGroup, error: str | None,
                        work_dir: str) -> str:
    """A process other than 0 after the point: nothing to write. If its part failed, it leaves a note for process
    0 (which records the point as failed, naming this process, and stops) and the task stops here (it must not
    start the next point while process 0 may still wait in this one's collectives)."""
    if error:
        if not distributed.failures(work_dir, group, task.point_id, only=group.index):  # a fresh child's stays
            distributed.report_failure(work_dir, group, task.point_id, error)
        log(f"  {task.point_id}: process {group.index} of {group.count} failed; process 0 records the point:\n"
            f"{error}")
        raise RuntimeError(f"point {task.point_id} failed on process {group.index} of {group.count}")
    log(f"  {task.point_id}: process {group.index} of {group.count} computed its part; process 0 writes the point")
    return COMPUTED


def _describe_exit(code: int) -> str:
    if code < 0:
        try:
            return f"signal {signal.Signals(-code).name}"
        except ValueError:
            return f"signal {-code}"
    return f"exit status {code}"


SETUP_DONE = "diffbrain: setup lines done"


def _command(setup: tuple[str, ...]) -> list[str]:
    """``python -m hpc.point_process``, behind the ``setup`` lines in one shell when there are some (so that
    what they set, e.g. ``module load``, reaches the process); their output goes to the task log."""
    if not setup:
        return [sys.executable, "-m", "hpc.point_process"]
    shell = shutil.which("bash") or "/bin/sh"
    script = "\n".join(["set -e", "{", *setup, "} </dev/null", f'echo "{SETUP_DONE}" >&2',
                        'exec "$0" -m hpc.point_process'])
    return [shell, "-c", script, sys.executable]


def run_in_process_child(payload: dict, what: str, setup: tuple[str, ...] = ()) -> tuple[int, str]:
    """Run :mod:`hpc.point_process` with ``payload`` (after the ``setup`` shell lines); its stderr goes on
    to ours (last lines kept)."""
    env = dict(os.environ, DIFFBRAIN_PARENT_PID=str(os.getpid()))
    if setup:
        log(f"  {what}: running {len(setup)} setup line(s)")
    proc = subprocess.Popen(_command(setup), stdin=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    tail: collections.deque[str] = collections.deque(maxlen=40)

    def forward():
        for line in proc.stderr:
            tail.append(line)
            sys.stderr.write(line)

    reader = threading.Thread(target=forward, daemon=True)
    reader.start()
    try:
        try:
            proc.stdin.write(json.dumps(payload))
            proc.stdin.close()
        except BrokenPipeError:  # the process ended before reading its job (a failing setup line)
            pass
        code = proc.wait()
    finally:  # a requeue signal raises SystemExit in this process: never leave the child behind
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    reader.join(timeout=5)
    if code != 0:
        log(f"  {what}: process ended with {_describe_exit(code)}")
    return code, "".join(tail)


def run_point_fresh(store: str, work_dir: str, task: PointTask) -> str:
    """Run one point in a new Python process; a crash of that process is recorded as a failed point."""
    payload = {"kind": "point", "store": store, "work_dir": work_dir, "point": task.to_json()}
    started = provenance.now_iso()
    code, tail = run_in_process_child(payload, task.point_id)
    group = distributed.process_group()
    if not group.writes:
        return _computed_elsewhere(task, group, f"its process ended with {_describe_exit(code)}:\n{tail}"
                                   if code else None, work_dir)
    notes = distributed.failures(work_dir, group, task.point_id) if group.distributed else []
    if notes:  # the point's process recorded it as failed on another process's note: the task stops here
        raise RuntimeError(f"point {task.point_id} failed on process {notes[0]['process']} of {notes[0]['count']}")
    state = state_of(read_point_attrs(store, task.point_id))
    if state != INCOMPLETE:
        return state
    if code < 0 and -code in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        return INTERRUPTED
    error = f"the point's process ended with {_describe_exit(code)} before writing a result; last output:\n{tail}"
    record = point_record(task, FAILED, error, started, provenance.now_iso(), float("nan"), measured=False)
    try:
        write_point(store, task.point_id, None, record)
    except PointExists:
        return state_of(read_point_attrs(store, task.point_id))
    return FAILED


def _should_run(store: str, point_id: str, pack: Pack) -> tuple[bool, str]:
    """(run it?, why not): complete and corrupt points are never rerun here (a corrupt one is moved aside
    by ``sweep resume --retry-corrupt`` before it is submitted again)."""
    current = point_state(store, point_id)
    if current is None or current.state == INCOMPLETE:
        return True, ""
    if current.state == COMPLETE:
        return False, "already in the store: skipped"
    if current.state == CORRUPT:
        return False, f"corrupt ({current.reason}): left in place (sweep resume --retry-corrupt)"
    before = pack.retry_failed_before
    if before and str((current.attrs or {}).get("ended") or "") < before:
        return True, ""
    return False, "already in the store (failed): skipped"


def _points_to_run(pack: Pack, group: distributed.ProcessGroup) -> dict[str, str]:
    """{point id: why it is skipped} for the points of ``pack`` not to run; on a distributed task process 0
    decides and the others follow its list (the same points, in the same order, on every process)."""
    if group.writes:
        skip = {}
        for task in pack.points:
            run, why = _should_run(pack.store, task.point_id, pack)
            if not run:
                skip[task.point_id] = why
        if group.distributed:
            distributed.share_plan(distributed.plan_path(pack.work_dir, group, pack.point_ids),
                                   [pid for pid in pack.point_ids if pid not in skip])
        return skip
    run = set(distributed.read_plan(distributed.plan_path(pack.work_dir, group, pack.point_ids)))
    return {pid: "skipped by process 0 (already in the store)" for pid in pack.point_ids if pid not in run}


def run_pack(pack: Pack) -> dict[str, str]:
    """Run every point of ``pack`` that the store does not hold yet; ``{point_id: outcome}``."""
    outcome = {}
    n = len(pack.points)
    group = distributed.process_group()
    log(f"pack of {n} points -> {pack.store} (host {provenance.host()}, job {provenance.job_id()}, "
        f"restart {provenance.restart_count()}"
        + (f", process {group.index} of {group.count}" if group.distributed else "") + ")")
    if group.writes:
        for leftover in remove_leftovers(pack.store, pack.point_ids):
            log(f"removed {leftover.name}, left by an earlier attempt that was killed while writing")
    skipped = _points_to_run(pack, group)
    for i, task in enumerate(pack.points, 1):
        run, why = task.point_id not in skipped, skipped.get(task.point_id, "")
        if not run:
            outcome[task.point_id] = "skipped"
            log(f"[{i}/{n}] {task.point_id} {why}")
            continue
        log(f"[{i}/{n}] {task.point_id} {task.experiment} starts")
        t0 = time.perf_counter()
        runner = run_point_fresh if experiments.get(task.experiment).fresh_process else run_point
        outcome[task.point_id] = runner(pack.store, pack.work_dir, task)
        log(f"[{i}/{n}] {task.point_id} {outcome[task.point_id]} after {time.perf_counter() - t0:.1f} s")
    return outcome


def run_pack_fresh(pack: Pack) -> dict[str, str]:
    """Run ``pack`` in a new Python process (one process and one compilation per pack, as on SLURM), after
    its setup lines; if a setup line fails, the pack's points are recorded as failed with its output."""
    started = provenance.now_iso()
    code, tail = run_in_process_child({"kind": "pack", "pack": pack.to_json()}, f"pack of {len(pack.points)}",
                                      pack.setup)
    if pack.setup and code != 0 and SETUP_DONE not in tail:
        error = (f"a setup line failed before the pack ran ({_describe_exit(code)}); setup lines: "
                 f"{list(pack.setup)}; output:\n{tail}")
        for task in pack.points:
            if point_state(pack.store, task.point_id) is None:
                record = point_record(task, FAILED, error, started, provenance.now_iso(), None, measured=False)
                try:
                    write_point(pack.store, task.point_id, None, record)
                except PointExists:
                    pass
    return {pid: state_of(read_point_attrs(pack.store, pid)) for pid in pack.point_ids}


class PackRunner(Checkpointable):
    """What submitit runs: one pack per SLURM array task; several packs per local lane (``fresh_packs``:
    each pack in its own process). On a timeout/preemption signal submitit checkpoints it (its state is
    just the packs) and requeues it; the requeued run skips every point already in the store."""

    def __init__(self, packs: list[Pack], fresh_packs: bool = False):
        self.packs = list(packs)
        self.fresh_packs = fresh_packs

    def __call__(self) -> dict[str, str]:
        outcome: dict[str, str] = {}
        for pack in self.packs:
            outcome.update(run_pack_fresh(pack) if self.fresh_packs else run_pack(pack))
        return outcome
