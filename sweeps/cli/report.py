"""Placeholder: replaced by the module's real commands."""

import click


@click.command(name="report")
def report():
    """Not built yet."""
    raise click.UsageError("diffbrain report is not built yet")
