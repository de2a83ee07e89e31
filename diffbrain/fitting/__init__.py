"""Fit neuron models to voltage traces or spike trains: the gradient method (a space-filling screen, then
Levenberg–Marquardt or vectorised L-BFGS-B polishing with JAX derivatives), its seed-style sequential
counterpart, and gradient-free baselines (nevergrad, scikit-optimize).

The names defined here (methods, defaults) are plain data, so the command line reads its choices from them
without importing JAX; the fitting functions load their modules (and JAX) on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

from diffbrain.methods import BASELINE_METHODS as BASELINES
from diffbrain.methods import FIT_METHODS as METHODS

# polished starts (gradient; bench/fit_polish.py: 1 start was fastest and 2 cost ~20% more, all as accurate,
# and a second start keeps a fallback when the best screened point lies in the wrong basin) / population size
DEFAULT_STARTS = {"gradient": 2, **{m: 20 for m in BASELINES}}
GRADIENT_BUDGET = 2048  # forward-equivalents of a gradient fit by default (a screen, then polishing)
BASELINE_ITERATIONS = 5  # default budget of the baselines: population x 5 (the paper's setting)

_LAZY = {
    "FitProblem": "problem", "make_problem": "problem", "parse_bounds": "problem", "parse_bounds_text": "problem",
    "FitResult": "result", "fit_baseline": "baselines", "fit_gradient": "gradient",
    "fit_gradient_sequential": "gradient",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f"diffbrain.fitting.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'diffbrain.fitting' has no attribute {name!r}")


def default_starts(method: str) -> int:
    """Polished starts (gradient) or population size (baselines) when none is given."""
    return DEFAULT_STARTS.get(method, 20)


def default_budget(method: str, starts: int) -> int:
    """Forward-equivalents when none is given: GRADIENT_BUDGET (gradient), population x 5 (baselines)."""
    return GRADIENT_BUDGET if method == "gradient" else starts * BASELINE_ITERATIONS


def fit(problem, method: str = "gradient", starts: int | None = None, budget: int | None = None, seed: int = 0,
        report=None):
    """Fit ``problem`` with ``method``; ``starts``: polished starts (gradient) or population size (baselines).

    ``budget`` counts forward-equivalents for every method (:mod:`diffbrain.fitting.costs`).
    """
    from diffbrain.errors import BadInput

    if method not in METHODS:
        raise BadInput("method", f"unknown method {method!r}", f"use one of: {', '.join(METHODS)}")
    if starts is None:
        starts = default_starts(method)
    if starts < 1:
        raise BadInput("starts", f"{starts} starts", "give at least 1")
    budget = default_budget(method, starts) if budget is None or budget <= 0 else int(budget)
    if budget < starts:
        raise BadInput("budget", f"{budget} evaluations for {starts} starts",
                       f"give a budget of at least {starts} (one evaluation per start)")
    if method == "gradient":
        from diffbrain.fitting.gradient import fit_gradient

        return fit_gradient(problem, starts=starts, budget=budget, seed=seed, report=report)
    from diffbrain.fitting.baselines import fit_baseline

    return fit_baseline(problem, method, population=starts, budget=budget, seed=seed, report=report)


def fitted_traces(problem, result):
    """The fitted model's (voltage mV, spikes 0/1), both NumPy [B, T], at ``result``'s best parameters.

    Runs the model's own compiled simulator (:func:`diffbrain.neuron.simulate.run`, one program per model and
    shapes, whatever the target), the one that also simulates synthetic targets.
    """
    import jax.numpy as jnp
    import numpy as np

    from diffbrain.neuron import get_model
    from diffbrain.neuron.simulate import run

    theta = jnp.asarray(result.best, problem.current.dtype)
    voltage, spikes, _ = run(get_model(problem.model), theta, problem.constants, problem.current, problem.dt)
    return np.asarray(voltage).T, np.asarray(spikes).T


__all__ = ["BASELINES", "DEFAULT_STARTS", "METHODS", "FitProblem", "FitResult", "default_budget", "default_starts",
           "fit", "fit_baseline", "fit_gradient", "fit_gradient_sequential", "fitted_traces", "make_problem",
           "parse_bounds", "parse_bounds_text"]
