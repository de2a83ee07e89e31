"""Placeholder: replaced by the module's real commands."""

import click


@click.command(name="demo")
def demo():
    """Not built yet."""
    raise click.UsageError("diffbrain demo is not built yet")
