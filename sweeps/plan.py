"""Pack points into jobs (array tasks): one array per distinct set of resources, K points per task.

Points whose shapes match go together so that a task compiles once. Which parameters set shapes is the
experiment's business, so the packer assumes the safe thing: every parameter may, except the seed and
the parameters drawn from a continuous ``[random]`` distribution (rates, scales). Whole groups of K
equal-shape points fill tasks first; the remainders of the groups share the last tasks, with equal
shapes kept adjacent (a process compiles each shape once, in order).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from slurm.resources import Resources
from sweeps.points import Point


@dataclass(frozen=True)
class Job:
    """One array task: the points it runs, in order."""

    points: tuple[Point, ...]
    resources: Resources


@dataclass(frozen=True)
class Plan:
    """Jobs grouped into arrays (each array: one resource set, one submission to the scheduler)."""

    arrays: tuple[tuple[Job, ...], ...]

    @property
    def jobs(self) -> tuple[Job, ...]:
        return tuple(job for array in self.arrays for job in array)

    @property
    def points(self) -> tuple[Point, ...]:
        return tuple(p for job in self.jobs for p in job.points)


def shape_key(point: Point, free: Collection[str] = ()) -> tuple:
    """The parameter values that may decide a point's shapes: all but the seed and ``free`` ones."""
    return tuple((k, v) for k, v in point.params.items() if k != "seed" and k not in free)


def pack(points: list[Point], free: Collection[str] = ()) -> Plan:
    """Pack ``points`` (already filtered to those that must run) into arrays of jobs.

    ``free``: parameters known not to change shapes (continuous random draws).
    """
    arrays: dict[tuple, list[Point]] = {}
    for point in points:
        arrays.setdefault(point.resources.array_key(), []).append(point)
    out = []
    for members in arrays.values():
        resources = members[0].resources
        k = resources.points_per_job
        groups: dict[tuple, list[Point]] = {}
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
