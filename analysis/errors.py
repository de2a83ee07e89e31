"""Problems with stores, paths, report folders and dask schedulers that the user can fix or must know about.

``analysis`` imports nothing of ours, so these cannot subclass :class:`diffbrain.errors.UserError`; they
follow its protocol instead (``field``, ``problem``, ``fix`` and ``user_error = True``), and the command line
treats them alike: one line, exit status 2.
"""

from __future__ import annotations

from pathlib import Path


class AnalysisError(ValueError):
    """The base of this package's user errors: ``field`` names what is wrong (an option, a path), ``fix`` what
    to do."""

    user_error = True

    def __init__(self, field: str | Path, problem: str, fix: str = ""):
        self.field, self.problem, self.fix = str(field), problem, fix
        super().__init__(f"{field}: {problem}" + (f"; {fix}" if fix else ""))


class BadStore(AnalysisError):
    """Not a store, a store from a newer layout, a store without complete points, ... (``field``: its path)."""

    @property
    def path(self) -> str:
        return self.field


class BadPath(AnalysisError):
    """A user-given location that cannot be used (a NUL byte, under /proc or a file, not writable, ...).

    ``field`` names where the path came from (``store``, ``--out``, ``traces``).
    """


class BadOutput(AnalysisError):
    """An output folder a report must not write into (``--out``)."""

    def __init__(self, path: str | Path, problem: str, fix: str = ""):
        self.path = str(path)
        super().__init__("--out", f"{path} {problem}", fix)


class SchedulerError(AnalysisError):
    """A ``--scheduler`` value or set-up the user can fix: ``field`` names the option."""


class CorruptPoint(BadStore):
    """A point group that cannot be read as written (metadata that does not parse, a missing or damaged
    array file, a chunk that does not decode): ``point_id`` and the reason are named, never a traceback."""

    def __init__(self, store: str, point_id: str, reason: str):
        self.point_id = point_id
        self.reason = reason
        super().__init__(store, f"point {point_id} is corrupt ({reason})",
                         "run `diffbrain sweep resume SWEEP.toml --retry-corrupt` to move it aside to "
                         "points/.corrupt/ and compute it again")


class CorruptPointsWarning(UserWarning):
    """``open_sweep`` left out corrupt points (named in the message and in ``attrs["corrupt_points"]``)."""
