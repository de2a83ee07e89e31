"""Declared parameters: a name, a type, a default and the checks a value must pass (no JAX imported here).

The leaf every layer of ``diffbrain`` may import: models and configurations declare their parameters
with :class:`Param`; experiments, sweep files and command-line flags all validate through it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
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

    def __post_init__(self):
        if self.kind not in _KINDS:
            raise TypeError(f"Param {self.name}: kind must be one of {_KINDS}")

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
                             f"give a {kind.__name__}" + (f" ({self.help})" if self.help else ""))
        if kind is float:
            value = float(value)
            if not math.isfinite(value):
                raise ParamError(key, f"{value!r} is not a finite number", "give a finite value")
        if self.choices and value not in self.choices:
            raise ParamError(key, f"{value!r} is not allowed", f"use one of: {', '.join(map(str, self.choices))}")
        if self.positive and value <= 0:
            raise ParamError(key, f"{value!r} must be > 0", "give a positive value")
        if self.low is not None and value < self.low:
            raise ParamError(key, f"{value!r} is below the minimum {self.low}", f"give a value >= {self.low}")
        if self.high is not None and value > self.high:
            raise ParamError(key, f"{value!r} is above the maximum {self.high}", f"give a value <= {self.high}")
        return value
