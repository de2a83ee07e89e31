"""``fit-neuron``: fit a GIF or Hodgkin-Huxley model to potential or spike targets, by gradient or a baseline.

Targets are either synthetic (a protocol simulated at the ``true_*`` parameters, plus optional
measurement noise) or a trace file (NPZ, or the paper's CSV layout with ``voltage_traces`` and
``dt_ms``). The result follows docs/store-format.md. JAX is imported inside :func:`run` only. Points
that share shapes reuse the compiled programs: parameters, bounds, data and seeds are traced values.

The string parameters are checked before anything runs (:meth:`Experiment.check_point`, from ``sweep
plan``): ``bounds`` and ``fixed`` must name the model's parameters, ``traces`` / ``voltage_traces`` must be
readable trace files that serve the target (relative paths in a sweep file: relative to its folder).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from functools import lru_cache

from diffbrain import assignments
from diffbrain.errors import BadInput
from diffbrain.experiments.base import Experiment, Param, ParamError, RunContext
from diffbrain.fitting import default_starts
from diffbrain.methods import FIT_METHODS
from diffbrain.neuron import MODELS
from diffbrain.traces import PROTOCOLS

METHOD_NAMES = FIT_METHODS
PROTOCOL_NAMES = PROTOCOLS


def parse_assignments(text: str, field: str) -> dict[str, float]:
    """``"NAME=VALUE,NAME=VALUE"`` -> {name: float} (ParamError naming ``field``)."""
    return assignments.numbers(assignments.split_text(text), field, "write e.g. A1=0.5,A2=-0.1", ParamError)


def bounds_from_text(model_name: str, text: str, field: str = "bounds") -> dict[str, tuple[float, float]]:
    """The model's search bounds with ``"NAME=LO:HI,..."`` applied (ParamError naming ``field``); no JAX."""
    return assignments.bounds(text, MODELS[model_name].bounds(), model_name, field, ParamError)


@lru_cache(maxsize=1024)
def _bounds_problem(model_name: str, text: str) -> ParamError | None:
    try:
        bounds_from_text(model_name, text)
    except ParamError as err:
        return err
    return None


def _check_bounds(text: str, params: Mapping) -> None:
    err = _bounds_problem(params["model"], text)
    if err is not None:
        raise err


def fixed_from_text(model_name: str, text: str, field: str = "fixed") -> dict[str, float]:
    """``"NAME=VALUE,..."`` fixed model constants, checked against the model (ParamError naming ``field``)."""
    model = MODELS[model_name]
    fixed = parse_assignments(text, field)
    unknown = sorted(set(fixed) - set(model.fixed_names))
    if unknown:
        raise ParamError(field, f"{unknown[0]!r} is not a fixed parameter of {model_name!r}",
                         f"use one of: {', '.join(model.fixed_names)}")
    return fixed


@lru_cache(maxsize=1024)
def _fixed_problem(model_name: str, text: str) -> ParamError | None:
    try:
        fixed_from_text(model_name, text)
    except ParamError as err:
        return err
    return None


def _check_fixed(text: str, params: Mapping) -> None:
    err = _fixed_problem(params["model"], text)
    if err is not None:
        raise err


@lru_cache(maxsize=256)
def _trace_problem(path: str, voltage: str, dt_ms: float, target: str) -> BadInput | None:
    from diffbrain import traces as tr

    try:
        tr.load(path, voltage or None, dt_ms or None).require(target)
    except BadInput as err:
        return err
    return None


def _check_point(params: Mapping) -> None:
    """Checks across parameters: trace files that load and serve the target, a baseline's population."""
    if params["traces"]:
        err = _trace_problem(params["traces"], params["voltage_traces"], params["dt_ms"], params["target"])
        if err is not None:  # a field inside the file ("PATH:current") is named in the problem
            if ":" in err.field:
                raise ParamError("traces", f"{err.field}: {err.problem}", err.fix)
            if err.field == "dt":  # the loader's name for the time step; here it is dt_ms
                raise ParamError("dt_ms", err.problem, "set dt_ms, the time step in ms (a CSV file does not carry it)")
            raise ParamError(err.field, err.problem, err.fix)
    elif params["voltage_traces"]:
        raise ParamError("voltage_traces", "given without a 'traces' CSV file", "set traces to the current CSV")
    starts = params["starts"] or default_starts(params["method"])
    if params["method"] != "gradient" and starts < 2:
        raise ParamError("starts", f"a population of {starts}", "give at least 2 for a baseline method")


def _true_params() -> tuple[Param, ...]:
    return tuple(Param(f"true_{p.name}", float, p.default, f"ground truth of {p.name} ({p.unit}) for synthetic "
                       f"{model.name} targets") for model in MODELS.values() for p in model.fitted)


def _targets(params: dict, ctx: RunContext, model, fixed: dict):
    """(traces, true values [P] or NaN) for the point: a loaded file or a simulated protocol."""
    import numpy as np

    from diffbrain import traces as tr
    from diffbrain.neuron import simulate

    if params["traces"]:
        traces = tr.load(params["traces"], params["voltage_traces"] or None, params["dt_ms"] or None)
        return traces, np.full(len(model.fitted), np.nan)
    if params["voltage_traces"]:
        raise ParamError("voltage_traces", "given without a 'traces' CSV file", "set traces to the current CSV")
    truth = {p.name: params[f"true_{p.name}"] for p in model.fitted}
    dt = params["dt_ms"] or model.default_dt_ms
    duration = params["duration_ms"] or model.default_duration_ms
    current = tr.protocol(params["protocol"], model.name, duration, dt, params["n_traces"], seed=ctx.seed)
    sim = simulate(model, current, dt, {**truth, **fixed})
    voltage = sim.voltage
    if params["noise_mv"] > 0:
        rng = np.random.default_rng([ctx.seed, 1])
        voltage = voltage + params["noise_mv"] * rng.standard_normal(voltage.shape)
    if not np.isfinite(voltage).all():
        raise ParamError("fixed" if fixed else "true_" + model.fitted[0].name,
                         "the synthetic target diverged (non-finite voltage)",
                         "choose parameters in the model's working range")
    traces = tr.Traces(current, dt, voltage, sim.spikes, source=f"{params['protocol']} protocol")
    return traces, np.asarray([truth[p.name] for p in model.fitted])


def run(params: dict, ctx: RunContext):
    import numpy as np
    import xarray as xr

    from diffbrain.fitting import fit, fitted_traces, make_problem

    model = MODELS[params["model"]]
    fixed = fixed_from_text(model.name, params["fixed"])
    box = bounds_from_text(model.name, params["bounds"])
    _check_point(params)
    starts = params["starts"] or default_starts(params["method"])
    ctx.report(0.0, "building targets")
    traces, truth = _targets(params, ctx, model, fixed)
    problem = make_problem(model.name, params["target"], traces, box, fixed, params["points"],
                           params["delta_ms"] or None)
    budget = params["budget"] or None
    result = fit(problem, params["method"], starts, budget, ctx.seed,
                 report=lambda f, m: ctx.report(0.05 + 0.9 * f, m))
    ctx.report(0.97, "fitted traces")
    v_fit, s_fit = fitted_traces(problem, result)
    stride = max(1, math.ceil(traces.n_steps / params["keep_samples"]))
    keep = slice(None, None, stride)
    time_ms = np.arange(traces.n_steps)[keep] * traces.dt
    target_v = traces.voltage if traces.voltage is not None else np.full(traces.current.shape, np.nan)
    if traces.spikes is not None:
        target_count = traces.spikes.sum(axis=1)
    else:  # read off the recorded voltage (threshold crossings, or GIF resets)
        target_count = model.spikes_from_voltage(traces.voltage, model.constants(fixed)).sum(axis=1)
    names = list(model.fitted_names)
    units = {p.name: p.unit for p in model.fitted}
    loss_units = result.loss_units
    f32 = np.float32
    data = {
        "fitted": (("param",), result.best.astype(f32), {"param_units": units}),
        "true_value": (("param",), np.asarray(truth, f32), {"param_units": units}),
        "lower": (("param",), np.asarray([box[n][0] for n in names], f32), {"param_units": units}),
        "upper": (("param",), np.asarray([box[n][1] for n in names], f32), {"param_units": units}),
        "loss": ((), f32(result.loss), {"units": loss_units}),
        "start_loss": (("start",), result.start_loss.astype(f32), {"units": loss_units}),
        "start_params": (("start", "param"), result.start_params.astype(f32), {"param_units": units}),
        "evaluations": ((), np.int64(result.evaluations), {"units": "1"}),
        "seconds": ((), f32(result.seconds), {"units": "s"}),
        "progress_seconds": (("progress",), result.progress_seconds.astype(f32), {"units": "s"}),
        "progress_loss": (("progress",), result.progress_loss.astype(f32), {"units": loss_units}),
        "current": (("trace", "time"), traces.current[:, keep].astype(f32), {"units": "nA"}),
        "target_voltage": (("trace", "time"), target_v[:, keep].astype(f32), {"units": "mV"}),
        "fitted_voltage": (("trace", "time"), v_fit[:, keep].astype(f32), {"units": "mV"}),
        "target_spike_count": (("trace",), np.asarray(target_count, f32), {"units": "1"}),
        "fitted_spike_count": (("trace",), s_fit.sum(axis=1).astype(f32), {"units": "1"}),
        "dt": ((), f32(traces.dt), {"units": "ms"}),
    }
    coords = {
        "param": ("param", names),
        "time": ("time", time_ms.astype(f32), {"units": "ms"}),
        "start": ("start", np.arange(len(result.start_loss))),
        "progress": ("progress", np.arange(len(result.progress_seconds))),
        "trace": ("trace", np.arange(traces.n_traces)),
    }
    ctx.report(1.0, f"loss {result.loss:.4g} {loss_units}")
    return xr.Dataset(data, coords=coords, attrs={
        "model": model.name, "target": params["target"], "method": params["method"],
        "loss_units": loss_units, "source": traces.source,
    })


EXPERIMENT = Experiment(
    name="fit-neuron",
    params=(
        Param("model", str, "gif", "neuron model", choices=tuple(MODELS)),
        Param("target", str, "potential", "fit the voltage (RMSE) or the spike train (gamma factor)",
              choices=("potential", "spike")),
        Param("method", str, "gradient", "optimiser", choices=METHOD_NAMES),
        Param("starts", int, 0, "starts polished after the screen (gradient) or population size (baselines); "
              "0 = the method's default (gradient 2, baselines 20)", low=0),
        Param("budget", int, 0, "total evaluations in forward-equivalents, the same for every method; 0 = the "
              "method's default (gradient 2048, baselines population x 5)", low=0),
        Param("protocol", str, "steps", "synthetic input protocol", choices=PROTOCOL_NAMES),
        Param("traces", str, "", "trace file (.npz, or .csv of currents in A); empty = synthetic target",
              path=True),
        Param("voltage_traces", str, "", "CSV of voltages (mV) that goes with a CSV 'traces' file", path=True),
        Param("duration_ms", float, 0.0, "synthetic trace length in ms; 0 = model default (gif 1000, hh 14.97)",
              low=0.0),
        Param("dt_ms", float, 0.0, "time step in ms; 0 = model default (gif 0.1, hh 0.01); required for CSV",
              low=0.0),
        Param("n_traces", int, 5, "synthetic traces", positive=True),
        Param("noise_mv", float, 0.0, "sd of Gaussian noise added to synthetic voltages (mV)", low=0.0),
        *_true_params(),
        Param("bounds", str, "", "search bounds 'NAME=LO:HI,...'; empty = the paper's bounds", check=_check_bounds),
        Param("fixed", str, "", "fixed model constants 'NAME=VALUE,...' (e.g. A1=0.5)", check=_check_fixed),
        Param("points", int, 0, "potential target: compare at this many samples per trace (0 = all)", low=0),
        Param("delta_ms", float, 0.0, "gamma-factor coincidence window in ms; 0 = model default", low=0.0),
        Param("keep_samples", int, 500, "samples per trace kept in the stored traces", positive=True),
    ),
    run=run,
    check=_check_point,
    help="Fit a GIF or HH neuron to potential or spike targets by gradient (screen, then polish) or a baseline.",
)
