"""Placeholder: replaced by the module's real commands."""

import click


@click.command(name="sweep")
def sweep():
    """Not built yet."""
    raise click.UsageError("diffbrain sweep is not built yet")
