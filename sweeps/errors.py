"""Errors in sweep files and sweep commands that the user can fix (exit status 2)."""


class SpecError(ValueError):
    """A sweep file problem: ``key`` is the dotted TOML key (e.g. ``grid.n_rec``), ``fix`` what to do."""

    def __init__(self, key: str, problem: str, fix: str = ""):
        self.key = key
        self.problem = problem
        self.fix = fix
        super().__init__(self.message)

    @property
    def message(self) -> str:
        text = f"{self.key}: {self.problem}"
        return f"{text}; {self.fix}" if self.fix else text
