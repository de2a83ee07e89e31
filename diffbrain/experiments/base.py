"""Declared parameters, the experiment record and the run context (no JAX imported here)."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
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


@dataclass
class RunContext:
    """What an experiment may use besides its parameters. It knows nothing of SLURM or stores.

    ``checkpoint_dir`` survives requeues of the same point (None: no checkpointing);
    ``progress(fraction, message)`` reports progress; ``devices`` are the JAX devices to use
    (empty: the experiment uses ``jax.devices()``).
    """

    seed: int = 0
    point_id: str = "local"
    checkpoint_dir: Path | None = None
    progress: Callable[[float, str], None] | None = None
    devices: tuple = ()

    def report(self, fraction: float, message: str = "") -> None:
        if self.progress is not None:
            self.progress(float(fraction), message)


@dataclass(frozen=True)
class Experiment:
    """A named experiment: declared parameters and ``run(params, ctx) -> xarray.Dataset``.

    Every experiment takes ``seed`` (int, default 0). ``fresh_process`` asks the runner to run each
    point in a new Python process (for memory measurements that must not leak between points).
    ``must_be_finite`` names result variables that a successful point has finite (all elements); the
    runner records a point whose result breaks this as failed.
    """

    name: str
    params: tuple[Param, ...]
    run: Callable[[dict, RunContext], Any]
    help: str = ""
    fresh_process: bool = False
    must_be_finite: tuple[str, ...] = ("loss",)
    _by_name: dict = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        params = tuple(self.params)
        if not any(p.name == "seed" for p in params):
            params += (Param("seed", int, 0, "random seed of the point", low=0),)
        object.__setattr__(self, "params", params)
        object.__setattr__(self, "_by_name", {p.name: p for p in params})

    def param(self, name: str) -> Param:
        if name not in self._by_name:
            raise ParamError(name, f"unknown parameter for experiment {self.name!r}",
                             f"use one of: {', '.join(sorted(self._by_name))}")
        return self._by_name[name]

    def validate(self, params: Mapping[str, Any], where: str = "") -> dict:
        """Checked, canonical parameters with defaults filled in (raises :class:`ParamError`).

        ``where`` prefixes field names in messages (e.g. ``"grid."`` for a sweep file section).
        """
        out = {}
        for key, value in params.items():
            out[key] = self.param(key).coerce(value, where=f"{where}{key}" if where else key)
        for p in self.params:
            if p.name not in out:
                if p.default is REQUIRED:
                    raise ParamError(f"{where}{p.name}", f"required by experiment {self.name!r}",
                                     f"set it ({p.help})" if p.help else "set it")
                out[p.name] = p.default
        return dict(sorted(out.items()))

    def __call__(self, params: Mapping[str, Any], ctx: RunContext | None = None):
        """Validate ``params`` and run the experiment."""
        ctx = ctx or RunContext()
        checked = self.validate(params)
        if ctx.seed != checked["seed"]:
            ctx.seed = checked["seed"]
        return self.run(checked, ctx)
