"""Ask the backends about a sweep's jobs, and cancel them; never hang.

Each recorded submission names its backend (:mod:`slurm.backends`), which reports its jobs' states in SLURM's
words and cancels them (SLURM: ``squeue``/``sacct``/``scancel`` with timeouts; local: the recorded controller
process). What a backend could not ask (``sacct`` without accounting) is said in ``notes``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from slurm import backends
from slurm.backends import ACTIVE, RUNNING_STATES
from slurm.jobs import JobUse, Submission

__all__ = ["ACTIVE", "RUNNING_STATES", "SchedulerView", "accounting", "cancel", "scheduler_view"]


@dataclass
class SchedulerView:
    states: dict[str, str] = field(default_factory=dict)  # job id -> SLURM-like state
    notes: list[str] = field(default_factory=list)

    def state(self, job_id: str) -> str:
        return self.states.get(job_id, "UNKNOWN")

    def active(self, job_id: str) -> bool:
        return self.state(job_id) in ACTIVE

    def running(self, job_id: str) -> bool:
        return self.state(job_id) in RUNNING_STATES


def _by_backend(submissions: Sequence[Submission]) -> dict[str, list[Submission]]:
    out: dict[str, list[Submission]] = {}
    for sub in submissions:
        out.setdefault(sub.executor, []).append(sub)
    return out


def scheduler_view(submissions: Sequence[Submission], finished: bool = True) -> SchedulerView:
    """States of every recorded job, each backend asked once for all its submissions (``finished=False``: jobs
    that left the queue may stay "UNKNOWN", which is enough to wait on)."""
    view = SchedulerView()
    for name, subs in _by_backend(submissions).items():
        states, notes = backends.get(name).states(subs, finished)
        view.states.update(states)
        view.notes += notes
    return view


def accounting(submissions: Sequence[Submission]) -> tuple[dict[str, JobUse], list[str]]:
    """What each backend's accounting says the sweep's jobs held and used ({job id: use}, notes on what could
    not be asked)."""
    uses: dict[str, JobUse] = {}
    notes = []
    for name, subs in _by_backend(submissions).items():
        found, why = backends.get(name).accounting(subs)
        uses.update(found)
        if why:
            notes.append(why)
    return uses, notes


def cancel(submissions: Sequence[Submission], only: set[str] | None = None) -> tuple[list[str], list[str]]:
    """Cancel the sweep's active jobs (or only the job ids in ``only``); (cancelled ids, problems)."""
    view = scheduler_view(submissions)
    done, problems = [], list(view.notes)
    for name, subs in _by_backend(submissions).items():
        cancelled, why = backends.get(name).cancel(subs, view.states, only)
        done += cancelled
        problems += why
    return done, problems
