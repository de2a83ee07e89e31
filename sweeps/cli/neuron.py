"""``diffbrain simulate`` and ``diffbrain fit``: synthetic targets and single-neuron fits from the command line.

JAX and the models load inside the commands only. Every input is checked before anything is written;
outputs go to temporary siblings renamed into place, so bad input or a crash leaves nothing behind.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import click

from analysis.progress import bar as progress_bar
from diffbrain.methods import FIT_METHODS as METHOD_NAMES
from diffbrain.neuron import MODELS
from diffbrain.traces import PROTOCOLS as PROTOCOL_NAMES

MODEL_NAMES = tuple(MODELS)


def parse_numbers(items: tuple[str, ...], option: str) -> dict[str, float]:
    """``("NAME=NUMBER", ...)`` -> {name: float} (BadInput naming the option)."""
    from diffbrain import assignments

    return assignments.numbers(items, option, f"write e.g. {option} a=0.005")


def check_finite(**options: float | None) -> None:
    """BadInput naming the first option (``dt=--dt``) whose value is NaN or infinite."""
    from diffbrain.errors import BadInput

    for name, value in options.items():
        if value is not None and not math.isfinite(value):
            raise BadInput(f"--{name}", f"{value!r} is not a finite number", "give a finite number")


def check_out_file(path: str) -> Path:
    from analysis.paths import check_writable
    from diffbrain.errors import BadInput

    out = check_writable(path, "--out", kind="file")
    if out.is_dir():
        raise BadInput("--out", f"{out} is a directory", "give a file name such as traces.npz")
    if not out.parent.exists():
        raise BadInput("--out", f"directory {out.parent} does not exist", "create it first")
    if out.suffix.lower() != ".npz":
        raise BadInput("--out", f"{out.name} does not end in .npz", "name the output like traces.npz")
    return out


def check_out_dir(path: str) -> Path:
    from analysis.paths import check_writable
    from diffbrain.errors import BadInput

    out = check_writable(path, "--out", kind="path")
    if out.exists() and not out.is_dir():
        raise BadInput("--out", f"{out} is a file", "give a directory for fit.json and fit.png")
    if not out.parent.exists():
        raise BadInput("--out", f"directory {out.parent} does not exist", "create it first")
    return out


def write_files(out_dir: Path, writers: dict[str, Callable[[Path], None]]) -> None:
    """Write every file into a temporary sibling directory, then move them into ``out_dir`` (created if needed)."""
    from analysis import atomic

    with atomic.staged_files(out_dir) as tmp:
        for name, write in writers.items():
            write(tmp / name)


@click.command(name="simulate")
@click.argument("model", type=click.Choice(MODEL_NAMES))
@click.option("--param", "params", multiple=True, metavar="NAME=VALUE",
              help="a model parameter (fitted or fixed), in the model's units; repeatable")
@click.option("--protocol", type=click.Choice(PROTOCOL_NAMES), default=None,
              help="synthetic input current (default steps: for gif the paper's five step protocols)")
@click.option("--current", "current_file", type=click.Path(dir_okay=False), default=None,
              help="input currents instead of a protocol: NPZ ('current' nA [B, T], 'dt' ms) or CSV (A, needs --dt)")
@click.option("--dt", type=float, default=None, help="time step in ms (default: gif 0.1, hh 0.01)")
@click.option("--duration", type=float, default=None, help="protocol length in ms (default: gif 1000, hh 14.97)")
@click.option("--traces", "n_traces", type=int, default=5, show_default=True, help="protocol traces")
@click.option("--noise", type=float, default=0.0, show_default=True, help="sd of noise added to the voltage (mV)")
@click.option("--seed", type=int, default=0, show_default=True, help="seed of noisy protocols and voltage noise")
@click.option("--out", required=True, type=click.Path(), help="output NPZ: current, dt, voltage, spikes")
def simulate(model, params, protocol, current_file, dt, duration, n_traces, noise, seed, out):
    """Simulate MODEL at known parameters and write a target (voltage and spikes) to an NPZ."""
    import numpy as np

    from diffbrain import traces as tr
    from diffbrain.errors import BadInput
    from diffbrain.neuron import get_model
    from diffbrain.neuron import simulate as run_model

    neuron = get_model(model)
    out_path = check_out_file(out)
    values = parse_numbers(params, "--param")
    neuron.theta(values, field="--param")  # unknown names -> BadInput
    check_finite(dt=dt, duration=duration, noise=noise)
    if protocol and current_file:
        raise BadInput("--current", "given together with --protocol", "use either --protocol or --current")
    if current_file and duration is not None:
        raise BadInput("--duration", "given together with --current (the file sets the length)",
                       "leave --duration out")
    if noise < 0:
        raise BadInput("--noise", f"{noise} mV", "give a noise sd >= 0")
    if current_file:
        source = tr.load(current_file, None, dt, need_target=False)
        current, step = source.current, source.dt
    else:
        step = dt if dt is not None else neuron.default_dt_ms
        length = duration if duration is not None else neuron.default_duration_ms
        current = tr.protocol(protocol or "steps", model, length, step, n_traces, seed=seed)
    result = run_model(neuron, current, step, values)
    voltage = result.voltage
    if noise > 0:
        voltage = voltage + noise * np.random.default_rng([seed, 1]).standard_normal(voltage.shape)
    if not np.isfinite(voltage).all():
        raise BadInput("--param", "the simulation diverged (non-finite voltage)", "choose parameters in range")
    theta = dict(zip(neuron.fitted_names, neuron.theta(values), strict=True))
    tr.save_npz(out_path, tr.Traces(current, step, voltage, result.spikes),
                model=np.asarray(model), param_names=np.asarray(list(theta)),
                param_values=np.asarray(list(theta.values())))
    counts = result.spike_counts()
    click.echo(f"wrote {out_path}: {current.shape[0]} traces x {current.shape[1]} steps of {step} ms, "
               f"spikes per trace {counts.tolist()}")


@click.command(name="fit")
@click.argument("model", type=click.Choice(MODEL_NAMES))
@click.option("--traces", "traces_file", required=True, type=click.Path(dir_okay=False),
              help="NPZ (current nA, dt ms, voltage mV and/or spikes) or CSV of currents in A (one trace a row)")
@click.option("--voltage", "voltage_file", type=click.Path(dir_okay=False), default=None,
              help="CSV of voltages (mV) going with a CSV --traces")
@click.option("--dt", type=float, default=None, help="time step in ms (required with CSV files)")
@click.option("--target", type=click.Choice(("potential", "spike")), default="potential", show_default=True)
@click.option("--method", type=click.Choice(METHOD_NAMES), default="gradient", show_default=True)
@click.option("--starts", type=int, default=None,
              help="gradient: starts polished after the screen (default 2); baselines: population size (default 20)")
@click.option("--budget", type=int, default=None,
              help="total evaluations in forward-equivalents, the same for every method (default: gradient 2048, "
                   "baselines population x 5)")
@click.option("--bounds", multiple=True, metavar="NAME=LO:HI", help="search bounds (default: the paper's)")
@click.option("--fixed", multiple=True, metavar="NAME=VALUE", help="fixed model constants, e.g. A1=0.5")
@click.option("--points", type=int, default=0, show_default=True,
              help="potential target: compare at this many samples per trace (0 = all)")
@click.option("--delta", type=float, default=None, help="gamma-factor window in ms (default: gif 2, hh 0.5)")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--out", required=True, type=click.Path(), help="directory for fit.json and fit.png")
def fit(model, traces_file, voltage_file, dt, target, method, starts, budget, bounds, fixed, points, delta, seed,
        out):
    """Fit MODEL to the traces in a file; write DIR/fit.json and DIR/fit.png."""
    from analysis import jsonsafe, run_figures
    from diffbrain import fitting
    from diffbrain import traces as tr
    from diffbrain.errors import BadInput
    from diffbrain.neuron import get_model

    neuron = get_model(model)
    out_dir = check_out_dir(out)
    check_finite(dt=dt, delta=delta)
    starts = fitting.default_starts(method) if starts is None else starts
    if starts < 1:
        raise BadInput("--starts", f"{starts}", "give at least 1 start")
    if budget is not None and budget < starts:
        raise BadInput("--budget", f"{budget} evaluations for {starts} starts", f"give at least {starts}")
    box = fitting.parse_bounds_text(model, ",".join(bounds), "--bounds")
    constants = parse_numbers(fixed, "--fixed")
    unknown = sorted(set(constants) - set(neuron.fixed_names))
    if unknown:
        raise BadInput(f"--fixed {unknown[0]}", f"not a fixed parameter of {model!r}",
                       f"use one of: {', '.join(neuron.fixed_names)}")
    data = tr.load(traces_file, voltage_file, dt)
    problem = fitting.make_problem(model, target, data, box, constants, points, delta)
    with progress_bar(f"fit {model} ({method})") as report:
        result = fitting.fit(problem, method, starts, budget, seed, report=report)
    v_fit, s_fit = fitting.fitted_traces(problem, result)
    record = {**result.summary(), "bounds": {k: list(v) for k, v in box.items()}, "fixed": constants,
              "starts": starts, "budget": budget or fitting.default_budget(method, starts),
              "traces": str(traces_file), "spike_counts": {"fitted": s_fit.sum(axis=1).astype(int).tolist()}}
    if data.spikes is not None:
        record["spike_counts"]["target"] = data.spikes.sum(axis=1).astype(int).tolist()
    title = f"{model} {target} fit by {method}: loss {result.loss:.4g} {result.loss_units}"
    write_files(out_dir, {
        "fit.json": lambda p: p.write_text(jsonsafe.dumps(record, indent=2) + "\n"),
        "fit.png": lambda p: run_figures.fit_traces(p, data.current, data.dt, v_fit, s_fit, data.voltage, data.spikes,
                                              title),
    })
    click.echo(f"{title} ({result.evaluations} evaluations, {result.seconds:.1f} s); wrote {out_dir}/fit.json, fit.png")
    click.echo("params: " + ", ".join(f"{k}={v:.6g}" for k, v in result.params.items()))
