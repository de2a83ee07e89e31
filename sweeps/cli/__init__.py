"""The ``diffbrain`` command line. Subcommands load lazily so ``--help`` answers fast.

Every command module imports JAX and the brain* stack only inside the command that computes.
Bad input anywhere (a :class:`diffbrain.errors.UserError`, an ``analysis`` error following the same
protocol, a click usage error) ends in one line on stderr naming the field and the fix, exit status 2.
"""

from __future__ import annotations

import importlib
import sys

import click

# command name -> "module:attribute" of a click command
COMMANDS = {
    "simulate": "sweeps.cli.neuron:simulate",
    "fit": "sweeps.cli.neuron:fit",
    "train": "sweeps.cli.network:train",
    "simulate-network": "sweeps.cli.simulate_network:simulate_network",
    "sweep": "sweeps.cli.sweep:sweep",
    "report": "sweeps.cli.report:report",
    "export": "sweeps.cli.export:export",
    "demo": "sweeps.cli.demo:demo",
}


class LazyGroup(click.Group):
    """A group whose subcommands are imported only when listed or called."""

    def __init__(self, *args, lazy: dict[str, str], **kwargs):
        super().__init__(*args, **kwargs)
        self.lazy = lazy

    def list_commands(self, ctx):
        return sorted(set(super().list_commands(ctx)) | set(self.lazy))

    def get_command(self, ctx, name):
        if name in self.lazy:
            module, attr = self.lazy[name].split(":")
            return getattr(importlib.import_module(module), attr)
        return super().get_command(ctx, name)


# commands that compile JAX programs in this process: they use the persistent compilation cache
COMPILING = {"simulate", "fit", "train", "simulate-network", "demo"}


@click.group(cls=LazyGroup, lazy=COMMANDS, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="diffbrain")
@click.pass_context
def cli(ctx):
    """Differentiable brain models at scale: fit neurons, train spiking networks, run sweeps on SLURM.

    Commands that compute keep their compiled programs in ~/.cache/diffbrain/jax (DIFFBRAIN_COMPILATION_CACHE:
    another folder, or off).
    """
    if ctx.invoked_subcommand in COMPILING:
        from sweeps.cli import compile_cache

        compile_cache.enable()


def main(argv: list[str] | None = None) -> None:
    """Console entry point."""
    try:
        cli.main(args=argv, prog_name="diffbrain", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:  # usage errors: one line, exit 2
        ctx = getattr(exc, "ctx", None)
        hint = f" (see `{ctx.command_path} --help`)" if ctx is not None else ""
        click.echo(f"error: {exc.format_message()}{hint}", err=True)
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except Exception as exc:
        from diffbrain.errors import is_user_error, user_message

        if not is_user_error(exc):
            raise
        click.echo(f"error: {user_message(exc)}", err=True)
        sys.exit(2)
