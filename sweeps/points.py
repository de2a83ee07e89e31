"""Expand a sweep into points with stable ids.

A point's id is the first 16 hex digits of the sha256 of the canonical JSON of ``{experiment, params}``
where ``params`` are ``Experiment.validate`` output (defaults filled in, ints given for float parameters
turned into floats, keys sorted, floats spelled by ``repr``). Key order and float spelling in the file do
not matter; a changed value gives a new id.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import random
from dataclasses import dataclass
from typing import Any

from diffbrain.experiments import ParamError
from slurm.resources import Resources
from sweeps.errors import SpecError
from sweeps.spec import Distribution, Sweep


def canonical_json(experiment: str, params: dict[str, Any]) -> str:
    """The canonical text that a point id hashes (json writes floats with ``repr``)."""
    for key, value in params.items():
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"parameter {key} is not finite: {value!r}")
    return json.dumps({"experiment": experiment, "params": params}, sort_keys=True, separators=(",", ":"),
                      ensure_ascii=True, allow_nan=False)


def point_id(experiment: str, params: dict[str, Any]) -> str:
    """Stable id of a point: ``params`` must already be canonical (``Experiment.validate`` output)."""
    return hashlib.sha256(canonical_json(experiment, params).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Point:
    point_id: str
    experiment: str
    params: dict  # canonical: every declared parameter, sorted
    resources: Resources

    def task(self) -> tuple[str, str, dict]:
        """The plain data the runner takes."""
        return self.point_id, self.experiment, self.params


def _draw(dist: Distribution, rng: random.Random) -> Any:
    u = rng.random()
    if dist.kind == "choice":
        return dist.args[min(int(u * len(dist.args)), len(dist.args) - 1)]
    low, high = dist.args
    if dist.kind == "uniform":
        return low + u * (high - low)
    if dist.kind == "loguniform":
        return math.exp(math.log(low) + u * (math.log(high) - math.log(low)))
    return min(low + int(u * (high - low + 1)), high)  # randint, inclusive


def random_samples(sweep: Sweep) -> list[dict[str, Any]]:
    """``count`` draws of every ``[random]`` parameter, in file order, from ``random.Random(seed)``."""
    if not sweep.random:
        return [{}]
    rng = random.Random(sweep.random_seed)
    return [{name: _draw(dist, rng) for name, dist in sweep.random.items()} for _ in range(sweep.random_count)]


def _matches(params: dict[str, Any], table: dict[str, tuple]) -> bool:
    return all(params.get(k) in values for k, values in table.items())


def raw_points(sweep: Sweep) -> list[dict[str, Any]]:
    """Parameter dicts as given (before defaults), in expansion order: grid x zips x random samples."""
    grid_rows = [dict(zip(sweep.grid, combo, strict=True)) for combo in itertools.product(*sweep.grid.values())]
    zip_rows = [[dict(zip(group, row, strict=True)) for row in zip(*group.values(), strict=True)]
                for group in sweep.zips]
    rows = []
    for combo in itertools.product(grid_rows, *zip_rows, random_samples(sweep)):
        params = dict(sweep.params)
        for part in combo:
            params.update(part)
        rows.append(params)
    return rows


def expand(sweep: Sweep, with_optional: bool = False) -> list[Point]:
    """The sweep's points in expansion order, without duplicates (a repeat keeps its first place).

    ``[[exclude]]`` and (unless ``with_optional``) ``[[optional]]`` tables drop the points they match,
    compared on canonical values (defaults filled in).
    """
    exp = sweep.experiment
    points, seen = [], set()
    drop = sweep.exclude + (() if with_optional else sweep.optional)
    for params in raw_points(sweep):
        try:
            canonical = exp.validate(params)
        except ParamError as err:
            raise SpecError(err.field, err.problem, err.fix) from None
        if any(_matches(canonical, table) for table in drop):
            continue
        pid = point_id(exp.name, canonical)
        if pid in seen:
            continue
        seen.add(pid)
        resources = sweep.resources
        for override in sweep.overrides:
            if _matches(canonical, override.match):
                resources = override.resources
        points.append(Point(pid, exp.name, canonical, resources))
    if not points:
        raise SpecError("exclude", "every point of the sweep is excluded",
                        "loosen [[exclude]] / [[optional]] (or pass --with-optional)")
    return points


def swept_names(points: list[Point]) -> list[str]:
    """Parameters whose value differs between points (in the first point's key order)."""
    if not points:
        return []
    first = points[0].params
    return [k for k in first if any(p.params.get(k) != first[k] for p in points[1:])]
