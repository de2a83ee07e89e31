"""Errors in sweep files and sweep commands that the user can fix (exit status 2)."""

from __future__ import annotations

from diffbrain.errors import UserError


class SpecError(UserError):
    """A sweep file problem: ``field`` (also ``key``) is the dotted TOML key (e.g. ``grid.n_rec``) or the flag."""

    @property
    def key(self) -> str:
        return self.field
