"""``diffbrain demo``: the main job of this stage on one machine.

Simulates a GIF target (the paper's five step protocols, 1000 ms at 0.1 ms) and an HH target (the
input currents of the paper's HH data layout, 14.97 ms at 0.01 ms) at the reference parameters, fits
both targets (potential and spike) by gradient and by differential evolution, prints a table of loss,
parameter error and wall seconds, and writes the figures and a summary.json to DIR.
"""

from __future__ import annotations

from pathlib import Path

import click

from sweeps.cli.neuron import check_out_dir, progress_bar, write_files

RUNS = [(model, target, method) for model in ("gif", "hh") for target in ("potential", "spike")
        for method in ("gradient", "de")]


@click.command(name="demo")
@click.option("--out", default="demo-out", show_default=True, type=click.Path(), help="directory for the figures")
@click.option("--starts", type=int, default=None,
              help="gradient: starts polished after the screen (default 2); DE: population (default 20)")
@click.option("--seed", type=int, default=0, show_default=True)
def demo(out, starts, seed):
    """Fit GIF and HH targets (potential and spike) by gradient and by DE; print a table, write figures."""
    import numpy as np
    from rich.console import Console
    from rich.table import Table

    from analysis import jsonsafe, run_figures
    from diffbrain import fitting
    from diffbrain import traces as tr
    from diffbrain.errors import BadInput
    from diffbrain.neuron import get_model, simulate

    out_dir = check_out_dir(out)
    if starts is not None and starts < 2:
        raise BadInput("--starts", f"{starts}", "give at least 2 (DE needs a population)")
    console = Console()
    targets = {}
    for model in ("gif", "hh"):
        neuron = get_model(model)
        current = tr.protocol("steps", model, neuron.default_duration_ms, neuron.default_dt_ms)
        sim = simulate(neuron, current, neuron.default_dt_ms)
        targets[model] = tr.Traces(current, sim.dt, sim.voltage, sim.spikes)
    rows, writers, curves = [], {}, {}
    for model, target, method in RUNS:
        neuron = get_model(model)
        problem = fitting.make_problem(model, target, targets[model])
        with progress_bar(f"{model} {target} {method}") as report:
            result = fitting.fit(problem, method, starts, None, seed, report=report)
        truth = np.asarray(neuron.theta())
        error = float(np.max(np.abs(result.best / truth - 1.0)))
        v_fit, s_fit = fitting.fitted_traces(problem, result)
        data = targets[model]
        title = f"{model} {target}, {method}: loss {result.loss:.3g} {result.loss_units}"
        writers[f"{model}-{target}-{method}.png"] = (
            lambda p, d=data, v=v_fit, s=s_fit, t=title, tg=target: run_figures.fit_traces(
                p, d.current, d.dt, v, s, d.voltage if tg == "potential" else None, d.spikes, t))
        curves.setdefault((model, target), {})[method] = (result.progress_seconds, result.progress_loss)
        counts = s_fit.sum(axis=1).astype(int).tolist()
        rows.append({"model": model, "target": target, "method": method, "loss": result.loss,
                     "loss_units": result.loss_units, "seconds": result.seconds, "evaluations": result.evaluations,
                     "max_rel_param_error": error, "params": result.params, "spike_counts": counts,
                     "target_spike_counts": data.spikes.sum(axis=1).astype(int).tolist()})
        console.print(f"{model} {target} {method}: loss {result.loss:.4g} "
                      f"{'mV' if target == 'potential' else '(gamma)'} in {result.seconds:.1f} s")
    for (model, target), lines in curves.items():
        units = "RMSE (mV)" if target == "potential" else "gamma-factor loss"
        writers[f"{model}-{target}-loss-vs-time.png"] = (
            lambda p, c=lines, u=units, m=model, t=target: run_figures.loss_curves(p, c, u, f"{m} {t}"))
    writers["summary.json"] = lambda p: p.write_text(jsonsafe.dumps(rows, indent=2) + "\n")
    write_files(out_dir, writers)

    table = Table(title="Gradient (screen, then LM or L-BFGS-B) vs differential evolution")
    for column in ("model", "target", "method", "loss", "unit", "param err", "evals", "seconds"):
        table.add_column(column, justify="left" if column in ("model", "target", "method", "unit") else "right")
    for row in rows:
        unit = "mV RMSE" if row["loss_units"] == "mV" else "gamma"
        table.add_row(row["model"], row["target"], row["method"], f"{row['loss']:.3g}", unit,
                      f"{row['max_rel_param_error']:.1%}", str(row["evaluations"]), f"{row['seconds']:.1f}")
    console.print(table)
    console.print("param err: largest relative error of a fitted parameter against the ground truth "
                  "(spike targets need not pin parameters down)")
    console.print(f"figures and summary.json in {Path(out_dir)}")
