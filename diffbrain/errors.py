"""The one base for input the user can fix: :class:`UserError` (``field``, ``problem``, ``fix``).

The command line catches it and prints one line, ``error: FIELD: PROBLEM; FIX``, with exit status 2. Every
such error of ``diffbrain``, ``sweeps``, ``slurm`` and ``hpc`` subclasses it and is raised with the right
field where the problem is found (never caught to be raised again as another class).

``analysis`` imports nothing of ours, so its errors (:mod:`analysis.errors`) cannot subclass this class.
They follow the same small protocol instead: the attributes ``field``, ``problem`` and ``fix``, and the class
attribute ``user_error = True``. :func:`is_user_error` recognises both (docs/architecture.md).
"""

from __future__ import annotations


class UserError(ValueError):
    """Input the user can fix: ``field`` names what is wrong, ``fix`` says what to do."""

    user_error = True

    def __init__(self, field: str, problem: str, fix: str = ""):
        self.field, self.problem, self.fix = str(field), problem, fix
        super().__init__(f"{field}: {problem}" + (f"; {fix}" if fix else ""))

    @property
    def message(self) -> str:
        """The one line the command line prints (after ``error: ``)."""
        return str(self)

    def at(self, field: str) -> UserError:
        """The same error (same class, problem and fix) naming a more precise ``field``, for a caller that knows
        where the value came from (a sweep file's section, a point)."""
        located = self.__class__.__new__(self.__class__)
        located.__dict__.update(self.__dict__)
        UserError.__init__(located, field, self.problem, self.fix)
        return located


class BadInput(UserError):
    """Bad input to the science code: a trace file, a parameter, a bound, a checkpoint."""


def is_user_error(exc: BaseException) -> bool:
    """Whether ``exc`` is input the user can fix: a :class:`UserError`, or an error of a package that cannot
    import this module and follows the protocol (``user_error = True`` with ``field``, ``problem``, ``fix``)."""
    return isinstance(exc, UserError) or (
        getattr(type(exc), "user_error", False) is True and all(hasattr(exc, a) for a in ("field", "problem", "fix")))


def user_message(exc: BaseException) -> str:
    """The one line for a user error (:func:`is_user_error`): ``FIELD: PROBLEM; FIX``."""
    return f"{exc.field}: {exc.problem}" + (f"; {exc.fix}" if exc.fix else "")
