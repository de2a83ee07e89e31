"""``diffbrain report STORE --out DIR``: figures and ``summary.md`` from a result store.

Only click is imported at module level (``diffbrain --help`` stays fast); the analysis stack loads when
the command runs.
"""

from __future__ import annotations

import click


@click.command(name="report")
@click.argument("store", type=click.Path(path_type=str))
@click.option("--out", "out", required=True, type=click.Path(path_type=str),
              help="Folder for the PNG figures and summary.md (new, empty, or an earlier report: replaced).")
@click.option("--scheduler", default=None, metavar="local|ADDRESS|slurm",
              help="Run the reductions on a dask cluster: a LocalCluster, an existing scheduler "
                   "(tcp://host:8786) or workers started as SLURM jobs (dask-jobqueue). Default: threads here.")
@click.option("--workers", default=2, show_default=True, type=click.IntRange(min=1),
              help="local: worker processes; slurm: worker jobs.")
@click.option("--partition", default=None, help="slurm: partition of the worker jobs (default: dask config).")
@click.option("--account", default=None, help="slurm: account of the worker jobs.")
@click.option("--worker-memory", default=None, metavar="SIZE",
              help="slurm: memory per worker job, e.g. 4GiB (default: dask config, else 2GiB).")
@click.option("--worker-cores", default=None, type=click.IntRange(min=1), help="slurm: cores per worker job.")
@click.option("--walltime", default=None, metavar="HH:MM:SS", help="slurm: time limit of the worker jobs.")
@click.option("--html", is_flag=True, help="also write report.html: one self-contained page (figures embedded, "
              "tables, provenance, skipped figures) that opens offline.")
def report(store, out, scheduler, workers, partition, account, worker_memory, worker_cores, walltime, html):
    """Write the figures the STORE's experiments support and summary.md (tables, units, provenance) to --out."""
    from analysis.report import build_report
    from analysis.scheduler import SchedulerOptions

    options = SchedulerOptions(workers=workers, queue=partition, account=account, memory=worker_memory,
                               cores=worker_cores, walltime=walltime)
    result = build_report(store, out, scheduler=scheduler, options=options,
                          status=lambda message: click.echo(message, err=True), html=html,
                          extra_sections=[_usage_section(store)])
    click.echo(f"wrote {len(result.figures)} figure(s) and {result.out / 'summary.md'}"
               + (f" and {result.out / 'report.html'}" if html else ""))
    for name, reason in result.skipped.items():
        click.echo(f"  skipped {name}: {reason}")


def _usage_section(store: str) -> str:
    """The report's usage section (``sweep status --usage`` from the store and its recorded submissions)."""
    from analysis.errors import BadStore
    from sweeps.usage import store_usage_lines

    try:
        lines = store_usage_lines(store)
    except BadStore:
        return ""  # build_report says what is wrong with the store
    return "\n".join(["## Usage", "", "```text", *lines, "```", ""])
