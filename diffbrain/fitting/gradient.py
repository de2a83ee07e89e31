"""Gradient fitting: bounded L-BFGS from many random starts, gradients by ``jax.grad`` through the simulation.

:func:`fit_gradient` advances all starts together in one vectorised program per iteration
(:mod:`diffbrain.fitting.lbfgsb`); :func:`fit_gradient_sequential` is the seed-style path (the paper's
code): SciPy's L-BFGS-B over the same starts one after another, each with the jitted single-start
value and gradient. Both search the unit box, use the same tolerances and count one evaluation per
value-and-gradient call, so their times compare at equal final loss.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from diffbrain.fitting import lbfgsb
from diffbrain.fitting import problem as fp
from diffbrain.fitting.result import FitResult, Progress, objective_to_loss

objective_and_grad = jax.value_and_grad(fp.objective, argnums=1)


def initial_points(n_params: int, starts: int, seed: int) -> np.ndarray:
    """Uniform random starts in the unit box [starts, P] (seeded)."""
    return np.random.default_rng(seed).uniform(size=(starts, n_params))


def _per_start_budget(budget: int | None, starts: int) -> int:
    if budget is None or budget <= 0:
        return 10**9
    return max(2, budget // starts)


def _finish(problem, method, u_final, objective_values, evaluations, progress, seed, info) -> FitResult:
    """Pick the best start (lowest objective) and compute reported losses of every start."""
    dtype = jnp.result_type(float)
    u_final = jnp.asarray(u_final, dtype)
    start_loss = np.asarray(fp.batch_reported_loss(problem, u_final), dtype=np.float64)
    values = np.asarray(objective_values, dtype=np.float64)
    start_params = np.asarray(problem.to_params(u_final), dtype=np.float64)
    if np.isfinite(values).any():
        best = int(np.nanargmin(np.where(np.isfinite(values), values, np.nan)))
        loss = float(start_loss[best])
    else:
        best, loss = 0, math.nan
    seconds, losses = progress.arrays()
    return FitResult(problem.model, problem.target, method, problem.names, start_params[best], loss,
                     start_params, start_loss, int(evaluations), progress.elapsed(), seed, seconds, losses, info)


def fit_gradient(problem: fp.FitProblem, starts: int = 20, budget: int | None = None, seed: int = 0,
                 report=None, settings: lbfgsb.Settings | None = None, u0: np.ndarray | None = None) -> FitResult:
    """Vectorised multi-start L-BFGS-B; ``budget`` is the total evaluations over all starts (None: no limit)."""
    settings = settings or lbfgsb.Settings()
    progress = Progress(report, objective_to_loss(problem.target))
    dtype = jnp.result_type(float)
    u0 = initial_points(len(problem.names), starts, seed) if u0 is None else u0
    max_evals = jnp.asarray(_per_start_budget(budget, starts), jnp.int32)
    state = lbfgsb.start(objective_and_grad, settings, problem, jnp.asarray(u0, dtype), max_evals)
    status = np.asarray(state.status)
    evals_cap = int(max_evals)
    progress.record(state.f, 1.0 / max(evals_cap, 1), "L-BFGS-B")
    while (status == lbfgsb.RUNNING).any():
        state = lbfgsb.iterate(objective_and_grad, settings, problem, state, max_evals)
        status = np.asarray(state.status)
        used = np.asarray(state.evals)
        done_fraction = np.where(status == lbfgsb.RUNNING, used / evals_cap, 1.0).mean()
        progress.record(state.f, float(done_fraction), "L-BFGS-B")
    evals = np.asarray(state.evals)
    info = {
        "status": [lbfgsb.STATUS_TEXT[int(s)] for s in status],
        "iterations": np.asarray(state.iterations).tolist(),
        "evaluations_per_start": evals.tolist(),
    }
    return _finish(problem, "gradient", state.u, state.f, evals.sum(), progress, seed, info)


def fit_gradient_sequential(problem: fp.FitProblem, starts: int = 20, budget: int | None = None, seed: int = 0,
                            report=None, settings: lbfgsb.Settings | None = None) -> FitResult:
    """Seed-style: SciPy L-BFGS-B over the same starts one after another (for the benchmark)."""
    from scipy.optimize import minimize

    settings = settings or lbfgsb.Settings()
    progress = Progress(report, objective_to_loss(problem.target))
    dtype = jnp.result_type(float)
    u0 = initial_points(len(problem.names), starts, seed)
    per_start = _per_start_budget(budget, starts)
    single = jax.jit(objective_and_grad)
    finals, values, evals, status = [], [], 0, []

    def fun(u):
        f, g = single(problem, jnp.asarray(u, dtype))
        f = float(f)
        if not math.isfinite(f):
            return 1e20, np.zeros_like(u)
        return f, np.asarray(g, dtype=np.float64)

    for i in range(starts):
        calls = [0]

        def counted(u, calls=calls):
            calls[0] += 1
            return fun(u)

        out = minimize(counted, u0[i], jac=True, method="L-BFGS-B", bounds=[(0.0, 1.0)] * u0.shape[1],
                       options={"maxfun": per_start, "maxcor": settings.memory, "ftol": settings.ftol,
                                "gtol": settings.pgtol, "maxls": settings.max_linesearch})
        finals.append(np.clip(out.x, 0.0, 1.0))
        values.append(out.fun if out.fun < 1e20 else math.nan)
        evals += calls[0]
        status.append(str(out.message))
        progress.record([values[-1]], (i + 1) / starts, f"start {i + 1}/{starts}")
    info = {"status": status}
    return _finish(problem, "gradient-sequential", np.asarray(finals), values, evals, progress, seed, info)
