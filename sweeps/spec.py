"""Load and validate a sweep file (TOML) against the experiment's declared parameters.

Everything is checked before anything runs; a problem raises :class:`SpecError` whose key is the dotted
TOML key (``grid.n_rec[2]``, ``zip[0].T``, ``resources.timeout_min``, ``--timeout-min`` for a flag).
The file format is described in examples/first.toml and the README; in short: ``name``, ``experiment``,
``store``, ``[params]`` (fixed), ``[grid]`` (product), ``[[zip]]`` (lists that vary together),
``[random]`` (``count`` draws with ``seed``), ``[[exclude]]``, ``[[optional]]``, ``[resources]`` (with
``[[resources.override]]`` tables that give matching points other resources) and ``[variant.NAME]``.
"""

from __future__ import annotations

import contextvars
import os
import re
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from analysis.paths import check_writable, user_path
from diffbrain.errors import UserError
from diffbrain.experiments import REQUIRED, Experiment
from slurm.resources import PER_SUBMISSION, Resources, resource_fields
from sweeps.errors import SpecError

# the folder of the sweep file being loaded: relative paths of `path` parameters are relative to it
_BASE_DIR: contextvars.ContextVar[Path | None] = contextvars.ContextVar("sweep_base_dir", default=None)
TOP_KEYS = ("name", "experiment", "store", "description", "params", "grid", "zip", "random", "exclude",
            "optional", "resources", "variant")
TABLES = ("params", "grid", "random", "resources")  # merged key by key by a variant
DISTRIBUTIONS = ("uniform", "loguniform", "randint", "choice")
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def matches(params: dict[str, Any], table: dict[str, tuple]) -> bool:
    """Whether ``params`` match a ``[[exclude]]`` / ``[[optional]]`` / override table (every key among its values)."""
    return all(params.get(k) in values for k, values in table.items())


@dataclass(frozen=True)
class Distribution:
    kind: str  # uniform | loguniform | randint | choice
    args: tuple


@dataclass(frozen=True)
class Override:
    """Points matching ``match`` get ``resources`` (the file's resources with some keys replaced)."""

    match: dict[str, tuple]
    resources: Resources


@dataclass(frozen=True)
class Sweep:
    """A validated sweep file (a variant and flags already applied)."""

    name: str
    experiment: Experiment
    store: Path
    params: dict[str, Any]
    grid: dict[str, tuple]
    zips: tuple[dict[str, tuple], ...]
    random_seed: int
    random_count: int
    random: dict[str, Distribution]
    exclude: tuple[dict[str, tuple], ...]
    optional: tuple[dict[str, tuple], ...]
    resources: Resources
    overrides: tuple[Override, ...]
    path: Path
    source: str
    variant: str | None
    spec: dict = field(repr=False)  # the parsed file after the variant and --set: stored in the store's attrs
    sets: tuple[str, ...] = ()  # the --set KEY=VALUE items applied

    def resources_for(self, params: dict[str, Any]) -> Resources:
        """The resources of a point with these canonical ``params``: the last override that matches, else the
        file's (the same objects for every point, so the plan groups them cheaply)."""
        resources = self.resources
        for override in self.overrides:
            if matches(params, override.match):
                resources = override.resources
        return resources

    def info(self) -> dict:
        """What the store keeps about the sweep (root attr ``sweep``)."""
        return {"name": self.name, "experiment": self.experiment.name, "spec": self.spec, "source": self.source,
                "file": str(self.path), "variant": self.variant, "sets": list(self.sets)}


def _type_name(value: Any) -> str:
    return {bool: "bool", int: "int", float: "float", str: "str", list: "list", dict: "table"}.get(
        type(value), type(value).__name__)


def _expect(value: Any, kind: type, key: str, fix: str) -> Any:
    ok = isinstance(value, kind) and not (kind in (int, float) and isinstance(value, bool))
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if not ok:
        raise SpecError(key, f"expected {_type_name(kind())}, got {_type_name(value)} {value!r}", fix)
    return value


def _table(spec: dict, key: str) -> dict:
    value = spec.get(key, {})
    return _expect(value, dict, key, f"write it as a table: [{key}]")


def _tables(spec: dict, key: str) -> list:
    value = spec.get(key, [])
    fix = f"write each as a table: [[{key}]]"
    value = _expect(value, list, key, fix)
    for i, item in enumerate(value):
        _expect(item, dict, f"{key}[{i}]", fix)
    return value


def _param_value(exp: Experiment, name: str, value: Any, key: str, section: str) -> Any:
    param = exp.param(name, where=f"{section}.{name}")
    value = param.coerce(value, where=key)
    base = _BASE_DIR.get()
    if param.is_path(value) and base is not None:
        value = os.path.normpath(base / os.path.expanduser(value))  # relative to the sweep file's folder
    return value


def _value_list(exp: Experiment, section: str, name: str, values: Any, allow_scalar: bool,
                unique: bool = False) -> tuple:
    key = f"{section}.{name}"
    if not isinstance(values, list):
        if allow_scalar:
            return (_param_value(exp, name, values, key, section),)
        raise SpecError(key, f"expected a list of values, got {_type_name(values)} {values!r}",
                        f"write {name} = [value, ...], or move a single value to [params]")
    if not values:
        raise SpecError(key, "empty list", "give at least one value")
    out = tuple(_param_value(exp, name, v, f"{key}[{i}]", section) for i, v in enumerate(values))
    seen: set = set()
    for i, v in enumerate(out if unique else ()):
        if (type(v), v) in seen:
            raise SpecError(f"{key}[{i}]", f"repeats the value {v!r}", "list each value once")
        seen.add((type(v), v))
    return out


def _matchers(exp: Experiment, section: str, tables: list, extra_keys: tuple = ()) -> list[dict[str, tuple]]:
    out = []
    for i, table in enumerate(tables):
        where = f"{section}[{i}]"
        match = {k: v for k, v in table.items() if k not in extra_keys}
        if not match:
            raise SpecError(where, "matches nothing (no parameter keys)", "give parameter = value (or [values])")
        out.append({name: _value_list(exp, where, name, v, allow_scalar=True) for name, v in match.items()})
    return out


def _random(exp: Experiment, table: dict) -> tuple[int, int, dict[str, Distribution]]:
    if not table:
        return 0, 0, {}
    seed = _expect(table.get("seed", 0), int, "random.seed", "give an integer seed >= 0")
    if seed < 0:
        raise SpecError("random.seed", f"{seed} is negative", "give an integer seed >= 0")
    if "count" not in table:
        raise SpecError("random.count", "missing", "give the number of random samples, e.g. count = 8")
    count = _expect(table["count"], int, "random.count", "give an integer >= 1")
    if count < 1:
        raise SpecError("random.count", f"{count} is below 1", "give an integer >= 1")
    dists = {}
    for name, spec in table.items():
        if name in ("seed", "count"):
            continue
        key = f"random.{name}"
        fix = f"write {name} = {{ uniform = [low, high] }} (or loguniform, randint, choice = [values])"
        if not isinstance(spec, dict) or len(spec) != 1 or next(iter(spec)) not in DISTRIBUTIONS:
            raise SpecError(key, f"expected one of {', '.join(DISTRIBUTIONS)}, got {spec!r}", fix)
        kind, args = next(iter(spec.items()))
        key = f"{key}.{kind}"
        param = exp.param(name, where=f"random.{name}")
        if kind == "choice":
            values = _value_list(exp, "random", name, args, allow_scalar=False, unique=True)
            dists[name] = Distribution(kind, values)
            continue
        if not isinstance(args, list) or len(args) != 2:
            raise SpecError(key, f"expected [low, high], got {args!r}", fix)
        need = int if kind == "randint" else float
        if param.kind is not need:
            raise SpecError(key, f"{kind} draws {need.__name__}s but {name} is a {param.kind.__name__}",
                            "use choice = [values]" if param.kind in (str, bool) else
                            f"use {'randint' if param.kind is int else 'uniform or loguniform'}")
        low, high = (_param_value(exp, name, v, f"{key}[{i}]", "random") for i, v in enumerate(args))
        if not low < high:
            raise SpecError(key, f"low {low!r} is not below high {high!r}", "give [low, high] with low < high")
        if kind == "loguniform" and low <= 0:
            raise SpecError(f"{key}[0]", f"{low!r} is not > 0", "loguniform needs a positive range")
        dists[name] = Distribution(kind, (low, high))
    if not dists:
        raise SpecError("random", "no parameter to draw", "add e.g. lr = { loguniform = [1e-4, 1e-2] }, "
                        "or remove [random]")
    return seed, count, dists


def _resource_values(table: dict, section: str, flag_names: dict[str, str]) -> dict:
    declared = resource_fields()
    out = {}
    for key, value in table.items():
        where = flag_names.get(key, f"{section}.{key}")
        if key not in declared:
            raise SpecError(where, "unknown resource", f"use one of: {', '.join(declared)}")
        spec = declared[key]
        value = _expect(value, spec.kind, where, spec.fix)
        if not spec.check(value):
            raise SpecError(where, f"{value!r} is not allowed", spec.fix)
        out[key] = tuple(value) if spec.kind is list else value
    return out


def _resources(table: dict, flags: dict[str, Any]) -> tuple[Resources, Any]:
    """The file's resources (flags win) and its override tables."""
    table = dict(table)
    overrides = table.pop("override", [])
    flag_names = {k: "--" + k.replace("_", "-") for k in flags}
    values = _resource_values(table, "resources", {})
    values.update(_resource_values(flags, "resources", flag_names))
    return Resources(**values), overrides


def _overrides(exp: Experiment, base: Resources, tables: Any, flags: dict) -> tuple[Override, ...]:
    key = "resources.override"
    tables = _expect(tables, list, key, "write each as a table: [[resources.override]]")
    out = []
    for i, table in enumerate(tables):
        where = f"{key}[{i}]"
        _expect(table, dict, where, "write each as a table: [[resources.override]]")
        match = table.get("match")
        if not isinstance(match, dict) or not match:
            raise SpecError(f"{where}.match", "missing or empty", "give match = { parameter = value, ... }")
        rest = {k: v for k, v in table.items() if k != "match"}
        for k in PER_SUBMISSION:
            if k in rest:
                raise SpecError(f"{where}.{k}", "cannot differ between points of one submission",
                                "set it in [resources]")
        changes = _resource_values(rest, where, {})
        changes = {k: v for k, v in changes.items() if k not in flags}  # flags win everywhere
        matcher = _matchers(exp, f"{where}.match", [match])[0]
        out.append(Override(matcher, Resources(**{**base.to_json(), "setup": base.setup, **changes})))
    return tuple(out)


def _apply_variant(spec: dict, variant: str | None) -> dict:
    variants = _table(spec, "variant")
    for name, table in variants.items():
        _expect(table, dict, f"variant.{name}", f"write it as a table: [variant.{name}]")
    if variant is None:
        return spec
    if variant not in variants:
        raise SpecError("--variant", f"the file has no [variant.{variant}]",
                        f"use one of: {', '.join(variants)}" if variants else "add a [variant.NAME] table")
    out = {k: v for k, v in spec.items() if k != "variant"}
    for key, value in variants[variant].items():
        if key not in TOP_KEYS or key == "variant":
            raise SpecError(f"variant.{variant}.{key}", "unknown key",
                            f"use one of: {', '.join(k for k in TOP_KEYS if k != 'variant')}")
        if key in TABLES and isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = {**out[key], **value}
        else:
            out[key] = value
    return out


def set_value(text: str) -> Any:
    """The value of ``--set KEY=TEXT``: a TOML value (``0.5``, ``true``, ``"a,b"``, ``[1, 2]``), else a list
    when ``TEXT`` has commas (``A,B,C``, each item a TOML value or bare text), else bare text."""
    def one(item: str) -> Any:
        try:
            return tomllib.loads(f"v = {item}")["v"]
        except tomllib.TOMLDecodeError:
            return item
    text = text.strip()
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        pass
    if "," in text:
        return [one(item.strip()) for item in text.split(",")]
    return text


def apply_sets(spec: dict, exp: Experiment, sets: Sequence[str], flags: dict[str, Any]) -> tuple[dict, dict]:
    """``--set KEY=VALUE`` applied to the parsed file, as editing it would: a parameter's single value goes to
    ``[params]`` (leaving ``[grid]`` if it was there), a list of values (``KEY=A,B,C``) becomes the ``[grid]``
    axis (leaving ``[params]``); a resource's value goes to ``[resources]``. Returns (the effective spec, the
    resources set, which win over override tables as flags do). The values are checked later, like the file's."""
    from diffbrain.assignments import pairs

    spec = {k: (dict(v) if isinstance(v, dict) else v) for k, v in spec.items()}
    resources: dict[str, Any] = {}
    declared = resource_fields()
    given = pairs(sets, "--set", "write --set KEY=VALUE or --set KEY=A,B,C", SpecError)
    for key, text in given.items():
        where = f"--set {key}"
        value = set_value(text)
        if key in {p.name for p in exp.params}:
            for section in ("zip", "random"):
                tables = spec.get(section)
                if any(isinstance(t, dict) and key in t for t in (tables if isinstance(tables, list) else [tables])):
                    raise SpecError(where, f"{key} varies in the file's [{section}]",
                                    "edit the sweep file to change it")
            for section in ("params", "grid"):
                if not isinstance(spec.get(section, {}), dict):
                    _table(spec, section)  # the file's own error
                spec.setdefault(section, {}).pop(key, None)
            if isinstance(value, list):
                spec["grid"][key] = value
            else:
                spec["params"][key] = value
            for section in ("params", "grid"):
                if not spec[section]:
                    del spec[section]
        elif key in declared:
            if key in flags:
                raise SpecError(where, f"also given as --{key.replace('_', '-')}", "give it once")
            if declared[key].kind is list and not isinstance(value, list):
                value = [value]
            _table(spec, "resources")
            spec.setdefault("resources", {})[key] = value
            resources[key] = value
        else:
            raise SpecError(where, f"{key!r} is neither a parameter of experiment {exp.name!r} nor a resource",
                            f"use one of: {', '.join(p.name for p in exp.params)}; or a resource: "
                            f"{', '.join(declared)}")
    return spec, resources


def _from_set(err: UserError, sets: Sequence[str]) -> UserError:
    """An error about a value that ``--set`` gave names ``--set KEY`` (``grid.seed[1]`` -> ``--set seed[1]``)."""
    for item in sets:
        key = item.partition("=")[0].strip()
        for section in ("params", "grid", "resources"):
            prefix = f"{section}.{key}"
            if err.field == prefix or err.field.startswith(prefix + "["):
                return err.at("--set " + key + err.field[len(prefix):])
    return err


def load_sweep(path: str | Path, variant: str | None = None, flags: dict[str, Any] | None = None,
               sets: Sequence[str] = ()) -> Sweep:
    """Read, check and return the sweep file at ``path``.

    ``variant`` applies ``[variant.NAME]`` (its tables merge key by key into the file's; other keys are
    replaced). ``flags`` are resource values from the command line (they win over the file). ``sets``:
    ``--set KEY=VALUE`` items (:func:`apply_sets`), applied after the variant.
    """
    path = user_path(path, "sweep file")
    try:
        if path.exists() and not path.is_file():
            raise SpecError(str(path), "is not a regular file", "give the path of a .toml file")
        data = path.read_bytes()
    except OSError as err:
        raise SpecError(str(path), f"cannot read the sweep file ({err.strerror})",
                        "give the path of a .toml file") from None
    try:
        source = data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data[:err.start].count(b"\n") + 1
        raise SpecError(str(path), f"not UTF-8 text (byte {data[err.start]:#04x} on line {line})",
                        "save the file as UTF-8") from None
    try:
        raw = tomllib.loads(source)
    except tomllib.TOMLDecodeError as err:
        raise SpecError(str(path), f"not valid TOML: {err}", "fix the syntax at that line") from None
    token = _BASE_DIR.set(path.resolve().parent)
    try:
        return _load(path, source, raw, variant, flags, tuple(sets))
    except UserError as err:
        raise _from_set(err, sets) from None
    finally:
        _BASE_DIR.reset(token)


def _load(path: Path, source: str, raw: dict, variant: str | None, flags: dict[str, Any] | None,
          sets: tuple[str, ...] = ()) -> Sweep:
    for key in raw:
        if key not in TOP_KEYS:
            raise SpecError(key, "unknown key", f"use one of: {', '.join(TOP_KEYS)}")
    spec = _apply_variant(raw, variant)
    flags = {k: v for k, v in (flags or {}).items() if v is not None}

    for key, fix in (("name", "e.g. name = \"scan\""), ("experiment", "e.g. experiment = \"fit-neuron\"")):
        if key not in spec:
            raise SpecError(key, "missing", fix)
        _expect(spec[key], str, key, fix)
    if not NAME_RE.match(spec["name"]):
        raise SpecError("name", f"{spec['name']!r} has characters other than letters, digits, '.', '_', '-'",
                        "use a short name such as gif-scan")
    from diffbrain.experiments import get

    try:
        exp = get(spec["experiment"])
    except ImportError as err:  # registered, but its module is missing from this installation
        raise SpecError("experiment", f"{spec['experiment']!r} cannot be loaded here ({err})",
                        "install a diffbrain version that has it") from None
    if sets:
        spec, set_resources = apply_sets(spec, exp, sets, flags)
        flags = {**set_resources, **flags}
    store = _expect(spec.get("store", f"results/{spec['name']}.zarr"), str, "store", "give a folder path")
    if not store.strip():
        raise SpecError("store", "empty", "give a folder path such as results/scan.zarr")
    store_path = check_writable((path.parent / os.path.expanduser(user_path(store, "store"))).resolve(), "store")
    if store_path.suffix in (".jobs", ".lock"):
        raise SpecError("store", f"must not end in {store_path.suffix} (that name holds the sweep's "
                        f"{'job files' if store_path.suffix == '.jobs' else 'submit lock'})",
                        "use a name ending in .zarr")

    params = {k: _param_value(exp, k, v, f"params.{k}", "params") for k, v in _table(spec, "params").items()}
    grid_table = _table(spec, "grid")
    if "grid" in spec and not grid_table:
        raise SpecError("grid", "empty grid", "add parameter = [values] to [grid], or remove the [grid] table")
    grid = {k: _value_list(exp, "grid", k, v, allow_scalar=False, unique=True) for k, v in grid_table.items()}
    zips = []
    for i, table in enumerate(_tables(spec, "zip")):
        where = f"zip[{i}]"
        if not table:
            raise SpecError(where, "empty zip table", "give two or more lists of equal length")
        group = {k: _value_list(exp, where, k, v, allow_scalar=False) for k, v in table.items()}
        lengths = {k: len(v) for k, v in group.items()}
        first = next(iter(group))
        for k, n in lengths.items():
            if n != lengths[first]:
                raise SpecError(f"{where}.{k}", f"has {n} values but {where}.{first} has {lengths[first]}",
                                "give every list of one [[zip]] table the same length")
        zips.append(group)
    seed, count, dists = _random(exp, _table(spec, "random"))

    seen: dict[str, str] = {}
    sections = [("params", params), ("grid", grid), *((f"zip[{i}]", z) for i, z in enumerate(zips)),
                ("random", dists)]
    for section, keys in sections:
        for k in keys:
            if k in seen:
                raise SpecError(f"{section}.{k}", f"also set in {seen[k]}", "set each parameter in one section")
            seen[k] = section

    exclude = tuple(_matchers(exp, "exclude", _tables(spec, "exclude")))
    optional = tuple(_matchers(exp, "optional", _tables(spec, "optional")))
    base, override_tables = _resources(_table(spec, "resources"), flags)
    overrides = _overrides(exp, base, override_tables, flags)
    missing = [p.name for p in exp.params if p.name not in seen and p.default is REQUIRED]
    if missing:
        raise SpecError(f"params.{missing[0]}", f"required by experiment {exp.name!r}",
                        f"set it in [params] or [grid] ({exp.param(missing[0]).help})")
    return Sweep(
        name=spec["name"], experiment=exp, store=store_path, params=params, grid=grid, zips=tuple(zips),
        random_seed=seed, random_count=count, random=dists, exclude=exclude, optional=optional,
        resources=base, overrides=overrides, path=path.resolve(), source=source, variant=variant, spec=spec,
        sets=sets,
    )
