"""What a sweep asked of the scheduler and what its points used: ``sweep status --usage`` and the estimate
of ``sweep plan``.

Per resources group (the points that share one set of resources, i.e. one array), from the store's
per-point records: *requested* is what the jobs reserved (jobs x ``timeout_min`` x CPUs or GPUs, and
``mem_gb``), *used* is what the points held while they ran (their ``wall_seconds`` x the CPUs requested,
x the GPUs the point saw, its ``peak_rss_bytes``); efficiency is used / requested. Failed points' share is
their cost. Jobs are counted as the plan packs them (``points_per_job`` points per job).

Where the scheduler keeps accounting (SLURM's ``sacct``), each group also gets what its jobs really held
(elapsed x allocated CPUs and GPUs), the CPU time they used and their largest resident memory: the store's
figures count only the points' own wall time, the scheduler's include start-up, queue-side overheads and
idle CPUs. ``report`` shows the same section, built from the store and its recorded submissions.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from types import SimpleNamespace

from analysis.store import COMPLETE, FAILED, scan_store
from slurm import backends
from slurm import jobs as jobbook
from slurm.jobs import JobUse, Submission
from slurm.resources import Resources, jobs_dir_for

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
    job_ids: set[str] = field(default_factory=set)  # the scheduler jobs its points ran in

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
                resources_of: Callable[[object], Resources], job_of: dict[str, str] | None = None) -> list[GroupUsage]:
    """One :class:`GroupUsage` per resources group of ``points`` (``states``: point id -> state; ``attrs_of``:
    a point's stored record; ``resources_of``: a point's resources; ``job_of``: point id -> the scheduler job
    that ran it last)."""
    groups: dict[tuple, GroupUsage] = {}
    job_of = job_of or {}
    for point in points:
        resources = resources_of(point)
        group = groups.setdefault(resources.array_key(), GroupUsage(resources))
        group.points += 1
        state = states.get(point.point_id)
        if state not in (COMPLETE, FAILED):
            continue
        attrs = attrs_of(point.point_id)
        wall = attrs.get("wall_seconds")
        wall = float(wall) if isinstance(wall, (int, float)) and math.isfinite(wall) else 0.0
        gpu_s = wall * len(attrs.get("gpus") or []) * _nodes(attrs)
        if point.point_id in job_of:
            group.job_ids.add(job_of[point.point_id])
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


def usage_lines(groups: list[GroupUsage], describe: Callable[[Resources], str],
                uses: dict[str, JobUse] | None = None, notes: Iterable[str] = ()) -> list[str]:
    """The ``--usage`` section: one block per group (``uses``: the scheduler's accounting per job id, with
    ``notes`` on what it could not say)."""
    uses = uses or {}
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
        lines += _scheduler_lines(g, uses)
    lines += [f"  (scheduler accounting: {note}; the figures above come from the store's records)" for note in notes]
    return lines


def _scheduler_lines(group: GroupUsage, uses: dict[str, JobUse]) -> list[str]:
    """What the scheduler's accounting says the group's jobs held and used (nothing when it has no record)."""
    found = [uses[job_id] for job_id in sorted(group.job_ids) if job_id in uses]
    if not found:
        return []
    held_cpu_h = sum(u.elapsed_s * u.alloc_cpus for u in found) / HOUR
    lines = [f"    sacct      {len(found)} of {len(group.job_ids)} jobs: CPU-hours held {held_cpu_h:.4g} "
             "(elapsed x allocated CPUs)"]
    cpu = [u.cpu_s for u in found if u.cpu_s is not None]
    if cpu:
        used_h = sum(cpu) / HOUR
        lines[-1] += f"  CPU time used {used_h:.4g} h  efficiency {_efficiency(used_h, held_cpu_h)}"
    held_gpu_h = sum(u.elapsed_s * u.alloc_gpus for u in found) / HOUR
    if held_gpu_h:
        lines.append(f"    sacct      GPU-hours held {held_gpu_h:.4g}  (points used {group.used_gpu_h:.4g}: "
                     f"efficiency {_efficiency(group.used_gpu_h, held_gpu_h)})")
    rss = [u.max_rss_bytes for u in found if u.max_rss_bytes]
    if rss:
        lines.append(f"    sacct      memory peak {max(rss) / 1e9:.3g} GB (largest job step)")
    return lines


def _resources_from(recorded: dict, executor: str) -> Resources:
    """The resources a submission recorded (keys of another version ignored), with its resolved executor."""
    known = {f.name for f in fields(Resources)}
    values = {k: v for k, v in recorded.items() if k in known}
    if isinstance(values.get("setup"), list):
        values["setup"] = tuple(values["setup"])
    return replace(Resources(**values), executor=executor)


def store_usage_lines(store: str | Path) -> list[str]:
    """The usage section of ``report``: the store's points grouped by the resources their submissions
    recorded (points no submission ran, e.g. written by ``diffbrain train``, in a group of their own),
    refined by the scheduler's accounting where it answers."""
    scan = scan_store(store)
    submissions = jobbook.load(jobs_dir_for(Path(store)))
    latest = jobbook.latest_job_of_points(submissions)
    unrecorded = Submission("", "local", "", "", {})
    points = [SimpleNamespace(point_id=pid) for pid in sorted(scan.groups)]
    resources = {id(sub): _resources_from(sub.resources, sub.executor) for sub in [*submissions, unrecorded]}

    def resources_of(point) -> Resources:
        return resources[id(latest.get(point.point_id, (unrecorded,))[0])]

    from slurm.status import accounting

    groups = sweep_usage(points, scan.states(), scan.attrs, resources_of,
                         {pid: job.job_id for pid, (_, job) in latest.items()})
    uses, notes = accounting(submissions) if submissions else ({}, ["no submission recorded next to the store"])
    return usage_lines(groups, lambda r: backends.get(r.executor).describe(r), uses, notes)[1:]


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
