"""``sweep plan``'s memory plan: per-device bytes, layout, devices and nodes of each distinct point shape,
and the refusal of points that fit nowhere within the sweep's resources (before anything is submitted).

The experiment says what a point's shape is (``Experiment.memory``, no JAX); the planner
(:mod:`diffbrain.experiments.planning`) measures each distinct shape once, on small proxies compiled in a
subprocess and cached on disk, so a second ``plan`` compiles nothing. The device budget comes from the
resources: ``gpus_per_node`` GPUs of ``gpu_memory_gb`` (default :data:`DEFAULT_GPU_GB`) on ``nodes`` nodes,
or, without GPUs, one CPU device with the task's ``mem_gb``
(the local executor: this machine's memory; SLURM without ``mem_gb``: unknown, not checked).
``DIFFBRAIN_MEMORY_PLAN=off`` turns the plan off.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass, field

from sweeps.errors import SpecError

DEFAULT_GPU_GB = 16.0  # a GPU of unknown size: the smallest common data-centre one (V100 16 GB, T4)


def enabled(environ=os.environ) -> bool:
    """The plan is on unless ``DIFFBRAIN_MEMORY_PLAN`` is off (the run's fit check follows the same switch)."""
    from diffbrain.experiments.planning import enabled as planner_enabled

    return planner_enabled(environ)


def budget_of(resources, executor: str):
    """The :class:`DeviceBudget` of a point's resources."""
    from diffbrain.experiments.planning import DeviceBudget

    if resources.gpus_per_node:
        gb = resources.gpu_memory_gb or DEFAULT_GPU_GB
        return DeviceBudget("gpu", gb * 1e9, resources.gpus_per_node, resources.nodes)
    if resources.mem_gb:
        return DeviceBudget("cpu", resources.mem_gb * 1e9)
    if executor == "local":
        import psutil

        return DeviceBudget("cpu", float(psutil.virtual_memory().total))
    return DeviceBudget("cpu", None)


@dataclass
class ShapeRow:
    """One distinct (shape, budget): its points, the first point's id, the planner's answer."""

    shape: dict
    budget: object
    first_point: str
    points: int = 0
    footprint: object = None
    placement: object = None  # the layout the run will take on the resources' devices (the run's own rule)
    fewest: object = None  # the fewest devices on which some layout fits


@dataclass
class MemoryPlan:
    rows: list[ShapeRow] = field(default_factory=list)
    not_planned: int = 0  # points whose experiment gives no shape (a simulation, a connectome)
    error: str = ""  # why nothing was estimated (the proxies did not compile)


class Collector:
    """Gathers the distinct shapes of the points to run, one experiment hook call per distinct parameter set
    that may change shapes (``shape_params``)."""

    def __init__(self, experiment, resources_of, executor: str):
        self.experiment, self.resources_of, self.executor = experiment, resources_of, executor
        self.plan = MemoryPlan()
        self._shapes: dict[tuple, dict | None] = {}
        self._rows: dict[str, ShapeRow] = {}  # one per distinct (shape, budget)
        self._row_of: dict[tuple, ShapeRow] = {}  # (parameters but the seed, resources) -> its row
        self._budgets: dict[int, object] = {}

    @property
    def active(self) -> bool:
        return self.experiment.memory is not None and enabled()

    def add(self, point) -> None:
        key = tuple((k, v) for k, v in point.params.items() if k != "seed")
        if key not in self._shapes:
            self._shapes[key] = self.experiment.memory(point.params)
        shape = self._shapes[key]
        if shape is None:
            self.plan.not_planned += 1
            return
        resources = self.resources_of(point.params)
        row = self._row_of.get((key, id(resources)))
        if row is None:
            row = self._row_of[key, id(resources)] = self._row(shape, resources, point.point_id)
        row.points += 1

    def _row(self, shape: dict, resources, point_id: str) -> ShapeRow:
        """The row of ``shape`` on ``resources``' budget (a new one, first seen at ``point_id``)."""
        budget = self._budgets.get(id(resources))
        if budget is None:
            budget = self._budgets[id(resources)] = budget_of(resources, self.executor)
        row_key = json.dumps([shape, repr(budget)], sort_keys=True)
        row = self._rows.get(row_key)
        if row is None:
            row = self._rows[row_key] = ShapeRow(shape, budget, point_id)
            self.plan.rows.append(row)
        return row

    def finish(self) -> MemoryPlan:
        """Measure (or read from the cache) and place every distinct shape."""
        if self.plan.rows:
            from diffbrain.experiments.planning import plan_shapes

            by_budget: dict[str, list[ShapeRow]] = {}
            for row in self.plan.rows:
                by_budget.setdefault(repr(row.budget), []).append(row)
            try:
                for rows in by_budget.values():
                    for row, (fp, placement, fewest) in zip(
                            rows, plan_shapes([r.shape for r in rows], rows[0].budget), strict=True):
                        row.footprint, row.placement, row.fewest = fp, placement, fewest
            except (RuntimeError, OSError) as err:
                self.plan.error = str(err)
        return self.plan


def collect(experiment, points: Iterable, resources_of, executor: str) -> MemoryPlan:
    collector = Collector(experiment, resources_of, executor)
    if collector.active:
        for point in points:
            collector.add(point)
    return collector.finish()


def _gb(value: float) -> str:
    return f"{value / 1e9:.3g} GB" if value >= 1e8 else f"{value / 1e6:.3g} MB"


def describe_budget(budget) -> str:
    if budget.device_bytes is None:
        return "CPU, memory unknown (set mem_gb)"
    if budget.kind == "gpu":
        return (f"{budget.per_node} GPU{'s' if budget.per_node != 1 else ''} of {_gb(budget.device_bytes)} per node "
                f"x {budget.nodes} node{'s' if budget.nodes != 1 else ''}, {_gb(budget.usable_bytes)} usable each")
    return f"CPU, {_gb(budget.device_bytes)}"


def lines(plan: MemoryPlan, table_of) -> list[str]:
    """The plan's memory section (``table_of(rows, header)``: the CLI's table)."""
    if plan.error:
        return [f"memory: not estimated ({plan.error})"]
    if not plan.rows:
        return []
    out = ["memory per device (XLA's memory analysis of compiled proxies, extrapolated; neurons: estimated):"]
    header = ["shape", "points", "per device", "layout", "devices", "nodes", "fewest", "limit"]
    table = []
    for row in plan.rows:
        s, p = row.shape, row.placement
        conn = s["conn_method"] + (f" p={s['conn_prob']:g}" if s["conn_method"] in ("rand", "gaussian") else
                                   f" k={s['conn_num']}" if s["conn_method"] in ("fixed_in", "fixed_out") else "")
        name = f"{s['method']} n_rec={s['n_rec']} {conn} ({s['impl']}) B={s['batch']} T={s['n_steps']}"
        table.append([name, str(row.points), _gb(p.device_bytes), _layout(p), str(p.devices), str(p.nodes),
                      _fewest(row.fewest), describe_budget(row.budget) + ("" if p.fits else "  FITS NOWHERE")])
    out += ["  " + line for line in table_of(table, header).splitlines()]
    out.append("  layout: what the run takes on all the resources' devices (its own rule); fewest: the fewest devices "
               "on which a layout fits")
    if any(not p.measured_layout for r in plan.rows for p in (r.placement, r.fewest) if p is not None):
        out.append("  * the neurons layout is estimated (that layout's own count of blocks, states and gathered "
                   "spikes), not measured")
    if plan.not_planned:
        out.append(f"  {plan.not_planned} points not planned (simulation or connectome)")
    return out


def _layout(p) -> str:
    return p.describe() + ("" if p.measured_layout else "*")


def _fewest(p) -> str:
    """The fewest devices that fit, as ``data x2 (12.5 GB, 1 node)``; ``-`` when none does."""
    if p is None or not p.fits:
        return "-"
    return f"{_layout(p)} ({_gb(p.device_bytes)}, {p.nodes} node{'s' if p.nodes != 1 else ''})"


def refuse(plan: MemoryPlan) -> None:
    """SpecError (exit 2) for the first shape the run would refuse on its resources: no layout it may take fits
    (``memory``), or its own ``parallel``/``devices`` cannot be met there (``parallel``)."""
    for row in plan.rows:
        p = row.placement
        if p is None or p.fits:
            continue
        s, b = row.shape, row.budget
        what = (f"point {row.first_point} ({s['method']}, n_rec={s['n_rec']}, batch_size={s['batch']}, "
                f"{s['n_steps']} steps" + (f", and {row.points - 1} more like it" if row.points > 1 else "") + ")")
        if p.refused_for == "layout":  # the run would refuse its parallel/devices request on these resources
            raise SpecError("parallel", f"{what}: the run would refuse its layout on {describe_budget(b)} "
                                        f"({p.problem})", "give parallel and devices that these resources can meet")
        limit = describe_budget(b)
        fix = ("ask for more GPUs or nodes (gpus_per_node, nodes) or larger GPUs (gpu_memory_gb), or lower "
               "n_rec, batch_size or the trial length" if b.kind == "gpu" else
               "give the task more memory (mem_gb) or GPUs (gpus_per_node), or lower n_rec, batch_size or "
               "the trial length")
        if p.problem.startswith("parallel auto would use"):  # the point's own layout does not fit; auto's does
            fix = f"{p.problem}, or {fix}"
        raise SpecError("memory", f"{what} needs {_gb(p.device_bytes)} per device at best ({p.describe()} on "
                                  f"{p.devices} device{'s' if p.devices != 1 else ''}) but the resources give "
                                  f"{limit}", fix)
