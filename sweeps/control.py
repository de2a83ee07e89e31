"""What the sweep commands do, apart from parsing flags and printing: states, selection, submission, waiting.

A point of a sweep is in one state: ``complete`` / ``failed`` (its group in the store has the marker),
``running`` / ``pending`` (not in the store, and the latest job that holds it is running / queued), or
``missing`` (neither: never submitted, cancelled, or its job ended without writing it).
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from collections import Counter
from dataclasses import dataclass

from analysis.store import COMPLETE, FAILED, INCOMPLETE, create_store, is_store, point_states, read_point_attrs
from hpc.provenance import now_iso, store_provenance
from hpc.runner import Pack
from slurm import jobs as jobbook
from slurm.resources import jobs_dir_for
from slurm.status import RUNNING_STATES, SchedulerView, scheduler_view
from slurm.submit import SubmitError, submit
from sweeps.plan import Plan, free_params, pack
from sweeps.points import Point
from sweeps.spec import Sweep

RUNNING, PENDING, MISSING = "running", "pending", "missing"
ORDER = (COMPLETE, FAILED, RUNNING, PENDING, MISSING)


@dataclass
class SweepState:
    points: list[Point]
    states: dict[str, str]  # point id -> one of ORDER
    stored_other: int  # groups in the store that are not points of this sweep (an earlier version of it)
    view: SchedulerView | None

    def counts(self) -> Counter:
        return Counter(self.states.values())

    def ids(self, *states: str) -> list[str]:
        return [p.point_id for p in self.points if self.states[p.point_id] in states]


def stored_states(sweep: Sweep) -> dict[str, str]:
    """Store states (complete/failed/incomplete) of every group, {} when there is no store yet."""
    return point_states(sweep.store) if is_store(sweep.store) else {}


def sweep_state(sweep: Sweep, points: list[Point], finished_jobs: bool = True) -> SweepState:
    """The state of every point; ``finished_jobs=False`` asks the scheduler only about queued jobs."""
    stored = stored_states(sweep)
    submissions = jobbook.load(jobs_dir_for(sweep.store))
    view = scheduler_view(submissions, finished=finished_jobs) if submissions else None
    latest = jobbook.latest_job_of_points(submissions)
    states = {}
    for point in points:
        state = stored.get(point.point_id, INCOMPLETE)
        if state == INCOMPLETE:
            state = MISSING
        if state in (MISSING, FAILED) and view is not None and point.point_id in latest:
            sub, job = latest[point.point_id]
            retried = state == FAILED and sub.submitted > str(
                (read_point_attrs(sweep.store, point.point_id) or {}).get("ended") or "")
            if view.active(job.job_id) and (state == MISSING or retried):
                state = RUNNING if view.state(job.job_id) in RUNNING_STATES else PENDING
        states[point.point_id] = state
    ids = {p.point_id for p in points}
    return SweepState(points, states, sum(1 for pid in stored if pid not in ids), view)


def to_run(state: SweepState, retry_failed: bool) -> list[Point]:
    """Points to submit: missing ones (and failed ones with ``retry_failed``), never running/pending ones."""
    wanted = {MISSING, FAILED} if retry_failed else {MISSING}
    return [p for p in state.points if state.states[p.point_id] in wanted]


def packs_of(plan: Plan, sweep: Sweep, retry_failed: bool) -> list[tuple]:
    """(resources, [Pack]) per array of the plan."""
    before = now_iso() if retry_failed else None
    work_dir = str(jobs_dir_for(sweep.store))
    return [(array[0].resources, [Pack(str(sweep.store), work_dir, tuple(p.task() for p in job.points), before)
                                  for job in array]) for array in plan.arrays if array]


def submit_sweep(sweep: Sweep, points: list[Point], executor: str, retry_failed: bool):
    """Create/update the store, pack ``points`` and submit them; returns [(Submission, submitit jobs)].

    If the scheduler refuses the first array, a store and job folder made just now are removed again.
    """
    made = sweep.store  # the outermost folder this call creates (store, or a missing parent of it)
    while not made.parent.exists():
        made = made.parent
    new = not made.exists()
    jobs_dir = jobs_dir_for(sweep.store)
    create_store(sweep.store, sweep.info(), store_provenance())
    plan = pack(points, free_params(sweep))
    try:
        return submit(packs_of(plan, sweep, retry_failed), executor, jobs_dir, sweep.name)
    except SubmitError:
        if new and not jobbook.load(jobs_dir):
            shutil.rmtree(sweep.store, ignore_errors=True)
            shutil.rmtree(jobs_dir, ignore_errors=True)
            if made != sweep.store:
                shutil.rmtree(made, ignore_errors=True)
        raise


def _show_progress() -> bool:
    return sys.stderr.isatty() and os.environ.get("DIFFBRAIN_NO_PROGRESS", "") in ("", "0")


def summary(counts: Counter, total: int) -> str:
    return f"{counts[COMPLETE]}/{total} complete, {counts[FAILED]} failed, {counts[RUNNING]} running, " \
           f"{counts[PENDING]} pending"


def wait(sweep: Sweep, points: list[Point], poll_s: float = 2.0, log_every_s: float = 30.0) -> SweepState:
    """Block until no job of the sweep is queued or running; a rich bar on a terminal, else a line on
    change (at most every ``log_every_s``). Polls squeue only (never sacct) every ``poll_s``."""
    total = len(points)
    progress = task = None
    if _show_progress():
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                            TimeElapsedColumn(), transient=False)
        progress.start()
        task = progress.add_task(sweep.name, total=total)
    last_line, last_time = "", 0.0
    try:
        while True:
            state = sweep_state(sweep, points, finished_jobs=False)
            counts = state.counts()
            line = summary(counts, total)
            if progress is not None:
                progress.update(task, completed=counts[COMPLETE] + counts[FAILED], description=line)
            elif line != last_line and time.monotonic() - last_time >= log_every_s:
                print(line, file=sys.stderr, flush=True)
                last_line, last_time = line, time.monotonic()
            unknown = state.view is not None and any("squeue unavailable" in n for n in state.view.notes)
            if counts[RUNNING] + counts[PENDING] == 0 and not (unknown and counts[MISSING]):
                return sweep_state(sweep, points)
            time.sleep(poll_s)
    finally:
        if progress is not None:
            progress.stop()
