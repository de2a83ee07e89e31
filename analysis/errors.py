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
