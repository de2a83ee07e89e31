"""Pack points into jobs (array tasks): one array per distinct set of resources, K points per task.

Points whose shapes match go together so that a task compiles once: points are grouped by their
discrete parameters (int, str and bool values, the seed excepted), which are what sets array shapes
and code paths; float parameters (rates, bounds) do not change the compiled program. Whole groups of K
fill tasks first; the remainders of the groups share the last tasks, same-shape points kept adjacent.
"""

from __future__ import annotations

from dataclasses import dataclass

from diffbrain.experiments import Experiment
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


def shape_key(point: Point, experiment: Experiment) -> tuple:
    """The values that decide a point's shapes: its discrete parameters except the seed."""
    return tuple((p.name, point.params[p.name]) for p in experiment.params
                 if p.kind in (int, str, bool) and p.name != "seed")


def pack(points: list[Point], experiment: Experiment) -> Plan:
    """Pack ``points`` (already filtered to those that must run) into arrays of jobs."""
    arrays: dict[tuple, list[Point]] = {}
    for point in points:
        arrays.setdefault(point.resources.array_key(), []).append(point)
    out = []
    for members in arrays.values():
        resources = members[0].resources
        k = resources.points_per_job
        groups: dict[tuple, list[Point]] = {}
        for point in members:
            groups.setdefault(shape_key(point, experiment), []).append(point)
        jobs, rest = [], []
        for group in groups.values():
            whole = len(group) - len(group) % k
            jobs += [group[i:i + k] for i in range(0, whole, k)]
            rest += group[whole:]
        jobs += [rest[i:i + k] for i in range(0, len(rest), k)]
        out.append(tuple(Job(tuple(job), resources) for job in jobs))
    return Plan(tuple(out))
