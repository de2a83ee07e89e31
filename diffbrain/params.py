"""Declared parameters: a name, a type, a default and the checks a value must pass (no JAX imported here).

The leaf every layer of ``diffbrain`` may import: models and configurations declare their parameters
with :class:`Param`; experiments, sweep files and command-line flags all validate through it.

Two kinds of checks: :meth:`Param.coerce` checks one value on its own (type, finiteness, range, choices)
and runs wherever a value is given; ``Param.check`` (and ``path=True``) checks what a string means (a
file that must exist, ``"NAME=LO:HI"`` text whose names depend on the model), given the point's other
parameters. :meth:`diffbrain.experiments.Experiment.check_point` runs those for a whole point, so that
``sweep plan`` refuses a bad point before anything is queued.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from diffbrain.errors import BadInput


class _Required:
    def __repr__(self) -> str:
        return "REQUIRED"


REQUIRED: Any = _Required()
_KINDS = (bool, int, float, str)


class ParamError(BadInput):
    """A parameter value that an experiment cannot take; ``field`` is the parameter's name."""


@dataclass(frozen=True)
class Param:
    """One declared parameter: its type, default (or REQUIRED), and allowed values."""

    name: str
    kind: type
    default: Any = REQUIRED
    help: str = ""
    choices: tuple = ()
    low: float | None = None  # inclusive
    high: float | None = None  # inclusive
    positive: bool = False  # strictly > 0
    nullable: bool = False  # None allowed (TOML has no null: only from Python or the default)
    # a file path ('' = none): relative paths in a sweep file are relative to the file's folder, and
    # check_point refuses a path that is not a readable file
    path: bool = False
    # path_when(value): for a parameter that takes a name or a file, whether this value is a file (the
    # path rules above apply only then); None: every non-empty value of a path parameter is a file
    path_when: Callable[[str], bool] | None = None
    # check(value, params): what the value means given the point's canonical params; raises ParamError
    check: Callable[[Any, Mapping[str, Any]], None] | None = None

    def __post_init__(self):
        if self.kind not in _KINDS:
            raise TypeError(f"Param {self.name}: kind must be one of {_KINDS}")
        if self.path and self.kind is not str:
            raise TypeError(f"Param {self.name}: a path parameter must be a str")
        if self.path_when is not None and not self.path:
            raise TypeError(f"Param {self.name}: path_when needs path=True")

    def is_path(self, value: Any) -> bool:
        """Whether ``value`` is a file path of this parameter (non-empty, and a file by ``path_when``)."""
        return bool(self.path and value and (self.path_when is None or self.path_when(value)))

    def coerce(self, value: Any, where: str = "") -> Any:
        """Check ``value`` and return it in canonical form (ints accepted as floats, nothing else)."""
        key = where or self.name
        if value is None and self.nullable:
            return None
        kind = self.kind
        ok = (
            isinstance(value, bool)
            if kind is bool
            else isinstance(value, int) and not isinstance(value, bool)
            if kind is int
            else isinstance(value, (int, float)) and not isinstance(value, bool)
            if kind is float
            else isinstance(value, str)
        )
        if not ok:
            raise ParamError(key, f"expected {kind.__name__}, got {type(value).__name__} {value!r}",
                             ("give an int" if kind is int else f"give a {kind.__name__}")
                             + (f" ({self.help})" if self.help else ""))
        if kind is float:
            value = float(value)
            if not math.isfinite(value):
                raise ParamError(key, f"{value!r} is not a finite number", "give a finite value")
        if kind is str and "\x00" in value:
            raise ParamError(key, f"{value!r} contains a NUL byte", "remove the control character")
        if self.choices and value not in self.choices:
            raise ParamError(key, f"{value!r} is not allowed", f"use one of: {', '.join(map(str, self.choices))}")
        if self.positive and value <= 0:
            raise ParamError(key, f"{value!r} must be > 0", "give a positive value")
        if self.low is not None and value < self.low:
            raise ParamError(key, f"{value!r} is below the minimum {self.low}", f"give a value >= {self.low}")
        if self.high is not None and value > self.high:
            raise ParamError(key, f"{value!r} is above the maximum {self.high}", f"give a value <= {self.high}")
        return value

    def check_value(self, value: Any, params: Mapping[str, Any], where: str = "") -> None:
        """What ``value`` means, given the point's canonical ``params``: a readable file for a path
        parameter, then ``check`` (raises :class:`ParamError` naming ``where`` or the parameter)."""
        key = where or self.name
        if self.is_path(value):
            problem = file_problem(value)
            if problem:
                raise ParamError(key, problem, "give the path of an existing file (in a sweep file, relative "
                                 "to the sweep file's folder)")
        if self.check is not None:
            try:
                self.check(value, params)
            except ParamError as err:
                raise (err.at(key) if where else err) from None


@lru_cache(maxsize=4096)
def file_problem(path: str) -> str | None:
    """Why ``path`` is not a readable regular file, or None (cached: a sweep checks each path once)."""
    if "\x00" in path:
        return f"{path!r} contains a NUL byte"
    try:
        if not os.path.lexists(path):
            return f"no such file: {path}"
        if os.path.isdir(path):
            return f"{path} is a folder, not a file"
        with open(path, "rb") as f:
            f.read(1)
    except OSError as err:
        return f"cannot read {path} ({err.strerror})"
    return None
