"""``diffbrain simulate-network``: simulate a spiking network and write ``OUT/run.zarr`` and ``OUT/raster.png``.

Every parameter of the ``simulate-network`` experiment is a kebab-case flag (``--preset coba``, ``--n``,
``--duration-ms``, ``--syn-per-neuron``, ``--conn-method``...). Bad input, including a network that cannot
fit in memory, ends with one line naming the field and the fix (exit 2) before anything is written; the
outputs are written to temporary siblings and renamed into place only on success. JAX is imported only
when the command runs.
"""

from __future__ import annotations

from pathlib import Path

import click


def _options(func):
    from diffbrain.experiments.simulate_network import PARAMS
    from sweeps.cli.network import param_options

    return param_options(PARAMS)(func)


@click.command(name="simulate-network")
@click.option("--out", "out", type=click.Path(path_type=Path), required=True,
              help="output directory: run.zarr and raster.png")
@_options
@click.option("--seed", "seed", type=int, default=None, help="random seed [default: 0]")
def simulate_network(out: Path, **flags):
    """Simulate the COBA benchmark (--preset coba) or the paper's E/I GIF network (--preset gif): spikes as
    events, rates, CV, seconds per simulated second and memory."""
    from analysis import atomic, progress
    from analysis.paths import check_writable, local_store, os_problem
    from diffbrain.errors import BadInput
    from diffbrain.experiments import RunContext, get
    from diffbrain.experiments.simulate_network import coba_config, gif_config

    params = {k: v for k, v in flags.items() if v is not None}
    experiment = get("simulate-network")
    checked = experiment.validate(params)
    (coba_config if checked["preset"] == "coba" else gif_config)(checked)
    check_writable(out, "--out")  # a path, never a URL: '#', '?', ';' are plain characters
    if out.exists() and not out.is_dir():
        raise BadInput("--out", f"{out} exists and is not a directory", "give a directory path for --out")

    from analysis.run_figures import simulation_raster

    ctx = RunContext(seed=checked["seed"], point_id="cli")
    with progress.bar(f"{checked['preset']} n={checked['n']}") as ctx.progress:
        ds = experiment.run(checked, ctx)

    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise os_problem(err, "--out", out) from None
    # written under temporary names, then renamed into place (an older run's outputs replaced only then)
    for final in (out / "run.zarr", out / "raster.png"):
        atomic.remove_stale_temps(final)
    with atomic.staged(out / "run.zarr") as zarr_tmp, atomic.staged(out / "raster.png") as fig_tmp:
        ds.to_zarr(local_store(zarr_tmp), mode="w-", consolidated=False)
        simulation_raster(ds, fig_tmp)
        atomic.publish(zarr_tmp, out / "run.zarr", replace=True)
        atomic.publish(fig_tmp, out / "raster.png", replace=True)
    rate = lambda name: f"{float(ds[name]):.2f}"
    click.echo(f"{checked['preset']} n={checked['n']}: {int(ds['n_synapses'])} synapses, mean rate "
               f"{rate('mean_rate')} Hz (E {rate('mean_rate_exc')}, I {rate('mean_rate_inh')}), "
               f"CV {float(ds['mean_cv_isi']):.2f}")
    split = f", neurons x{ds.attrs['n_devices']}" if ds.attrs.get("parallel_layout") == "neurons" else ""
    click.echo(f"build {float(ds['build_seconds']):.2f} s, compile {float(ds['compile_seconds']):.2f} s, "
               f"{float(ds['seconds_per_sim_second']):.3f} s per simulated second ({ds.attrs['event_kernel']} events"
               f"{split}), "
               f"peak RSS {int(ds['peak_rss_bytes']) / 2**30:.2f} GB")
    click.echo(f"dataset: {out / 'run.zarr'}")
    click.echo(f"figure: {out / 'raster.png'}")
