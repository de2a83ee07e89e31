"""Placeholder: replaced by the module's real commands."""

import click


@click.command(name="simulate")
def simulate():
    """Not built yet."""
    raise click.UsageError("diffbrain simulate is not built yet")


@click.command(name="fit")
def fit():
    """Not built yet."""
    raise click.UsageError("diffbrain fit is not built yet")
