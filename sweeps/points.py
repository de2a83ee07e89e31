"""Expand a sweep into points with stable ids: :class:`hpc.tasks.PointTask` s, what the runner takes (the plan
looks up their resources: :meth:`sweeps.spec.Sweep.resources_for`).

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
from collections.abc import Iterator
from typing import Any

from diffbrain.experiments import REQUIRED, ParamError
from hpc.tasks import PointTask
from sweeps.errors import SpecError
from sweeps.spec import Distribution, Sweep, matches


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


MAX_POINTS = 50_000  # plan/submit of more points stop and ask for --yes or --max-points


def point_count(sweep: Sweep) -> int:
    """How many points the sweep expands to at most (before ``[[exclude]]``, ``[[optional]]`` and repeats)."""
    n = math.prod(len(values) for values in sweep.grid.values())
    for group in sweep.zips:
        n *= len(next(iter(group.values())))
    return n * (sweep.random_count if sweep.random else 1)


def check_size(sweep: Sweep, max_points: int | None = None, yes: bool = False) -> int:
    """The sweep's point count; :class:`SpecError` above ``max_points`` (default :data:`MAX_POINTS`, none
    with ``yes``), before anything is expanded."""
    n = point_count(sweep)
    limit = max_points if max_points is not None else (None if yes else MAX_POINTS)
    if limit is not None and n > limit:
        raise SpecError("--max-points", f"the sweep expands to up to {n:,} points, above the limit of {limit:,}",
                        f"pass --yes (or --max-points {n}) if you mean it, or make the grid smaller")
    return n


def _unique(rows: list[tuple]) -> list[tuple]:
    """``rows`` without repeats, first occurrences in order (repeated points keep their first place)."""
    seen, out = set(), []
    for row in rows:
        key = tuple((type(v), v) for v in row)
        if key not in seen:
            seen.add(key)
            out.append(row)
    return out


def _fragment(key: str, value: Any) -> str:
    return json.dumps(key) + ":" + json.dumps(value, ensure_ascii=True, allow_nan=False)


def _spelled(params: dict[str, Any], sweep: Sweep) -> str:
    """The swept values of a point, for a message (``method=de, seed=1``)."""
    varying = [*sweep.grid, *(k for z in sweep.zips for k in z), *sweep.random]
    return ", ".join(f"{k}={params[k]!r}" for k in varying if k in params)


def _section_of(sweep: Sweep, name: str) -> str:
    if name in sweep.grid:
        return "grid"
    for i, group in enumerate(sweep.zips):
        if name in group:
            return f"zip[{i}]"
    return "random" if name in sweep.random else "params"


def iter_points(sweep: Sweep, with_optional: bool = False) -> Iterator[PointTask]:
    """The sweep's points in expansion order, one at a time (nothing is materialised but the value lists).

    Every value was checked when the file was loaded, so a point's canonical parameters are the defaults
    with its values set, in sorted key order; its id hashes the same canonical JSON as :func:`point_id`,
    assembled from per-value fragments. ``[[exclude]]`` and (unless ``with_optional``) ``[[optional]]``
    drop the points they match; repeated rows of ``[[zip]]`` and ``[random]`` are dropped, so no point
    repeats. Each point's string parameters are checked (``Experiment.check_point``): a problem is a
    :class:`SpecError` naming the point, the key and the fix.
    """
    exp = sweep.experiment
    defaults = {p.name: p.default for p in exp.params if p.default is not REQUIRED}
    names = sorted({*defaults, *sweep.params, *sweep.grid, *(k for z in sweep.zips for k in z), *sweep.random})
    template = {k: sweep.params.get(k, defaults.get(k)) for k in names}
    slot = {k: i for i, k in enumerate(names)}
    fragments: dict[tuple, str] = {}

    def element(pairs: tuple[tuple[str, Any], ...]) -> tuple:
        out = []
        for key, value in pairs:
            cache_key = (key, type(value), value)
            if cache_key not in fragments:
                fragments[cache_key] = _fragment(key, value)
            out.append((slot[key], key, value, fragments[cache_key]))
        return tuple(out)

    factors = [[element(((key, v),)) for v in values] for key, values in sweep.grid.items()]
    for group in sweep.zips:
        keys = list(group)
        factors.append([element(tuple(zip(keys, row, strict=True)))
                        for row in _unique(list(zip(*group.values(), strict=True)))])
    if sweep.random:
        keys = list(sweep.random)
        rows = _unique([tuple(sample[k] for k in keys) for sample in random_samples(sweep)])
        factors.append([element(tuple(zip(keys, row, strict=True))) for row in rows])
    base = [_fragment(k, template[k]) if k in defaults or k in sweep.params else "" for k in names]
    head = '{"experiment":' + json.dumps(exp.name, ensure_ascii=True) + ',"params":{'
    drop = sweep.exclude + (() if with_optional else sweep.optional)
    check = exp.has_point_checks
    for combo in itertools.product(*factors):
        params = template.copy()
        parts = base.copy()
        for part in combo:
            for index, key, value, fragment in part:
                params[key] = value
                parts[index] = fragment
        if drop and any(matches(params, table) for table in drop):
            continue
        pid = hashlib.sha256((head + ",".join(parts) + "}}").encode()).hexdigest()[:16]
        if check:
            try:
                exp.check_point(params)
            except ParamError as err:
                root = err.field.split(".")[0]
                key = f"{_section_of(sweep, root)}.{err.field}" if root in slot else err.field
                spelled = _spelled(params, sweep)
                raise err.at(f"{key} of point {pid}" + (f" ({spelled})" if spelled else "")) from None
        yield PointTask(pid, exp.name, params)


def expand(sweep: Sweep, with_optional: bool = False) -> list[PointTask]:
    """The sweep's points in expansion order, without duplicates (a repeat keeps its first place).

    ``[[exclude]]`` and (unless ``with_optional``) ``[[optional]]`` tables drop the points they match,
    compared on canonical values (defaults filled in).
    """
    points = list(iter_points(sweep, with_optional))
    if not points:
        raise_all_excluded()
    return points


def raise_all_excluded() -> None:
    raise SpecError("exclude", "every point of the sweep is excluded",
                    "loosen [[exclude]] / [[optional]] (or pass --with-optional)")


def swept_names(points: list[PointTask]) -> list[str]:
    """Parameters whose value differs between points (in the first point's key order)."""
    if not points:
        return []
    first = points[0].params
    return [k for k in first if any(p.params.get(k) != first[k] for p in points[1:])]
