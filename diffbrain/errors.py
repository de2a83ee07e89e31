"""The one exception for bad user input (a trace file, a parameter, a bound).

The CLI turns it into one line naming the field and the fix, and exit status 2.
"""


class BadInput(ValueError):
    """Input the user can fix: ``field`` names what is wrong, ``fix`` says what to do."""

    def __init__(self, field: str, problem: str, fix: str = ""):
        self.field = field
        self.problem = problem
        self.fix = fix
        super().__init__(self.message)

    @property
    def message(self) -> str:
        text = f"{self.field}: {self.problem}"
        return f"{text}; {self.fix}" if self.fix else text
