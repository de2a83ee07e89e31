"""``diffbrain train``: train (or simulate) the E/I spiking network on evidence accumulation.

Every parameter of the ``train-network`` experiment is a kebab-case flag (the paper's names:
``--n-rec``, ``--w-ei-ratio``, ``--conn-method``, ``--etrace-decay``, ...). The run's dataset is written
to ``OUT/run.zarr`` and its figures to ``OUT/figures/``; checkpoints live in ``OUT/checkpoints/``, so the
same command after an interruption resumes where it stopped. Bad input ends with one line naming
the field and the fix (exit 2) before anything is written; outputs are written to temporary siblings
and renamed into place only on success. JAX is imported only when the command runs.
"""

from __future__ import annotations

from pathlib import Path

import click

from diffbrain.network.config import ALL_PARAMS
from diffbrain.params import REQUIRED


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def param_options(params):
    """A decorator adding one click option per experiment parameter in ``params`` (defaults stay with the
    experiment: unset flags are omitted), for ``train`` and ``simulate-network``."""
    def decorate(func):
        for p in reversed(params):
            # a None default means "per method": the help text itself lists those defaults
            default = "" if p.default is REQUIRED or p.default is None else f" [default: {p.default}]"
            choices = f" ({'|'.join(p.choices)})" if p.choices else ""
            text = f"{p.help}{choices}{default}"
            if p.kind is bool:
                func = click.option(f"{_flag(p.name)}/--no-{p.name.replace('_', '-')}", p.name, default=None,
                                    help=text)(func)
            else:
                func = click.option(_flag(p.name), p.name, type=p.kind, default=None, help=text)(func)
        return func

    return decorate


_options = param_options(ALL_PARAMS)


def _check_before_writing(params: dict, out: Path) -> dict:
    """Validate everything that can be validated without computing (raises BadInput / ParamError)."""
    from analysis.paths import check_writable
    from diffbrain.errors import BadInput
    from diffbrain.experiments import get
    from diffbrain.network import checkpoint as ckpt_io
    from diffbrain.network.config import NetworkConfig, TaskConfig
    from diffbrain.network.run import check_fits, run_fingerprints

    check_writable(out, "--out")  # a path, never a URL: '#', '?', ';' are plain characters
    checked = get("train-network").validate(params)
    NetworkConfig.from_params(checked)
    TaskConfig.from_params(checked)
    check_fits(checked)  # a network that cannot fit is refused before --out is created
    if out.exists() and not out.is_dir():
        raise BadInput("out", f"{out} exists and is not a directory", "give a directory path for --out")
    full, network = run_fingerprints(checked)
    existing = out / "checkpoints" / ckpt_io.FILENAME
    if checked["mode"] == "train" and existing.exists():
        ckpt_io.check_matches(ckpt_io.load(existing), checked, full, existing, False, network)
    if checked["load_checkpoint"]:
        source = Path(checked["load_checkpoint"])
        ckpt_io.check_matches(ckpt_io.load(source, "load_checkpoint"), checked, full, source, True, network,
                              "load_checkpoint")
    return checked


@click.command(name="train")
@click.option("--out", "out", type=click.Path(path_type=Path), required=True,
              help="output directory: run.zarr, figures/, checkpoints/ (an existing compatible checkpoint resumes)")
@_options
@click.option("--seed", "seed", type=int, default=None, help="random seed [default: 0]")
def train(out: Path, **flags):
    """Train (or, with --mode sim, simulate) the conductance-based E/I network on evidence accumulation."""
    params = {k: v for k, v in flags.items() if v is not None}
    checked = _check_before_writing(params, out)

    from analysis import atomic, progress
    from analysis.paths import local_store, os_problem
    from analysis.run_figures import write_train_figures
    from diffbrain.experiments import RunContext, get

    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise os_problem(err, "--out", out) from None
    ctx = RunContext(seed=checked["seed"], point_id="cli", checkpoint_dir=out / "checkpoints")
    with progress.bar(f"{checked['method']} {checked['mode']}") as ctx.progress:
        ds = get("train-network").run(checked, ctx)

    # written under temporary names, then renamed into place (an older run's outputs replaced only then)
    for final in (out / "run.zarr", out / "figures"):
        atomic.remove_stale_temps(final)  # what an earlier run killed on this host left
    with atomic.staged(out / "run.zarr") as zarr_tmp, atomic.staged(out / "figures") as fig_tmp:
        ds.to_zarr(local_store(zarr_tmp), mode="w-", consolidated=False)
        written, skipped = write_train_figures(ds, fig_tmp)
        atomic.publish(zarr_tmp, out / "run.zarr", replace=True)
        atomic.publish(fig_tmp, out / "figures", replace=True)
    if ds.sizes["iteration"]:
        click.echo(f"final training loss {float(ds['loss'][-1]):.4f}, accuracy {float(ds['accuracy'][-1]):.3f}")
    click.echo(f"test loss {float(ds['test_loss']):.4f}, test accuracy {float(ds['test_accuracy']):.3f}")
    click.echo(f"dataset: {out / 'run.zarr'}")
    for path in written:
        click.echo(f"figure: {out / 'figures' / path.name}")
    for reason in skipped:
        click.echo(f"skipped figure {reason}")
