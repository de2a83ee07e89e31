"""Gradient fitting: bounded L-BFGS from many random starts, gradients by ``jax.grad`` through the simulation.

:func:`fit_gradient` advances all starts together in one vectorised program per iteration
(:mod:`diffbrain.fitting.lbfgsb`); :func:`fit_gradient_sequential` is the seed-style path (the paper's
code): SciPy's L-BFGS-B over the same starts one after another, each with the jitted single-start
value and gradient. Both search the unit box, use the same tolerances and count one evaluation per
value-and-gradient call, so their times compare at equal final loss.
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np

from diffbrain.fitting import lbfgsb
from diffbrain.fitting import problem as fp
from diffbrain.fitting.result import FitResult, Progress, objective_to_loss

objective_and_grad = jax.value_and_grad(fp.objective, argnums=1)
warm_and_grad = jax.value_and_grad(fp.warm_objective, argnums=1)


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


def compaction_sizes(starts: int) -> list[int]:
    """Batch sizes the running starts are packed into: all, or a quarter once few run (two compiled variants:
    a smaller batch would save little more on a CPU and cost another compilation)."""
    return sorted({starts, max(1, -(-starts // 4))})


WARM_FRACTION = 0.5  # of each start's budget, at most
WARM_FTOL = 1e-7  # as the main stage


def warm_budget(per_start: int) -> int:
    """Evaluations per start for the spike-forced warm start."""
    return max(2, int(per_start * WARM_FRACTION))


def warm_settings(settings: lbfgsb.Settings) -> lbfgsb.Settings:
    return dataclasses.replace(settings, ftol=max(settings.ftol, WARM_FTOL))


def _run_lbfgs(fun, settings, problem, u0, max_evals: int, on_iteration) -> lbfgsb.LbfgsState:
    """Vectorised L-BFGS-B from ``u0`` [S, P] until every start stops; ``on_iteration(state, fraction)``.

    Once few starts still run, they are packed into a smaller batch (sizes from :func:`compaction_sizes`)
    so that stopped starts cost nothing.
    """
    cap = jnp.asarray(max_evals, jnp.int32)
    state = lbfgsb.start(fun, settings, problem, jnp.asarray(u0, jnp.result_type(float)), cap)
    status = np.asarray(state.status)
    sizes = compaction_sizes(len(status))
    for size in sizes[:-1]:  # compile every batch size now, so that later fits of this shape compile nothing
        stopped = jax.tree.map(lambda x, n=size: x[:n], state)
        lbfgsb.iterate(fun, settings, problem, dataclasses.replace(stopped, status=stopped.status * 0 + lbfgsb.NO_STEP),
                       cap)
    on_iteration(state, 1.0 / max_evals)
    while (status == lbfgsb.RUNNING).any():
        running = status == lbfgsb.RUNNING
        size = min(s for s in sizes if s >= running.sum())
        if size == len(status):
            state = lbfgsb.iterate(fun, settings, problem, state, cap)
        else:
            index = np.concatenate([np.nonzero(running)[0], np.nonzero(~running)[0]])[:size]
            part = lbfgsb.iterate(fun, settings, problem, jax.tree.map(lambda x, i=index: x[i], state), cap)
            state = jax.tree.map(lambda whole, new, i=index: whole.at[i].set(new), state, part)
        status = np.asarray(state.status)
        used = np.asarray(state.evals)
        on_iteration(state, float(np.where(status == lbfgsb.RUNNING, used / max_evals, 1.0).mean()))
    return state


def fit_gradient(problem: fp.FitProblem, starts: int = 20, budget: int | None = None, seed: int = 0,
                 report=None, settings: lbfgsb.Settings | None = None, u0: np.ndarray | None = None,
                 warm_start: bool = True) -> FitResult:
    """Vectorised multi-start L-BFGS-B; ``budget`` is the total evaluations over all starts (None: no limit).

    For threshold models (``problem.warm``) the starts first minimise the spike-forced objective
    (:func:`problem.warm_objective`, up to half of each start's budget) and continue from there on the
    real objective: the free-running loss jumps whenever a spike appears or vanishes, which stops local
    descent far from the optimum, while the spike-forced one is smooth.
    """
    settings = settings or lbfgsb.Settings()
    progress = Progress(report, objective_to_loss(problem.target))
    u0 = initial_points(len(problem.names), starts, seed) if u0 is None else np.asarray(u0)
    per_start = _per_start_budget(budget, starts)
    info: dict = {}
    evaluations = 0
    if problem.warm and warm_start and per_start >= 4:
        warm_cap = warm_budget(per_start)
        warm = _run_lbfgs(warm_and_grad, warm_settings(settings), problem, u0, warm_cap,
                          lambda state, f: progress.tick(0.5 * f, "spike-forced warm start"))
        warm_evals = np.asarray(warm.evals)
        evaluations += int(warm_evals.sum())
        per_start -= warm_cap
        u0 = np.asarray(warm.u)
        info["warm_start_evaluations_per_start"] = warm_evals.tolist()
        info["warm_start_status"] = [lbfgsb.STATUS_TEXT[int(s)] for s in np.asarray(warm.status)]
        scale, offset = 0.5, 0.5
    else:
        scale, offset = 1.0, 0.0
    state = _run_lbfgs(objective_and_grad, settings, problem, u0, per_start,
                       lambda state, f: progress.record(state.f, offset + scale * f, "L-BFGS-B"))
    status = np.asarray(state.status)
    evals = np.asarray(state.evals)
    info.update({
        "status": [lbfgsb.STATUS_TEXT[int(s)] for s in status],
        "iterations": np.asarray(state.iterations).tolist(),
        "evaluations_per_start": evals.tolist(),
    })
    return _finish(problem, "gradient", state.u, state.f, evaluations + int(evals.sum()), progress, seed, info)


def fit_gradient_sequential(problem: fp.FitProblem, starts: int = 20, budget: int | None = None, seed: int = 0,
                            report=None, settings: lbfgsb.Settings | None = None,
                            warm_start: bool = True) -> FitResult:
    """Seed-style: SciPy L-BFGS-B over the same starts one after another (for the benchmark).

    Same starts, budget split, spike-forced warm start and tolerances as :func:`fit_gradient`; each start
    calls the jitted single-start value and gradient from Python.
    """
    from scipy.optimize import minimize

    settings = settings or lbfgsb.Settings()
    progress = Progress(report, objective_to_loss(problem.target))
    dtype = jnp.result_type(float)
    u0 = initial_points(len(problem.names), starts, seed)
    per_start = _per_start_budget(budget, starts)
    warm = problem.warm and warm_start and per_start >= 4
    stages = [(jax.jit(warm_and_grad), warm_budget(per_start), warm_settings(settings))] if warm else []
    stages.append((jax.jit(objective_and_grad), per_start - (warm_budget(per_start) if warm else 0), settings))
    finals, values, evals, status = [], [], 0, []

    for i in range(starts):
        u, out = u0[i], None
        for value_and_grad, cap, stage_settings in stages:
            calls = [0]

            def fun(x, value_and_grad=value_and_grad, calls=calls):
                calls[0] += 1
                f, g = value_and_grad(problem, jnp.asarray(x, dtype))
                f = float(f)
                if not math.isfinite(f):
                    return 1e20, np.zeros_like(x)
                return f, np.asarray(g, dtype=np.float64)

            out = minimize(fun, u, jac=True, method="L-BFGS-B", bounds=[(0.0, 1.0)] * u0.shape[1],
                           options={"maxfun": cap, "maxcor": stage_settings.memory, "ftol": stage_settings.ftol,
                                    "gtol": stage_settings.pgtol, "maxls": stage_settings.max_linesearch})
            u = np.clip(out.x, 0.0, 1.0)
            evals += calls[0]
        finals.append(u)
        values.append(out.fun if out.fun < 1e20 else math.nan)
        status.append(str(out.message))
        progress.record([values[-1]], (i + 1) / starts, f"start {i + 1}/{starts}")
    info = {"status": status}
    return _finish(problem, "gradient-sequential", np.asarray(finals), values, evals, progress, seed, info)
