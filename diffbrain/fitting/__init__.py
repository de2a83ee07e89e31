"""Fit neuron models to voltage traces or spike trains: vectorised multi-start L-BFGS-B with ``jax.grad``,
its seed-style sequential counterpart, and gradient-free baselines (nevergrad, scikit-optimize).

Importing this package imports JAX; command-line and experiment modules import it lazily.
"""

from __future__ import annotations

from diffbrain.errors import BadInput
from diffbrain.fitting.baselines import fit_baseline
from diffbrain.fitting.gradient import fit_gradient, fit_gradient_sequential
from diffbrain.fitting.problem import FitProblem, make_problem, parse_bounds, parse_bounds_text
from diffbrain.fitting.result import FitResult
from diffbrain.methods import BASELINE_METHODS as BASELINES
from diffbrain.methods import FIT_METHODS as METHODS

GRADIENT_EVALS_PER_START = 200  # default budget of the gradient method, per start
BASELINE_ITERATIONS = 5  # default budget of the baselines: population x 5 (the paper's setting)


def default_budget(method: str, starts: int) -> int:
    """Total evaluations when none is given: 200 per start (gradient), population x 5 (baselines)."""
    return starts * (GRADIENT_EVALS_PER_START if method == "gradient" else BASELINE_ITERATIONS)


def fit(problem: FitProblem, method: str = "gradient", starts: int = 20, budget: int | None = None, seed: int = 0,
        report=None) -> FitResult:
    """Fit ``problem`` with ``method``; ``starts`` is the number of starts (gradient) or the population size."""
    if method not in METHODS:
        raise BadInput("method", f"unknown method {method!r}", f"use one of: {', '.join(METHODS)}")
    if starts < 1:
        raise BadInput("starts", f"{starts} starts", "give at least 1")
    budget = default_budget(method, starts) if budget is None or budget <= 0 else int(budget)
    if budget < starts:
        raise BadInput("budget", f"{budget} evaluations for {starts} starts",
                       f"give a budget of at least {starts} (one evaluation per start)")
    if method == "gradient":
        return fit_gradient(problem, starts=starts, budget=budget, seed=seed, report=report)
    return fit_baseline(problem, method, population=starts, budget=budget, seed=seed, report=report)


__all__ = ["BASELINES", "METHODS", "FitProblem", "FitResult", "default_budget", "fit", "fit_baseline",
           "fit_gradient", "fit_gradient_sequential", "make_problem", "parse_bounds", "parse_bounds_text"]
