"""Placeholder: replaced by the module's real commands."""

import click


@click.command(name="train")
def train():
    """Not built yet."""
    raise click.UsageError("diffbrain train is not built yet")
