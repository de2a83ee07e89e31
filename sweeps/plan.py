"""Pack points into jobs (array tasks): one array per distinct set of resources, K points per task.

Points whose shapes match go together so that a task compiles once. Which parameters set shapes is the
experiment's business, so the packer assumes the safe thing: every parameter may, except the seed and
the parameters drawn from a continuous ``[random]`` distribution (rates, scales). Whole groups of K
equal-shape points fill tasks first; the remainders of the groups share the last tasks, with equal
shapes kept adjacent (a process compiles each shape once, in order).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field

from hpc.tasks import PointTask
from slurm.resources import Resources

ResourcesOf = Callable[[dict], Resources]  # a point's canonical params -> its resources (Sweep.resources_for)


@dataclass(frozen=True)
class Job:
    """One array task: the points it runs, in order."""

    points: tuple[PointTask, ...]
    resources: Resources


@dataclass(frozen=True)
class Plan:
    """Jobs grouped into arrays (each array: one resource set, one submission to the scheduler)."""

    arrays: tuple[tuple[Job, ...], ...]

    @property
    def jobs(self) -> tuple[Job, ...]:
        return tuple(job for array in self.arrays for job in array)

    @property
    def points(self) -> tuple[PointTask, ...]:
        return tuple(p for job in self.jobs for p in job.points)


def shape_key(point: PointTask, free: Collection[str] = ()) -> tuple:
    """The parameter values that may decide a point's shapes: all but the seed and ``free`` ones."""
    return tuple((k, v) for k, v in point.params.items() if k != "seed" and k not in free)


def pack(points: list[PointTask], resources_of: ResourcesOf, free: Collection[str] = ()) -> Plan:
    """Pack ``points`` (already filtered to those that must run) into arrays of jobs.

    ``resources_of`` looks up a point's resources; ``free``: parameters known not to change shapes
    (continuous random draws).
    """
    arrays: dict[tuple, list[PointTask]] = {}
    array_resources: dict[tuple, Resources] = {}
    keys: dict[int, tuple] = {}  # the points share a few Resources objects: one array_key each
    for point in points:
        resources = resources_of(point.params)
        key = keys.get(id(resources))
        if key is None:
            key = keys[id(resources)] = resources.array_key()
            array_resources.setdefault(key, resources)
        arrays.setdefault(key, []).append(point)
    out = []
    for key, members in arrays.items():
        resources = array_resources[key]
        k = resources.points_per_job
        groups: dict[tuple, list[PointTask]] = {}
        for point in members:
            groups.setdefault(shape_key(point, free), []).append(point)
        jobs, rest = [], []
        for group in groups.values():
            whole = len(group) - len(group) % k
            jobs += [group[i:i + k] for i in range(0, whole, k)]
            rest += group[whole:]
        jobs += [rest[i:i + k] for i in range(0, len(rest), k)]
        out.append(tuple(Job(tuple(job), resources) for job in jobs))
    return Plan(tuple(out))


def free_params(sweep) -> set[str]:
    """The sweep's parameters drawn from continuous distributions (they do not set shapes)."""
    return {name for name, dist in sweep.random.items() if dist.kind in ("uniform", "loguniform")}


@dataclass
class PlanSummary:
    """What ``sweep plan`` shows, gathered in one pass over the points (none of them kept but the first
    ``rows``): counts, jobs per array as :func:`pack` would make them, swept parameters."""

    total: int = 0
    held: dict[str, int] = field(default_factory=dict)  # store state -> points of this sweep in that state
    todo: int = 0
    arrays: list[tuple[Resources, int, int]] = field(default_factory=list)  # (resources, jobs, points)
    swept: list[str] = field(default_factory=list)
    first: list[PointTask] = field(default_factory=list)

    @property
    def jobs(self) -> int:
        return sum(jobs for _, jobs, _ in self.arrays)


def summarise(points: Iterable[PointTask], resources_of: ResourcesOf, stored: dict[str, str],
              varying: Collection[str], free: Collection[str] = (), rows: int = 10,
              done: Collection[str] = ("complete", "failed"),
              on_todo: Callable[[PointTask], None] | None = None) -> PlanSummary:
    """Stream ``points`` once: counts by ``stored`` state, the jobs that :func:`pack` would make of the
    points not ``done`` (packed by the ``varying`` parameters that may set shapes), the swept parameters;
    ``on_todo`` sees every point not ``done`` (the memory plan)."""
    out = PlanSummary()
    shape_keys = [k for k in varying if k != "seed" and k not in free]
    groups: dict[tuple, dict[tuple, int]] = {}
    resources: dict[tuple, Resources] = {}
    keys: dict[int, tuple] = {}  # id(Resources) -> array key (the points share a few Resources objects)
    first_values: dict[str, object] | None = None
    undecided = list(varying)  # varying parameters not yet seen to differ between two points
    held = out.held
    for point in points:
        out.total += 1
        params = point.params
        if first_values is None:
            first_values = {k: params[k] for k in varying}
        elif undecided:
            undecided = [k for k in undecided if params[k] == first_values[k]]
        if len(out.first) < rows:
            out.first.append(point)
        if stored:
            state = stored.get(point.point_id)
            if state is not None:
                held[state] = held.get(state, 0) + 1
                if state in done:
                    continue
        out.todo += 1
        if on_todo is not None:
            on_todo(point)
        own = resources_of(params)
        array = keys.get(id(own))
        if array is None:
            array = keys[id(own)] = own.array_key()
            resources.setdefault(array, own)
        shape = tuple(params[k] for k in shape_keys)
        counts = groups.setdefault(array, {})
        counts[shape] = counts.get(shape, 0) + 1
    for array, counts in groups.items():
        k = resources[array].points_per_job
        rest = sum(c % k for c in counts.values())
        jobs = sum(c // k for c in counts.values()) + -(-rest // k)
        out.arrays.append((resources[array], jobs, sum(counts.values())))
    if first_values is not None:
        out.swept = [k for k in sorted(varying) if k not in undecided]
    return out
