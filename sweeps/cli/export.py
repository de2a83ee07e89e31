"""``diffbrain export STORE --to FILE.parquet|FILE.csv``: one row per point, for pandas/polars users."""

from __future__ import annotations

import click


@click.command(name="export")
@click.argument("store", type=click.Path(path_type=str))
@click.option("--to", "to", required=True, type=click.Path(path_type=str), metavar="FILE.parquet|FILE.csv",
              help="the table to write (replaced if it exists)")
def export(store, to):
    """One row per point of STORE: id, status, parameters, scalar results, host, wall time, peak memory.

    Arrays stay in the store (analysis.open_sweep reads them)."""
    from analysis.export import export as write_table

    frame = write_table(store, to)
    counts = frame["status"].value_counts().to_dict()
    click.echo(f"wrote {len(frame)} points ({', '.join(f'{n} {s}' for s, n in sorted(counts.items()))}), "
               f"{len(frame.columns)} columns to {to}")
