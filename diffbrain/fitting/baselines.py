"""Gradient-free baselines through their own libraries: nevergrad DE, PSO and TwoPointsDE, and Bayesian
optimisation with scikit-optimize (Gaussian process, constant-liar batches).

Each iteration asks the library for a whole population, evaluates it in one batched (vmapped, jitted)
call (the objective and the reported loss from one simulation) and tells the library the losses. The
budget counts forward-equivalents as for every method: one per candidate, ``budget`` in total
(population x iterations). Candidates live in the same unit box as the gradient method's starts.
Non-finite losses are told as a large finite value (both libraries reject NaN) and kept as NaN in the
records. A fixed seed gives the same result.
"""

from __future__ import annotations

import math

import jax.numpy as jnp
import numpy as np

from diffbrain.errors import BadInput
from diffbrain.fitting import problem as fp
from diffbrain.fitting.result import FitResult, Progress, objective_to_loss
from diffbrain.methods import BASELINE_METHODS as METHODS

_PENALTY = 1e10


def _nevergrad_optimizer(method: str, n_params: int, population: int, budget: int, seed: int):
    import nevergrad as ng

    if method == "de":
        family = ng.families.DifferentialEvolution(popsize=population)
    elif method == "twopointsde":
        family = ng.families.DifferentialEvolution(crossover="twopoints", popsize=population)
    else:
        family = ng.families.ConfPSO(transform="arctan", popsize=population)
    space = ng.p.Array(shape=(n_params,), lower=0.0, upper=1.0)
    space.random_state = np.random.RandomState(seed)
    return family(parametrization=space, budget=budget, num_workers=population)


def _skopt_optimizer(n_params: int, population: int, seed: int):
    from skopt import Optimizer
    from skopt.space import Real

    space = [Real(0.0, 1.0) for _ in range(n_params)]
    # the acquisition is maximised over random samples: skopt's default L-BFGS refinement costs minutes per
    # batch of 20 constant-liar points on 2 cores, and the budget here counts loss evaluations only
    return Optimizer(space, base_estimator="GP", n_initial_points=population, random_state=seed,
                     acq_optimizer="sampling")


def _one_blas_thread():
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=1)


def fit_baseline(problem: fp.FitProblem, method: str, population: int = 20, budget: int | None = None, seed: int = 0,
                 report=None, time_limit: float | None = None) -> FitResult:
    """Fit with a gradient-free ``method`` (de, pso, twopointsde, bayes); ``budget`` total evaluations.

    ``time_limit`` (seconds) ends the search after the first iteration that reaches it (benchmarks at equal time).
    """
    if method not in METHODS:
        raise BadInput("method", f"unknown method {method!r}", f"use gradient or one of: {', '.join(METHODS)}")
    if population < 2:
        raise BadInput("starts", f"a population of {population}", "give a population of at least 2 for a baseline")
    budget = population * 5 if budget is None or budget <= 0 else int(budget)
    iterations = max(1, budget // population)
    n_params = len(problem.names)
    progress = Progress(report, objective_to_loss(problem.target))
    dtype = jnp.result_type(float)
    if method == "bayes":
        optimizer = _skopt_optimizer(n_params, population, seed)
    else:
        optimizer = _nevergrad_optimizer(method, n_params, population, iterations * population, seed)
    tried, values, reported, batch_best = [], [], [], []
    for it in range(iterations):
        if method == "bayes":
            with _one_blas_thread():  # tiny GP matrices: threads only contend on a shared machine
                points = np.asarray(optimizer.ask(n_points=population), dtype=np.float64)
        else:
            candidates = [optimizer.ask() for _ in range(population)]
            points = np.asarray([c.value for c in candidates], dtype=np.float64)
        losses, losses_reported = (np.asarray(x, dtype=np.float64)
                                   for x in fp.batch_losses(problem, jnp.asarray(points, dtype)))
        told = np.where(np.isfinite(losses), np.minimum(losses, _PENALTY), _PENALTY)
        if method == "bayes":
            with _one_blas_thread():
                optimizer.tell(points.tolist(), told.tolist())
        else:
            for candidate, value in zip(candidates, told, strict=True):
                optimizer.tell(candidate, float(value))
        tried.append(points)
        values.append(losses)
        reported.append(losses_reported)
        finite = losses[np.isfinite(losses)]
        batch_best.append(int(np.nanargmin(np.where(np.isfinite(losses), losses, np.nan))) if finite.size else 0)
        progress.record(losses, (it + 1) / iterations, method)
        if time_limit is not None and progress.elapsed() >= time_limit:
            break
    all_points = np.concatenate(tried)
    all_values = np.concatenate(values)
    all_reported = np.concatenate(reported)
    batch_points = np.asarray([points[i] for points, i in zip(tried, batch_best, strict=True)])
    start_loss = np.asarray([losses[i] for losses, i in zip(reported, batch_best, strict=True)])
    start_loss = np.where(np.isfinite([v[i] for v, i in zip(values, batch_best, strict=True)]), start_loss, np.nan)
    if np.isfinite(all_values).any():
        best = int(np.nanargmin(np.where(np.isfinite(all_values), all_values, np.nan)))
        best_u, loss = all_points[best], float(all_reported[best])
    else:
        best_u, loss = all_points[0], math.nan
    seconds, curve = progress.arrays()
    best = np.asarray(problem.to_params(jnp.asarray(best_u, dtype)), dtype=np.float64)
    start_params = np.asarray(problem.to_params(jnp.asarray(batch_points, dtype)), dtype=np.float64)
    info = {"iterations": len(tried), "population": population}
    return FitResult(problem.model, problem.target, method, problem.names, best, loss, start_params, start_loss,
                     int(all_values.size), progress.elapsed(), seed, seconds, curve, info)
