"""Store problems the user can fix or must know about (exit status 2 on the CLI)."""


class BadStore(ValueError):
    """Not a store, a store from a newer layout, a store without complete points, ..."""

    def __init__(self, path: str, problem: str, fix: str = ""):
        self.path = str(path)
        self.problem = problem
        self.fix = fix
        super().__init__(self.message)

    @property
    def message(self) -> str:
        text = f"{self.path}: {self.problem}"
        return f"{text}; {self.fix}" if self.fix else text


class BadPath(ValueError):
    """A user-given location that cannot be used (a NUL byte, under /proc or a file, not writable, ...).

    ``field`` names where the path came from (``store``, ``--out``, ``traces``).
    """

    def __init__(self, field: str, problem: str, fix: str = ""):
        self.field = field
        self.problem = problem
        self.fix = fix
        super().__init__(self.message)

    @property
    def message(self) -> str:
        text = f"{self.field}: {self.problem}"
        return f"{text}; {self.fix}" if self.fix else text


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
