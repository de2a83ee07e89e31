"""The memory planner: per-device bytes of a network's training step, measured by XLA on small proxies.

A point's *shape* (:func:`shape_of`: method, neurons, connectivity, operator, batch, time steps, inputs)
decides its memory. :func:`footprints` compiles, for each distinct shape, the training step of a few small
proxy networks (the same method, connectivity rule and operator) and reads XLA's compiled memory analysis
(temp, argument and output bytes). Every buffer of the step is a product of the shape's sizes, so the bytes
are fitted, non-negative least squares, as a sum of the terms the step holds (:data:`TERMS`): the
feed-forward weights (N), the neuron states per trial (B N), BPTT's stored steps (T B N, bptt only), the
recurrent weights (synapses: nnz on CSR, N^2 dense) and per-trial synapse temporaries (B nnz or B N^2). The
proxies (4, or 5 for BPTT) vary N, B and T around a fixed small base (:func:`proxy_design`), so every point
of a *family* (method, connectivity rule, operator, inputs) shares them; the fit is evaluated at the
point's sizes: that extrapolation is the estimate. The structure (CSR indices or dense mask, captured by the program
as constants, which the memory analysis does not count) is added from its known size.

:func:`place` turns a footprint into per-device bytes for each layout (``none``; ``data`` over D devices: the
fit evaluated at B/D trials, everything else replicated; ``neurons`` over D devices: an *estimate* until that
layout is measured: the layout's own analytic count, at least the step's bytes split by D plus the all-gathered
spikes) and picks
the smallest layout that fits a device. Compiles run in a subprocess (``python -m diffbrain.network.planner``,
JSON on stdin and stdout, on the CPU backend) once per family; fits are cached as JSON files in
:func:`cache_dir`, so a second ``sweep plan`` compiles nothing. Nothing here imports JAX.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import subprocess
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from diffbrain.network.parallel import MemoryFit

VERSION = 2  # bump when what is measured or fitted changes (older cache files are then ignored)
F32 = 4
# the fraction of a GPU's memory a JAX process may use by default (XLA_PYTHON_CLIENT_MEM_FRACTION: 0.75)
GPU_USABLE = 0.75
# what a point's footprint depends on (``parallel``/``devices`` only choose among layouts)
SHAPE_FIELDS = ("method", "n_rec", "conn_method", "conn_prob", "conn_num", "conn_width", "self_synapses", "impl",
                "batch", "n_steps", "n_in", "remat")
# fitted terms: name -> (BPTT only, the term's size from (N, B, T, synapses)); no constant term: the proxies
# are large enough (tens of KB of fixed buffers against MB of sized ones) that it is lost in the others
TERMS = {
    "neurons": (False, lambda n, b, t, s: n),
    "trial_neurons": (False, lambda n, b, t, s: b * n),
    "stored_steps": (True, lambda n, b, t, s: t * b * n),
    "synapses": (False, lambda n, b, t, s: s),
    "trial_synapses": (False, lambda n, b, t, s: b * s),
}
PARTS = ("temp", "argument", "output")
PROXY_N, PROXY_B, PROXY_T, PROXY_PROB = 128, 8, 30, 0.2


@dataclass(frozen=True)
class Fit:
    """XLA's bytes of a family of shapes (one method, connectivity rule and operator), fitted from its proxies:
    ``coefficients[part][term]`` bytes per unit of each term; ``proxies``: (n_rec, batch, n_steps, synapses,
    temp, argument, output) as measured."""

    design: tuple
    coefficients: dict
    proxies: tuple

    def to_json(self) -> dict:
        return {"version": VERSION, "design": [dict(d) for d in self.design], "coefficients": self.coefficients,
                "proxies": [list(p) for p in self.proxies]}

    @classmethod
    def from_json(cls, data: dict) -> Fit:
        return cls(tuple(data["design"]), data["coefficients"], tuple(tuple(p) for p in data["proxies"]))


@dataclass(frozen=True)
class Footprint:
    """One shape's bytes per device, from its family's :class:`Fit` evaluated at the shape's sizes."""

    shape: dict
    fit: Fit

    def synapses(self) -> float:
        return synapse_count(self.shape)

    def part(self, name: str, batch: float | None = None) -> float:
        """``temp``, ``argument`` or ``output`` bytes at the shape's sizes (``batch``: another trial count)."""
        s = self.shape
        sizes = (s["n_rec"], s["batch"] if batch is None else batch, s["n_steps"], self.synapses())
        return sum(c * TERMS[term][1](*sizes) for term, c in self.fit.coefficients[name].items())

    def structure(self) -> float:
        """The recurrent structure on the device (constants of the program, outside XLA's memory analysis):
        CSR column indices and values per synapse, or the dense mask."""
        return (2 * F32 if self.shape["impl"] == "event" else F32) * self.synapses()

    def step_bytes(self, batch: float | None = None) -> float:
        """Bytes one device holds for the whole step: arguments, outputs, temporaries and the structure."""
        return sum(self.part(name, batch) for name in PARTS) + self.structure()


@dataclass(frozen=True)
class DeviceBudget:
    """What a point may use: ``kind`` gpu or cpu, each device's memory (None: unknown), devices per node, nodes."""

    kind: str
    device_bytes: float | None
    per_node: int = 1
    nodes: int = 1

    @property
    def usable_bytes(self) -> float | None:
        if self.device_bytes is None:
            return None
        return self.device_bytes * (GPU_USABLE if self.kind == "gpu" else 1.0)

    @property
    def devices(self) -> int:
        return max(1, self.per_node) * max(1, self.nodes)


@dataclass(frozen=True)
class Placement:
    """A layout for one shape: ``kind`` (none, data, neurons), devices, nodes and the bytes per device;
    ``measured_layout``: False for the neurons layout (estimated, not compiled)."""

    kind: str
    devices: int
    nodes: int
    device_bytes: float
    fits: bool
    measured_layout: bool = True
    problem: str = ""  # the run's refusal (run_placement): its fix (memory) or its whole message (layout)
    refused_for: str = ""  # "memory" (no layout fits) or "layout" (the request itself cannot be met), else empty

    def describe(self) -> str:
        return "none" if self.kind == "none" else f"{self.kind} x{self.devices}"


# -- the shape of a point -------------------------------------------------------------------------------


def shape_of(network: Mapping, method: str, batch: int, n_steps: int, n_in: int, remat: bool = False) -> dict | None:
    """The shape key of a training point (``network``: its network parameters); None when it is not planned
    (a connectome: its size comes from the data)."""
    from diffbrain.network.config import NETWORK_PARAMS, NetworkConfig
    from diffbrain.network.connectivity import expected_synapses
    from diffbrain.network.crossover import choose_impl

    if network.get("conn_method") == "connectome":
        return None
    full = {**{p.name: p.default for p in NETWORK_PARAMS}, **{k: v for k, v in network.items()
                                                             if k in {p.name for p in NETWORK_PARAMS}}}
    cfg = NetworkConfig.from_params(full)
    impl = "dense" if cfg.conn_method == "dense" else cfg.sparse_impl
    if impl == "auto":
        impl = choose_impl(method, cfg.n_rec, expected_synapses(cfg) / cfg.n_rec**2)
    return {"method": method, "n_rec": int(cfg.n_rec), "conn_method": cfg.conn_method,
            "conn_prob": float(cfg.conn_prob), "conn_num": int(cfg.conn_num), "conn_width": float(cfg.conn_width),
            "self_synapses": bool(cfg.self_synapses), "impl": impl, "batch": int(batch), "n_steps": int(n_steps),
            "n_in": int(n_in), "remat": bool(remat and method == "bptt")}


def training_shape(params: Mapping) -> dict | None:
    """The shape of a ``train-network`` point (validated parameters), with its ``parallel``/``devices``
    request; None for a simulation (``mode = sim``) or a connectome."""
    from diffbrain.network.config import TaskConfig

    if params.get("mode", "train") != "train" or params.get("conn_method") == "connectome":
        return None
    task = TaskConfig.from_params(params)
    shape = shape_of(params, params["method"], params["batch_size"], task.n_steps(params.get("dt", 1.0)),
                     task.n_in, params.get("remat", False))
    return None if shape is None else {**shape, **request_of(params)}


def request_of(params: Mapping) -> dict:
    """A point's own layout request: ``parallel`` and ``devices`` (auto and 0 when it has none)."""
    return {"parallel": params.get("parallel", "auto"), "devices": int(params.get("devices", 0) or 0)}


def _network_params(shape: Mapping, n: int | None = None) -> dict:
    n = shape["n_rec"] if n is None else n
    return {"n_rec": n, "conn_method": shape["conn_method"], "conn_prob": shape["conn_prob"],
            "conn_num": min(shape["conn_num"], n - 1), "conn_width": shape["conn_width"],
            "self_synapses": shape["self_synapses"], "sparse_impl": "event" if shape["impl"] == "event" else
            "masked_dense" if shape["impl"] == "masked_dense" else "auto"}


def synapse_count(shape: Mapping, n: int | None = None) -> float:
    """The synapse term of ``shape`` at ``n`` neurons: expected CSR non-zeros, or N^2 for dense matrices."""
    from diffbrain.network.config import NETWORK_PARAMS, NetworkConfig
    from diffbrain.network.connectivity import expected_synapses

    n = shape["n_rec"] if n is None else n
    if shape["impl"] != "event":
        return float(n) * n
    cfg = NetworkConfig.from_params({**{p.name: p.default for p in NETWORK_PARAMS}, **_network_params(shape, n)})
    return float(expected_synapses(cfg))


def key_of(shape: Mapping) -> str:
    """The cache key of ``shape``'s family (its proxy design)."""
    text = json.dumps({"version": VERSION, "design": proxy_design(shape)}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


# -- the proxies ----------------------------------------------------------------------------------------


def proxy_design(shape: Mapping) -> tuple[dict, ...]:
    """The proxies compiled for ``shape``'s family: N at two sizes and B at two, T at two for BPTT, around a
    fixed base (so that every point of a family shares them; a CSR's per-synapse costs do not depend on the
    density, so random connectivity is compiled at one probability)."""
    n0 = max(PROXY_N, 2 * shape["conn_num"]) if shape["conn_method"] in ("fixed_in", "fixed_out") else PROXY_N
    points = [(n0, PROXY_B, PROXY_T), (n0, 2 * PROXY_B, PROXY_T), (2 * n0, PROXY_B, PROXY_T),
              (2 * n0, 2 * PROXY_B, PROXY_T)]
    if shape["method"] == "bptt":
        points.append((n0, PROXY_B, 2 * PROXY_T))
    family = {**{k: shape[k] for k in SHAPE_FIELDS}, "conn_num": min(shape["conn_num"], n0 - 1)}
    if shape["conn_method"] == "rand":
        family["conn_prob"] = PROXY_PROB
    if shape["conn_method"] in ("dense", "rand", "fixed_in", "fixed_out"):
        family["conn_width"] = 0.1  # not used by these rules: one family whatever the value
    if shape["conn_method"] not in ("fixed_in", "fixed_out"):
        family["conn_num"] = 1
    return tuple({**family, "n_rec": n, "batch": b, "n_steps": t} for n, b, t in points)


def terms_for(shape: Mapping) -> list[str]:
    return [t for t, (bptt_only, _) in TERMS.items() if not bptt_only or shape["method"] == "bptt"]


def fit(design: Sequence[Mapping], measured: Sequence[Mapping]) -> Fit:
    """Non-negative least squares of each part's bytes over the family's terms, relative residuals (every
    proxy counts alike, whatever its size)."""
    import numpy as np
    from scipy.optimize import nnls

    terms = terms_for(design[0])
    rows, proxies = [], []
    for m in measured:
        sizes = (m["n_rec"], m["batch"], m["n_steps"], m["synapses"])
        rows.append([TERMS[t][1](*sizes) for t in terms])
        proxies.append((m["n_rec"], m["batch"], m["n_steps"], m["synapses"], m["temp"], m["argument"], m["output"]))
    matrix = np.asarray(rows, dtype=np.float64)
    scale = np.maximum(np.abs(matrix).max(axis=0), 1.0)  # columns of comparable size for the solver
    coefficients = {}
    for part in PARTS:
        y = np.asarray([m[part] for m in measured], dtype=np.float64)
        weight = 1.0 / np.maximum(y, 1.0)
        solution, _ = nnls(matrix * weight[:, None] / scale, y * weight)
        coefficients[part] = {t: float(c / sc) for t, c, sc in zip(terms, solution, scale, strict=True)}
    return Fit(tuple(dict(d) for d in design), coefficients, tuple(proxies))


def measure(shape: Mapping) -> dict:
    """Compile one shape's training step (JAX, this process) and read XLA's memory analysis."""
    from diffbrain.network.config import NETWORK_PARAMS, NetworkConfig, TaskConfig, TrainConfig, probe_task
    from diffbrain.network.training import Trainer

    net = NetworkConfig.from_params({**{p.name: p.default for p in NETWORK_PARAMS}, **_network_params(shape)})
    task = TaskConfig(**probe_task(shape["n_steps"], 1.0), n_per_group=max(1, shape["n_in"] // 4)).check(1.0)
    train = TrainConfig(method=shape["method"], batch_size=shape["batch"], remat=shape["remat"], iterations=1)
    stats = Trainer(net, task, train).compile()
    return {"n_rec": shape["n_rec"], "batch": shape["batch"], "n_steps": shape["n_steps"],
            "synapses": synapse_count(shape), "temp": stats.temp_bytes, "argument": stats.argument_bytes,
            "output": stats.output_bytes}


def _compile_main() -> None:
    """``python -m diffbrain.network.planner``: shapes (JSON list) on stdin -> footprints (JSON list) on stdout."""
    designs = json.load(sys.stdin)
    json.dump([fit(design, [measure(proxy) for proxy in design]).to_json() for design in designs], sys.stdout)


def enabled(environ: Mapping = os.environ) -> bool:
    """False when ``DIFFBRAIN_MEMORY_PLAN`` is off (0, off, no, false, none): ``sweep plan`` compiles no proxies
    and a run checks its memory with the analytic estimate only."""
    return environ.get("DIFFBRAIN_MEMORY_PLAN", "").strip().lower() not in {"0", "off", "no", "false", "none"}


# -- the cache and the subprocess ---------------------------------------------------------------------------


def cache_dir(environ: Mapping = os.environ) -> Path:
    """``DIFFBRAIN_PLAN_CACHE``, else ``$XDG_CACHE_HOME/diffbrain/memory-plan`` (``~/.cache/...``)."""
    if environ.get("DIFFBRAIN_PLAN_CACHE"):
        return Path(environ["DIFFBRAIN_PLAN_CACHE"]).expanduser()
    base = environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "diffbrain" / "memory-plan"


def cached(shape: Mapping) -> Footprint | None:
    """The footprint of ``shape`` from its family's cached fit (no compile), None when never planned."""
    path = cache_dir() / f"{key_of(shape)}.json"
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return Footprint(dict(shape), Fit.from_json(data)) if data.get("version") == VERSION else None


def footprints(shapes: Iterable[Mapping], timeout_s: float = 3600) -> list[Footprint]:
    """The footprint of each shape: its family's fit from the cache, else compiled (every missing family in
    one subprocess, on the CPU backend, one device) and cached. RuntimeError when the subprocess fails."""
    shapes = list(shapes)
    found = [cached(s) for s in shapes]  # each cache file read once
    missing = {key_of(s): proxy_design(s) for s, fp in zip(shapes, found, strict=True) if fp is None}
    if missing:
        env = {**os.environ, "JAX_PLATFORMS": "cpu"}
        env.pop("XLA_FLAGS", None)  # one device: a proxy measures one device's program
        done = subprocess.run([sys.executable, "-m", "diffbrain.network.planner"], input=json.dumps(
            list(missing.values())), capture_output=True, text=True, env=env, timeout=timeout_s)
        if done.returncode:
            last = (done.stderr.strip().splitlines() or ["no output"])[-1]
            raise RuntimeError(f"compiling the memory planner's proxies failed: {last}")
        folder = cache_dir()
        for key, data in zip(missing, json.loads(done.stdout), strict=True):
            try:
                folder.mkdir(parents=True, exist_ok=True)
                path = folder / f"{key}.json"
                tmp = path.with_name(f".{path.name}.{os.getpid()}")
                tmp.write_text(json.dumps(data))
                tmp.replace(path)
            except OSError:  # a read-only cache: the fit is used once and planned again next time
                missing[key] = Fit.from_json(data)
    out = []
    for s, fp in zip(shapes, found, strict=True):
        if fp is None:
            fp = cached(s)  # just compiled and written
        if fp is None:
            known = missing.get(key_of(s))
            if not isinstance(known, Fit):
                raise RuntimeError(f"the memory plan of {key_of(s)} was not written to {cache_dir()}")
            fp = Footprint(dict(s), known)
        out.append(fp)
    return out


# -- layouts ---------------------------------------------------------------------------------------------


def layout_bytes(fp: Footprint, kind: str, devices: int) -> float:
    """Bytes per device of ``fp`` under layout ``kind`` on ``devices`` devices.

    ``data``: the step at B/D trials (XLA measured the per-trial terms), the weights, optimiser state and
    structure replicated. ``neurons``: estimated, not measured: the neuron layout's own analytic count
    (:func:`diffbrain.network.parallel.neurons_device_estimate`: its column blocks, CSR blocks under BPTT or
    slots under ES-D-RTRL, its neurons' states and traces, the all-gathered spikes), and never less than the
    measured step split by D plus the gathered spikes (float32, per trial; BPTT keeps them for every step).
    """
    from diffbrain.network.parallel import neurons_device_estimate

    s = fp.shape
    if kind == "none" or devices <= 1:
        return fp.step_bytes()
    if kind == "data":
        return fp.step_bytes(s["batch"] / devices)
    gathered = s["batch"] * s["n_rec"] * F32 * (s["n_steps"] if s["method"] == "bptt" else 2)
    impl = s["impl"] if s["impl"] in ("event", "masked_dense") else "auto"
    analytic = neurons_device_estimate(s["n_rec"], s["n_in"], 2, devices, s["method"], s["batch"], s["n_steps"],
                                       sparse=s["conn_method"] != "dense", n_synapses=fp.synapses(),
                                       sparse_impl=impl).total
    return max(float(analytic), fp.step_bytes() / devices + gathered)


def candidates(fp: Footprint, budget: DeviceBudget, parallel: str = "auto", devices: int = 0) -> list[Placement]:
    """Every layout the point may take within ``budget``, fewest devices first (none, data, then neurons at
    equal counts); ``parallel``/``devices``: the point's own request (auto and 0: any)."""
    from diffbrain.network.parallel import choose_layout
    from diffbrain.params import ParamError

    usable = budget.usable_bytes
    most = budget.devices if budget.kind == "gpu" else 1
    counts = [devices] if devices else list(range(1, most + 1))
    s = fp.shape
    out = []
    for d in counts:
        kinds = ["none"] if d == 1 else ["data", "neurons"]
        for kind in kinds:
            if parallel not in ("auto", kind) and not (parallel == "none" and d == 1):
                continue
            try:  # what the run itself accepts (an even split of the batch or of the neurons, the method)
                choose_layout(kind, d, range(d), s["batch"], s["n_rec"], s["method"])
            except ParamError:
                continue
            need = layout_bytes(fp, kind, d)
            nodes = math.ceil(d / max(1, budget.per_node)) if budget.kind == "gpu" else 1
            out.append(Placement(kind, d, nodes, need, usable is None or need <= usable, kind != "neurons"))
    return out


def place(fp: Footprint, budget: DeviceBudget, parallel: str = "auto", devices: int = 0) -> Placement:
    """The smallest layout that fits a device of ``budget`` (fewest devices), or the one needing the least
    memory per device, marked ``fits=False``, when none does."""
    options = candidates(fp, budget, parallel, devices)
    if not options:  # e.g. data on a device count that does not divide the batch: judge one device
        options = candidates(fp, budget, "auto", 1)
    for option in options:
        if option.fits:
            return option
    return min(options, key=lambda o: o.device_bytes)


def memory_fit(fp: Footprint, limit: Callable[[int], float | None], where: str) -> MemoryFit:
    """The planner's figures as :func:`~diffbrain.network.parallel.choose_layout` checks them: ``fp``'s bytes
    per device for each layout against ``limit(n)``, the bytes a device may hold when ``n`` are used (None:
    unknown); ``where``, that limit in words."""
    from diffbrain.network.parallel import MemoryFit

    return MemoryFit(lambda kind, n: layout_bytes(fp, kind, n), limit, "planner", where)


def run_placement(fp: Footprint, budget: DeviceBudget, parallel: str = "auto", devices: int = 0) -> Placement:
    """The layout the run itself will take on ``budget``'s devices (every GPU of every node, or the one CPU
    device): :func:`~diffbrain.network.parallel.choose_layout` with this footprint's bytes, the rule the run
    applies. When the run would refuse the point, the layout it would come closest with, ``fits=False`` and
    ``problem`` saying why."""
    from diffbrain.network.memory import readable_bytes
    from diffbrain.network.parallel import DoesNotFit, auto_layouts, choose_layout
    from diffbrain.params import ParamError

    s = fp.shape
    # a GPU budget's devices, every process's; on the CPU, the point's own count (forced host devices) or one
    seen = list(range(budget.devices if budget.kind == "gpu" else max(1, devices)))
    fit = memory_fit(fp, lambda n: budget.usable_bytes, f"each device may hold {readable_bytes(budget.usable_bytes)}"
                     if budget.usable_bytes is not None else "memory unknown")
    try:
        layout = choose_layout(parallel, devices, seen, s["batch"], s["n_rec"], s["method"], memory=fit)
        problem = ""
    except DoesNotFit as err:
        tried = auto_layouts(devices, seen, s["batch"], s["n_rec"], s["method"]) if parallel == "auto" else [
            choose_layout(parallel, devices, seen, s["batch"], s["n_rec"], s["method"])]
        layout, problem = min(tried, key=lambda t: layout_bytes(fp, t.kind, t.n_devices)), err.fix
    except ParamError as err:  # the run refuses the request itself (an uneven split, the method)
        return Placement(parallel, devices or len(seen), 1, fp.step_bytes(), False, True, err.message, "layout")
    n = layout.n_devices
    nodes = math.ceil(n / max(1, budget.per_node)) if budget.kind == "gpu" else 1
    return Placement(layout.kind, n, nodes, layout_bytes(fp, layout.kind, n), not problem, layout.kind != "neurons",
                     problem, "memory" if problem else "")


def planned_bytes(shape: Mapping | None, kind: str, devices: int) -> float:
    """At run time: the planner's bytes per device for this layout from the cache (NaN when the shape was never
    planned; nothing is compiled)."""
    fp = cached(shape) if shape is not None else None
    return float("nan") if fp is None else float(layout_bytes(fp, kind, devices))


if __name__ == "__main__":
    _compile_main()
