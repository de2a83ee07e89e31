"""One user-error base: every error the user can fix is recognised by the CLI's one check, without re-wrapping."""

import pytest

from analysis.errors import BadOutput, BadPath, BadStore, CorruptPoint, SchedulerError
from diffbrain.errors import BadInput, UserError, is_user_error, user_message
from diffbrain.params import ParamError
from slurm.backends import SubmitError
from sweeps.errors import SpecError


@pytest.mark.parametrize("error", [
    BadInput("traces", "missing", "give a file"), ParamError("n", "too small", "give 2 or more"),
    SpecError("grid.n", "not a list", "give a list"), SubmitError("partition gpu does not exist"),
    BadStore("/s.zarr", "not a store", "give a store"), BadPath("--out", "under /proc", "give another folder"),
    BadOutput("/o", "is a file", "give a folder"), SchedulerError("--scheduler", "unknown", "give local"),
])
def test_every_user_error_is_recognised_and_printed_as_one_line(error):
    assert is_user_error(error) and isinstance(error, ValueError)
    line = user_message(error)
    assert line.startswith(f"{error.field}: {error.problem}") and "\n" not in line
    assert line == str(error) or isinstance(error, CorruptPoint)


def test_a_located_error_keeps_its_class_problem_and_fix():
    err = ParamError("n", "too small", "give 2 or more")
    located = err.at("grid.n of point 0123")
    assert type(located) is ParamError and isinstance(located, UserError)
    assert (located.field, located.problem, located.fix) == ("grid.n of point 0123", "too small", "give 2 or more")
    assert err.field == "n"


def test_other_exceptions_are_not_user_errors():
    assert not is_user_error(ValueError("x")) and not is_user_error(KeyError("field"))
    impostor = type("Impostor", (Exception,), {"user_error": True})("no field")
    assert not is_user_error(impostor)
