"""What the sweep commands do, apart from parsing flags and printing: states, selection, submission, waiting.

A point of a sweep is in one state: ``complete`` / ``failed`` (its group in the store has the marker),
``corrupt`` (its group cannot be read as written: left in place until ``--retry-corrupt`` moves it aside),
``running`` / ``pending`` (not in the store, and the latest job that holds it is running / queued), or
``missing`` (neither: never submitted, cancelled, or its job ended without writing it).

Submitting happens under the store's lock (:class:`analysis.lock.StoreLock`): one submitter per store, so
two ``submit`` of one sweep never run a point twice.
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from analysis import progress
from analysis.lock import LockBusy, StoreLock
from analysis.paths import os_problem
from analysis.store import (
    COMPLETE,
    CORRUPT,
    FAILED,
    FILES,
    INCOMPLETE,
    MARKER,
    StoreScan,
    create_store,
    move_corrupt_aside,
    scan_points,
    scan_store,
)
from hpc.provenance import now_iso, store_provenance
from hpc.tasks import Pack, PointTask
from slurm import backends
from slurm import jobs as jobbook
from slurm.backends import Backend
from slurm.resources import jobs_dir_for
from slurm.status import SchedulerView, scheduler_view
from slurm.submit import SubmitError, submit
from sweeps.errors import SpecError
from sweeps.plan import Plan, free_params, pack
from sweeps.spec import Sweep

RUNNING, PENDING, MISSING = "running", "pending", "missing"
ORDER = (COMPLETE, FAILED, CORRUPT, RUNNING, PENDING, MISSING)


@dataclass
class SweepState:
    """Every point's state, from one scan of the store (``stored``) and one look at the scheduler (``view``)."""

    points: list[PointTask]
    states: dict[str, str]  # point id -> one of ORDER
    stored: StoreScan
    view: SchedulerView | None

    def counts(self) -> Counter:
        return Counter(self.states.values())

    def ids(self, *states: str) -> list[str]:
        return [p.point_id for p in self.points if self.states[p.point_id] in states]

    @property
    def stored_other(self) -> int:
        """Groups in the store that are not points of this sweep (an earlier version of it)."""
        return sum(1 for pid in self.stored.groups if pid not in self.states)

    @property
    def reasons(self) -> dict[str, str]:
        """Why each corrupt point of the sweep is corrupt."""
        return {pid: self.stored.groups[pid].reason or "" for pid in self.ids(CORRUPT)}


def store_view(sweep: Sweep, check: str = FILES) -> StoreScan:
    """The one scan of the sweep's store that ``plan``, ``status``, ``submit`` and ``resume`` read (empty when
    there is no store yet; a damaged root or something else at the store's path is a :class:`BadStore`).
    ``check``: how hard stored points are checked (:mod:`analysis.store`)."""
    return scan_store(sweep.store, check)


def sweep_state(sweep: Sweep, points: list[PointTask], finished_jobs: bool = True, check: str = FILES) -> SweepState:
    """The state of every point; ``finished_jobs=False`` asks the scheduler only about queued jobs."""
    stored = store_view(sweep, check)
    submissions = jobbook.load(jobs_dir_for(sweep.store))
    view = scheduler_view(submissions, finished=finished_jobs) if submissions else None
    latest = jobbook.latest_job_of_points(submissions)
    states = {}
    for point in points:
        state = stored.state(point.point_id)
        if state == INCOMPLETE:
            state = MISSING
        if state in (MISSING, FAILED) and view is not None and point.point_id in latest:
            sub, job = latest[point.point_id]
            retried = state == FAILED and sub.submitted > str(stored.attrs(point.point_id).get("ended") or "")
            if view.active(job.job_id) and (state == MISSING or retried):
                state = RUNNING if view.running(job.job_id) else PENDING
        states[point.point_id] = state
    return SweepState(points, states, stored, view)


def to_run(state: SweepState, retry_failed: bool, retry_corrupt: bool = False) -> list[PointTask]:
    """Points to submit: missing ones (and failed / corrupt ones when asked), never running/pending ones."""
    wanted = {MISSING} | ({FAILED} if retry_failed else set()) | ({CORRUPT} if retry_corrupt else set())
    return [p for p in state.points if state.states[p.point_id] in wanted]


def move_aside(sweep: Sweep, state: SweepState) -> list[tuple[str, Path]]:
    """Move the sweep's corrupt point groups to ``points/.corrupt/`` (never deleted); [(id, where)]."""
    return [(pid, move_corrupt_aside(sweep.store, pid)) for pid in state.ids(CORRUPT)]


def outermost_missing(path: Path) -> Path | None:
    """The outermost folder of ``path``'s ancestry (``path`` included) that does not exist yet, or None."""
    path = Path(os.path.abspath(path))
    made = None
    while not os.path.lexists(path) and path != path.parent:
        made, path = path, path.parent
    return made


def remove_made_folders(start: Path, made: Path | None) -> None:
    """Remove the now empty folders from ``start`` up to ``made`` (the ones a failed submission created)."""
    if made is None:
        return
    folder = Path(os.path.abspath(start))
    made = Path(os.path.abspath(made))
    while True:
        try:
            folder.rmdir()  # only an empty folder: whatever someone else put there stays
        except OSError:
            return
        if folder == made or folder == folder.parent:
            return
        folder = folder.parent


@contextmanager
def store_lock(sweep: Sweep, command: str, wait_s: float = 0.0) -> Iterator[StoreLock]:
    """Hold the store's submit lock; a busy lock is one :class:`SpecError` saying who holds it."""
    lock = StoreLock(sweep.store, command, wait_s)
    try:
        lock.acquire()
    except LockBusy as busy:
        raise SpecError("store", f"{sweep.store} is busy: another submit of this store is running ({busy})",
                        f"wait for it to end (or pass --wait-lock SECONDS); if that process is gone, remove "
                        f"{busy.path}") from None
    except OSError as err:
        raise os_problem(err, "store", lock.path) from None
    try:
        yield lock
    finally:
        lock.release()


class Interrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM arrived: ``signal_name`` says which (a KeyboardInterrupt, so that no
    ``except Exception`` on the way, e.g. a point recorded as failed, swallows it)."""

    def __init__(self, signal_name: str):
        self.signal_name = signal_name
        super().__init__(signal_name)


@contextmanager
def signals_raise() -> Iterator[None]:
    """SIGINT and SIGTERM raise :class:`Interrupted` in the main thread (restored afterwards)."""
    def handler(signum, frame):
        raise Interrupted(signal.Signals(signum).name)

    old = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, previous in old.items():
            signal.signal(sig, previous)


@contextmanager
def signals_deferred(note) -> Iterator[list[str]]:
    """SIGINT and SIGTERM are noted (``note(name)`` is called) but do not interrupt the block; the yielded
    list holds the names of those that arrived, for the caller to act on afterwards."""
    arrived: list[str] = []

    def handler(signum, frame):
        name = signal.Signals(signum).name
        arrived.append(name)
        note(name)

    old = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield arrived
    finally:
        for sig, previous in old.items():
            signal.signal(sig, previous)


def stop_submissions(submissions: list, wait_s: float = 15.0) -> tuple[list[str], list[str]]:
    """Cancel every job of ``submissions`` and, for local ones, wait until they have ended.

    Returns (stopped job ids, problems: jobs that could not be stopped or are still running).
    """
    from slurm.status import cancel, scheduler_view

    done, problems = cancel(submissions)
    attached = [s for s in submissions if not backends.get(s.executor).detached]  # those we wait for
    deadline = time.monotonic() + wait_s
    while attached and time.monotonic() < deadline:
        view = scheduler_view(attached)
        alive = [j.job_id for s in attached for j in s.jobs if view.state(j.job_id) == "RUNNING"]
        if not alive:
            break
        time.sleep(0.2)
    else:
        if attached:
            view = scheduler_view(attached)
            alive = [(s.executor, j.job_id) for s in attached for j in s.jobs if view.state(j.job_id) == "RUNNING"]
            problems += [f"{executor} job {job_id} is still running" for executor, job_id in alive]
    return done, problems


def packs_of(plan: Plan, sweep: Sweep, retry_failed: bool) -> list[tuple]:
    """(resources, [Pack]) per array of the plan."""
    before = now_iso() if retry_failed else None
    work_dir = str(jobs_dir_for(sweep.store))
    return [(array[0].resources, [Pack(str(sweep.store), work_dir, job.points, before) for job in array])
            for array in plan.arrays if array]


def submit_sweep(sweep: Sweep, points: list[PointTask], backend: Backend, retry_failed: bool, snapshot: bool = True):
    """Create/update the store, pack ``points`` and submit them; returns [(Submission, submitit jobs)].

    Call it holding the store's lock. If the scheduler refuses the first array, the store and job folder
    this call created are removed again (only those: they are checked to be new, and empty folders only
    are removed above them by the caller, :func:`remove_made_folders`).
    """
    jobs_dir = jobs_dir_for(sweep.store)
    new_store, new_jobs = not os.path.lexists(sweep.store), not os.path.lexists(jobs_dir)
    create_store(sweep.store, sweep.info(), store_provenance())
    plan = pack(points, sweep.resources_for, free_params(sweep))
    try:
        return submit(packs_of(plan, sweep, retry_failed), backend, jobs_dir, sweep.name, snapshot)
    except (SubmitError, OSError) as err:
        if new_jobs and not jobbook.load(jobs_dir):
            shutil.rmtree(jobs_dir, ignore_errors=True)
        if new_store and not scan_points(sweep.store):
            shutil.rmtree(sweep.store, ignore_errors=True)
        if isinstance(err, OSError):
            raise os_problem(err, "store", jobs_dir) from None
        raise


def summary(counts: Counter, total: int) -> str:
    return f"{counts[COMPLETE]}/{total} complete, {counts[FAILED]} failed, {counts[RUNNING]} running, " \
           f"{counts[PENDING]} pending"


def wait(sweep: Sweep, points: list[PointTask], poll_s: float = 2.0, log_every_s: float = 30.0) -> SweepState:
    """Block until no job of the sweep is queued or running; a bar on a terminal, else a line on change (at
    most every ``log_every_s``). Polls squeue only (never sacct) every ``poll_s``."""
    total = len(points)
    last_line, last_time = "", 0.0
    with progress.bar(sweep.name, total=total, counted=True, transient=False) as shown:
        while True:
            state = sweep_state(sweep, points, finished_jobs=False, check=MARKER)
            counts = state.counts()
            line = summary(counts, total)
            if progress.wanted():
                shown.update(completed=counts[COMPLETE] + counts[FAILED], description=line)
            elif line != last_line and time.monotonic() - last_time >= log_every_s:
                print(line, file=sys.stderr, flush=True)
                last_line, last_time = line, time.monotonic()
            unknown = state.view is not None and any("squeue unavailable" in n for n in state.view.notes)
            if counts[RUNNING] + counts[PENDING] == 0 and not (unknown and counts[MISSING]):
                return sweep_state(sweep, points)
            time.sleep(poll_s)
