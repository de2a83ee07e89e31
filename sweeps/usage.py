"""What a sweep asked of the scheduler and what its points used: ``sweep status --usage`` and the estimate
of ``sweep plan``.

Per resources group (the points that share one set of resources, i.e. one array), from the store's
per-point records: *requested* is what the jobs reserved (jobs x ``timeout_min`` x CPUs or GPUs, and
``mem_gb``), *used* is what the points held while they ran (their ``wall_seconds`` x the CPUs requested,
x the GPUs the point saw, its ``peak_rss_bytes``); efficiency is used / requested. Failed points' share is
their cost. Jobs are counted as the plan packs them (``points_per_job`` points per job).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from analysis.store import COMPLETE, FAILED
from slurm.resources import Resources

HOUR = 3600.0


@dataclass
class GroupUsage:
    """The usage of one resources group."""

    resources: Resources
    points: int = 0  # points of the sweep in this group
    complete: int = 0
    failed: int = 0
    wall_s: float = 0.0  # summed over points that ran (complete and failed)
    failed_wall_s: float = 0.0
    gpu_s: float = 0.0  # wall x GPUs each point saw
    failed_gpu_s: float = 0.0
    peak_rss: list[int] = field(default_factory=list)
    longest_s: float = 0.0

    @property
    def ran(self) -> int:
        return self.complete + self.failed

    @property
    def jobs(self) -> int:
        return -(-self.ran // self.resources.points_per_job)

    @property
    def requested_cpu_h(self) -> float:
        return self.jobs * self.resources.timeout_min / 60 * self.resources.cpus_per_job

    @property
    def used_cpu_h(self) -> float:
        return self.wall_s / HOUR * self.resources.cpus_per_job

    @property
    def requested_gpu_h(self) -> float:
        return self.jobs * self.resources.timeout_min / 60 * self.resources.gpus_per_job

    @property
    def used_gpu_h(self) -> float:
        return self.gpu_s / HOUR

    @property
    def peak_rss_gb(self) -> float | None:
        return max(self.peak_rss) / 1e9 if self.peak_rss else None


def _efficiency(used: float, requested: float) -> str:
    return f"{used / requested:.0%}" if requested > 0 else "-"


def _nodes(attrs: dict) -> int:
    """Nodes whose GPUs computed a point: its record lists process 0's node's GPUs."""
    processes = attrs.get("processes") or {}
    return max(1, len(processes.get("nodes") or [])) if processes.get("distributed") else 1


def sweep_usage(points: Iterable, states: dict[str, str], attrs_of: Callable[[str], dict],
                resources_of: Callable[[dict], Resources]) -> list[GroupUsage]:
    """One :class:`GroupUsage` per resources group of ``points`` (``states``: point id -> state; ``attrs_of``:
    a point's stored record)."""
    groups: dict[tuple, GroupUsage] = {}
    for point in points:
        resources = resources_of(point.params)
        group = groups.setdefault(resources.array_key(), GroupUsage(resources))
        group.points += 1
        state = states.get(point.point_id)
        if state not in (COMPLETE, FAILED):
            continue
        attrs = attrs_of(point.point_id)
        wall = attrs.get("wall_seconds")
        wall = float(wall) if isinstance(wall, (int, float)) and math.isfinite(wall) else 0.0
        gpu_s = wall * len(attrs.get("gpus") or []) * _nodes(attrs)
        group.complete += state == COMPLETE
        group.failed += state == FAILED
        group.wall_s += wall
        group.gpu_s += gpu_s
        group.longest_s = max(group.longest_s, wall)
        if state == FAILED:
            group.failed_wall_s += wall
            group.failed_gpu_s += gpu_s
        if isinstance(attrs.get("peak_rss_bytes"), int):
            group.peak_rss.append(attrs["peak_rss_bytes"])
    return list(groups.values())


def usage_lines(groups: list[GroupUsage], describe: Callable[[Resources], str]) -> list[str]:
    """The ``--usage`` section: one block per group."""
    lines = ["", "usage (requested = jobs x time limit; used = points' wall time; from the store's records):"]
    for i, g in enumerate(groups, 1):
        r = g.resources
        lines.append(f"  group {i}: {describe(r)}; {g.ran} of {g.points} points ran in {g.jobs} jobs "
                     f"({g.complete} complete, {g.failed} failed)")
        lines.append(f"    CPU-hours  requested {g.requested_cpu_h:.4g}  used {g.used_cpu_h:.4g}  "
                     f"efficiency {_efficiency(g.used_cpu_h, g.requested_cpu_h)}")
        if r.gpus_per_node or g.gpu_s:
            lines.append(f"    GPU-hours  requested {g.requested_gpu_h:.4g}  used {g.used_gpu_h:.4g}  "
                         f"efficiency {_efficiency(g.used_gpu_h, g.requested_gpu_h)}")
        if g.peak_rss:
            median = statistics.median(g.peak_rss) / 1e9
            asked = f"requested {r.mem_gb:g} GB" if r.mem_gb else "no memory requested"
            lines.append(f"    memory     {asked}  peak {g.peak_rss_gb:.3g} GB (median {median:.3g} GB)"
                         + (f"  efficiency {_efficiency(g.peak_rss_gb, r.mem_gb)}" if r.mem_gb else ""))
        if g.ran:
            lines.append(f"    time       limit {r.timeout_min} min per job  longest point {g.longest_s:.3g} s")
        if g.failed:
            lines.append(f"    failures   cost {g.failed_wall_s / HOUR * r.cpus_per_job:.4g} CPU-hours"
                         + (f", {g.failed_gpu_s / HOUR:.4g} GPU-hours" if g.failed_gpu_s else "")
                         + f" ({g.failed} point{'' if g.failed == 1 else 's'})")
    return lines


def estimate_line(arrays: list[tuple[Resources, int, int]], complete_walls: list[float], experiment: str) -> str:
    """``plan``'s estimate of what it would submit (``arrays``: (resources, jobs, points) to run), from the
    wall times of the store's complete points of the same experiment."""
    todo = sum(points for _, _, points in arrays)
    if not todo:
        return "estimate: nothing to run"
    if not complete_walls:
        return f"estimate: no basis yet (the store holds no complete point of {experiment})"
    mean = statistics.fmean(complete_walls)
    gpu_h = sum(points * mean * res.gpus_per_job for res, _, points in arrays) / HOUR
    cpu_h = sum(points * mean * res.cpus_per_job for res, _, points in arrays) / HOUR
    return (f"estimate: {gpu_h:.3g} GPU-hours, {cpu_h:.3g} CPU-hours for {todo} points "
            f"(mean {mean:.3g} s per point over {len(complete_walls)} complete points of {experiment} in the store)")
