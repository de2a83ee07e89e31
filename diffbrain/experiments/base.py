"""The experiment record: declared parameters and a run function (no JAX imported here).

:class:`Param`, :class:`ParamError` and :class:`RunContext` live in the leaf modules
:mod:`diffbrain.params` and :mod:`diffbrain.context`; they are re-exported here for experiments.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from diffbrain.context import RunContext
from diffbrain.params import REQUIRED, Param, ParamError

__all__ = ["REQUIRED", "Experiment", "Param", "ParamError", "RunContext"]


@dataclass(frozen=True)
class Experiment:
    """A named experiment: declared parameters and ``run(params, ctx) -> xarray.Dataset``.

    Every experiment takes ``seed`` (int, default 0). ``fresh_process`` asks the runner to run each
    point in a new Python process (for memory measurements that must not leak between points).
    ``must_be_finite`` names result variables that a successful point has finite (all elements); the
    runner records a point whose result breaks this as failed. ``check(params)`` checks a whole point
    across parameters (after each parameter's own ``Param.check``): see :meth:`check_point`.
    ``memory(params)``: the point's shape for the memory planner (:mod:`diffbrain.experiments.planning`),
    without JAX; None (or no hook): the point is not planned.
    """

    name: str
    params: tuple[Param, ...]
    run: Callable[[dict, RunContext], Any]
    help: str = ""
    fresh_process: bool = False
    must_be_finite: tuple[str, ...] = ("loss",)
    check: Callable[[Mapping[str, Any]], None] | None = None
    memory: Callable[[Mapping[str, Any]], dict | None] | None = None
    _by_name: dict = field(init=False, repr=False, compare=False)
    _checked: tuple = field(init=False, repr=False, compare=False)  # params with a path or check

    def __post_init__(self):
        params = tuple(self.params)
        if not any(p.name == "seed" for p in params):
            params += (Param("seed", int, 0, "random seed of the point", low=0),)
        object.__setattr__(self, "params", params)
        object.__setattr__(self, "_by_name", {p.name: p for p in params})
        object.__setattr__(self, "_checked", tuple(p for p in params if p.path or p.check is not None))

    def param(self, name: str, where: str = "") -> Param:
        """The declared parameter ``name``; :class:`ParamError` naming ``where`` (else ``name``) if unknown."""
        if name not in self._by_name:
            raise ParamError(where or name, f"unknown parameter for experiment {self.name!r}",
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

    @property
    def has_point_checks(self) -> bool:
        """Whether :meth:`check_point` does anything beyond :meth:`validate` (else callers may skip it)."""
        return self.check is not None or bool(self._checked)

    def check_point(self, params: Mapping[str, Any]) -> None:
        """Check what a point's string parameters mean (files that must exist, text that must parse for the
        point's model, ...) before anything runs: each parameter's ``path``/``check``, then ``check``.

        ``params`` are canonical (:meth:`validate` output). Raises :class:`ParamError` whose ``field`` is
        the parameter's name. ``sweep plan`` and ``sweep submit`` run it for every point; a run does too.
        """
        for p in self._checked:
            p.check_value(params.get(p.name, p.default), params)
        if self.check is not None:
            self.check(params)

    def __call__(self, params: Mapping[str, Any], ctx: RunContext | None = None):
        """Validate ``params``, check the point and run the experiment."""
        ctx = ctx or RunContext()
        checked = self.validate(params)
        self.check_point(checked)
        if ctx.seed != checked["seed"]:
            ctx.seed = checked["seed"]
        return self.run(checked, ctx)
