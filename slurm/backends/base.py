"""The interface of an executor backend: submit packs with resources into a recorded submission, report the
states of its jobs, cancel them.

Each backend lives in its own module of :mod:`slurm.backends` (as submitit puts each of its executors in its
own module) and is found by name through the registry in ``slurm/backends/__init__.py``. Nothing outside the
registry compares executor names: the command line asks the backend (``detached``, ``in_process``,
``describe``...) instead. A backend module imports submitit and the runner only inside its methods, so that
``sweep plan`` can describe a backend without loading either.
"""

from __future__ import annotations

import abc
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from diffbrain.errors import UserError
from hpc.provenance import host, now_iso
from hpc.tasks import Pack
from slurm.jobs import JobRecord, JobUse, Submission

if TYPE_CHECKING:  # slurm.resources imports this package for the executor names
    from slurm.resources import Resources


class SubmitError(UserError):
    """The scheduler refused a submission (its message says why)."""

    def __init__(self, problem: str, fix: str = "fix the resources (or --executor local)"):
        super().__init__("resources", problem, fix)


# SLURM's job states (every backend reports its jobs in these words)
ACTIVE = frozenset({"PENDING", "RUNNING", "REQUEUED", "CONFIGURING", "COMPLETING", "SUSPENDED", "RESIZING",
                    "REQUEUE_HOLD", "REQUEUE_FED", "STAGE_OUT", "SIGNALING", "PREEMPTED"})
RUNNING_STATES = frozenset({"RUNNING", "COMPLETING", "CONFIGURING", "STAGE_OUT", "SIGNALING"})


def selected(job_id: str, only: set[str] | None) -> bool:
    """Whether ``job_id`` (``12_3``) is among ``only`` (job or array ids; None: every job)."""
    return only is None or job_id in only or job_id.split("_")[0] in only


def new_folder(jobs_dir: Path) -> Path:
    """A fresh submitit folder per submission (job ids restart at 1 on a fresh test cluster)."""
    stamp = now_iso()[:19].replace(":", "").replace("-", "")
    return jobs_dir / "submitit" / f"{stamp}-{uuid.uuid4().hex[:6]}"


class Backend(abc.ABC):
    """Where the packs of a sweep run. Subclasses set the class attributes and implement the four methods."""

    name: str = ""
    label: str = ""  # how messages name its jobs ("SLURM jobs"); the name when empty
    # ``auto`` asks the backends with a priority, lowest first, whether they can run here (None: never chosen)
    auto_priority: int | None = None
    detached: bool = False  # its jobs go on after the submitting command stops (else that command stops them)
    in_process: bool = False  # runs the packs in the submitting process, before submit() returns
    poll_s: float = 1.0  # how often ``--wait`` asks for the states of its jobs

    @abc.abstractmethod
    def available(self) -> bool:
        """Whether this backend can run here (``auto`` asks)."""

    def availability(self) -> tuple[bool, str]:
        """(whether it can run here, why: one line ``auto``'s answer shows)."""
        return self.available(), ""

    @abc.abstractmethod
    def submit(self, resources: Resources, packs: Sequence[Pack], folder: Path, name: str) -> tuple[Submission, list]:
        """Submit ``packs`` (each one task) with ``resources``; (the submission to record, submitit's jobs).

        Raises :class:`SubmitError` when the scheduler refuses."""

    @abc.abstractmethod
    def states(self, submissions: Sequence[Submission], finished: bool = True) -> tuple[dict[str, str], list[str]]:
        """({job id: SLURM-like state}, notes on what could not be asked) for the jobs of ``submissions``;
        ``finished=False`` may leave jobs that left the queue ``UNKNOWN`` (enough to wait on)."""

    @abc.abstractmethod
    def cancel(self, submissions: Sequence[Submission], states: dict[str, str],
               only: set[str] | None = None) -> tuple[list[str], list[str]]:
        """Cancel the active jobs of ``submissions`` (or only those in ``only``); (cancelled ids, problems)."""

    # ------------------------------------------------------------------------------------ with defaults
    def check(self, resources: Resources) -> None:
        """Raise a :class:`UserError` when this backend cannot give a task ``resources`` (``sweep plan`` and
        ``submit`` ask before anything is sent). Only a scheduler that launches tasks with ``srun`` runs a task
        as several processes."""
        if resources.processes > 1:
            field = "resources.nodes" if resources.nodes > 1 else "resources.tasks_per_node"
            raise UserError(field, f"the {self.name} executor runs each task as one process, not "
                            f"{resources.processes} ({resources.nodes} node(s) x {resources.tasks_per_node} tasks)",
                            "use executor = slurm (srun starts the processes), or nodes = 1 and tasks_per_node = 1")

    def arrays(self, arrays: list[tuple[Resources, list[Pack]]]) -> list[tuple[Resources, list[Pack]]]:
        """How the plan's arrays (one per resource set) are submitted: as they are, unless a backend merges them."""
        return arrays

    def finish(self, jobs: list) -> None:  # noqa: B027 (a hook: most backends have nothing to do)
        """Called once every array is recorded (the debug backend runs its packs here)."""

    def accounting(self, submissions: Sequence[Submission]) -> tuple[dict[str, JobUse], str]:
        """({job id: what the scheduler's accounting says it held and used}, why there is none) for the jobs
        of ``submissions`` (``sweep status --usage`` refines the store's records with it)."""
        return {}, f"the {self.name} executor keeps no scheduler accounting"

    def describe(self, resources: Resources) -> str:
        """What ``sweep plan`` says about an array's resources."""
        return f"{resources.timeout_min} min"

    def script(self, resources: Resources, tasks: int, folder: Path, name: str, after: str | None = None) -> str | None:
        """The batch script ``submit`` would send for an array of ``tasks`` tasks, run after the array ``after``
        when given (None: it sends none)."""
        return None

    def array_sizes(self, tasks: int) -> tuple[list[int], str]:
        """How an array of ``tasks`` tasks is split when submitted (the scheduler's limit), and why."""
        return [tasks], ""

    def setup_note(self, lines: str) -> str:
        """What ``sweep plan`` says about the ``setup`` lines (``lines``: "2 setup lines")."""
        return f"  {lines} run in a shell before each pack (output in the task log)"

    def job_ids(self, submission: Submission) -> str:
        """How ``sweep submit`` names a submission's jobs."""
        return f"{len(submission.jobs)} processes"

    def recorded(self, folder: Path, resources: Resources, jobs: list, packs: Sequence[Pack]) -> Submission:
        """The submission of one job per pack, as :mod:`slurm.jobs` records it."""
        records = [JobRecord(job.job_id, pack.point_ids) for job, pack in zip(jobs, packs, strict=True)]
        return Submission(now_iso(), self.name, host(), str(folder), resources.to_json(), records)
