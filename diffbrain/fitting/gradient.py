"""Gradient fitting: global, then local. A space-filling screen, then gradient polishing of the best few starts.

:func:`fit_gradient`:

1. **Screen** (:mod:`diffbrain.fitting.screen`): a Latin-hypercube design of a few hundred to a few thousand
   candidates in the unit box (a quarter of the budget), evaluated with the cheap batched forward; the best
   loss so far is recorded after every batch, so the loss-vs-time curve starts with the first one.
2. **Warm start** (threshold models, only where it pays: :data:`WARM_START`): the best starts first minimise
   the spike-forced objective (:func:`problem.warm_objective`, a sum of squares) by Levenberg–Marquardt, in the
   same compiled program as the free-running residuals. It comes after the screen, so it never delays the
   first recorded loss; the loss where it ends is recorded too.
3. **Polish** the ``starts`` best candidates, all in one vectorised program per iteration: Levenberg–Marquardt
   on the voltage residuals with a forward-mode Jacobian (:mod:`diffbrain.fitting.lm`) for potential targets,
   bounded L-BFGS-B with ``jax.grad`` (:mod:`diffbrain.fitting.lbfgsb`) for spike targets (:data:`POLISHER`,
   chosen per target by ``bench/fit_polish.py``). Polishing (and the warm start) ends as soon as the best start
   has converged (stuck does not count) and no running start's Gauss–Newton model predicts it could halve the
   best loss (L-BFGS-B has no such model: there it ends when the best start has converged), or at once when a
   loss of 0 (an exact fit) is reached.

The budget counts forward-equivalents (:mod:`diffbrain.fitting.costs`): a screened candidate 1, a
value-and-gradient or a residual Jacobian its measured multiple of a forward, as for every method.

:func:`fit_gradient_sequential` is the seed-style path (the paper's code): SciPy's L-BFGS-B from uniform
random starts one after another, each with the jitted single-start value and gradient.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from diffbrain import fitting
from diffbrain.fitting import lbfgsb, lm, screen
from diffbrain.fitting import problem as fp
from diffbrain.fitting.costs import Ledger
from diffbrain.fitting.result import FitResult, Progress, objective_to_loss

objective_and_grad = jax.value_and_grad(fp.objective, argnums=1)

DEFAULT_STARTS = fitting.DEFAULT_STARTS["gradient"]
DEFAULT_BUDGET = fitting.GRADIENT_BUDGET
POLISHERS = ("lm", "lbfgsb")
# Measured per target with bench/fit_polish.py (the same screens, 3 seeds, 2048 forward-equivalents): on potential
# targets LM ended 100-1000x lower than L-BFGS-B on GIF (4e-5 vs 0.02 mV) and lower and sooner on HH; spike
# losses are not sums of squares, so L-BFGS-B polishes them.
POLISHER = {"potential": "lm", "spike": "lbfgsb"}
# The spike-forced warm start per (model, target), measured with bench/fit_polish.py: GIF potential 4e-5 mV
# with it, 3.5e-4 mV (one seed of three at 2.1 mV) without; GIF spikes a gamma loss of 0 with it in 3 of 3 seeds,
# 0.05 (median) without. Models without ``simulate_forced`` (HH) never have one.
WARM_START = {("gif", "potential"): True, ("gif", "spike"): True}
WARM_FRACTION = 0.5  # of each polished start's budget, at most
WARM_FTOL = 1e-3  # the warm start only has to reach the free-running optimum's basin
IMPROVE_FACTOR = 0.5  # a running start continues after the best has stopped only if it could reach half its loss


def initial_points(n_params: int, starts: int, seed: int) -> np.ndarray:
    """Uniform random starts in the unit box [starts, P] (seeded; the sequential path's starts)."""
    return np.random.default_rng(seed).uniform(size=(starts, n_params))


def compaction_sizes(starts: int) -> list[int]:
    """Batch sizes the running starts are packed into: all, or a quarter once few run (two compiled variants;
    a smaller batch would save little more on a CPU and cost another compilation). A few starts stay as one."""
    if starts <= 8:
        return [starts]
    return sorted({starts, max(1, -(-starts // 4))})


def _best_has_converged(state, running: np.ndarray) -> bool:
    """The lowest-loss start has converged (not merely stuck: no acceptable step, budget) and no running start's
    local model reaches IMPROVE_FACTOR of its loss."""
    f = np.asarray(state.f, dtype=np.float64)
    finite = np.isfinite(f)
    if not finite.any():
        return False
    best = int(np.argmin(np.where(finite, f, np.inf)))
    if int(np.asarray(state.status)[best]) not in (lbfgsb.CONVERGED_PG, lbfgsb.CONVERGED_F):
        return False
    reach = np.asarray(getattr(state, "f_model", state.f), dtype=np.float64)
    return not (running & (reach < IMPROVE_FACTOR * f[best])).any()


def _drive(iterate: Callable, state, on_iteration: Callable, stop_early: bool = True):
    """Iterate the vectorised optimiser until every start stops (or the best has: :func:`_best_has_converged`).

    ``iterate(state)`` advances a state of any batch size. Once few starts still run, they are packed into a
    smaller batch (sizes from :func:`compaction_sizes`, each compiled on the first fit of a shape) so that
    stopped starts cost nothing. ``on_iteration(state)`` after every iteration.
    """
    status = np.asarray(state.status)
    sizes = compaction_sizes(len(status))
    for size in sizes[:-1]:  # compile every batch size now, so that later fits of this shape compile nothing
        part = jax.tree.map(lambda x, n=size: x[:n], state)
        iterate(dataclasses.replace(part, status=part.status * 0 + lbfgsb.NO_STEP))
    while (status == lbfgsb.RUNNING).any():
        running = status == lbfgsb.RUNNING
        size = min(s for s in sizes if s >= running.sum())
        if size == len(status):
            state = iterate(state)
        else:
            index = np.concatenate([np.nonzero(running)[0], np.nonzero(~running)[0]])[:size]
            part = iterate(jax.tree.map(lambda x, i=index: x[i], state))
            state = jax.tree.map(lambda whole, new, i=index: whole.at[i].set(new), state, part)
        status = np.asarray(state.status)
        on_iteration(state)
        if stop_early and _best_has_converged(state, status == lbfgsb.RUNNING):
            break
    return state


def _finish(problem, method, u_final, objective_values, ledger: Ledger, progress, seed, info,
            reported=None) -> FitResult:
    """Pick the best start (lowest objective) and the reported losses of every start."""
    dtype = jnp.result_type(float)
    u_final = np.asarray(u_final, dtype=np.float64)
    values = np.asarray(objective_values, dtype=np.float64)
    values = np.where(np.isfinite(values), values, np.nan)
    if reported is not None:
        start_loss = np.asarray(reported, dtype=np.float64)
    elif problem.target == "potential":  # the reported RMSE is the square root of the objective: nothing to run
        start_loss = np.sqrt(np.maximum(values, 0.0))
    else:  # the exact gamma factor, with the screen's compiled program
        start_loss = screen.run_screen(problem, u_final, batch=info["screen_batch"])[1]
    start_loss = np.where(np.isfinite(values), start_loss, np.nan)
    start_params = np.asarray(problem.to_params(jnp.asarray(u_final, dtype)), dtype=np.float64)
    if np.isfinite(values).any():
        best = int(np.nanargmin(values))
        loss = float(start_loss[best])
    else:
        best, loss = 0, math.nan
    seconds, losses = progress.arrays()
    info.update(ledger.summary())
    return FitResult(problem.model, problem.target, method, problem.names, start_params[best], loss,
                     start_params, start_loss, int(math.ceil(ledger.total - 1e-9)), progress.elapsed(), seed,
                     seconds, losses, info)


def _status_texts(polisher: str, status) -> list[str]:
    text = lm.STATUS_TEXT if polisher == "lm" else lbfgsb.STATUS_TEXT
    return [text[int(s)] for s in np.asarray(status)]


def fit_gradient(problem: fp.FitProblem, starts: int = DEFAULT_STARTS, budget: int | None = None, seed: int = 0,
                 report=None, settings: lbfgsb.Settings | None = None, polisher: str | None = None,
                 warm_start: bool | None = None, screen_share: float = screen.SCREEN_SHARE,
                 stop_early: bool = True) -> FitResult:
    """Screen, then polish the best ``starts``; ``budget`` in forward-equivalents (None: DEFAULT_BUDGET).

    ``polisher`` (lm, lbfgsb) and ``warm_start`` default to the measured choice for the problem's target.
    """
    budget = float(DEFAULT_BUDGET if budget is None or budget <= 0 else budget)
    polisher = polisher or POLISHER[problem.target]
    if polisher not in POLISHERS:
        raise ValueError(f"unknown polisher {polisher!r}; use one of {POLISHERS}")
    if polisher == "lm" and problem.target != "potential":
        raise ValueError("the Levenberg–Marquardt polisher needs voltage residuals (a potential target)")
    if warm_start is None:
        warm_start = WARM_START.get((problem.model, problem.target), False)
    warm_start = bool(warm_start and problem.warm)
    ledger = Ledger(problem.model, problem.target)
    progress = Progress(report, objective_to_loss(problem.target))
    n_params = len(problem.names)

    # 1. screen
    size = screen.screen_size(budget - starts * ledger.cost("jacobian" if polisher == "lm" else "value_and_grad"),
                              starts, screen_share)
    size = int(min(size, max(starts, budget)))
    points = screen.design(n_params, size, seed)
    share = size / budget
    values, reported = screen.run_screen(problem, points, lambda batch, done: progress.record(
        batch, share * done / size, f"screen {done}/{size}"))
    screen_seconds = progress.elapsed()
    ledger.add("forward", size)
    order = screen.best_order(values)[:starts]
    u0 = points[order]
    info: dict = {"screen": size, "screen_batch": min(screen.SCREEN_BATCH, size),
                  "screen_seconds": round(screen_seconds, 4), "polisher": polisher, "warm_start": warm_start,
                  "starts": starts}
    dtype = jnp.result_type(float)
    settings = settings or lbfgsb.Settings()

    # 2. the spike-forced warm start, 3. polish: (name, kind, optimiser, what it minimises, loss recorded)
    lm_settings = lm.Settings()
    forcing = (lambda x: jnp.asarray(x, dtype)) if problem.warm else (lambda x: None)
    stages = []
    if warm_start:  # the spike-forced objective is a sum of squares: Levenberg–Marquardt, whatever the polisher
        stages.append(("spike-forced warm start", "jacobian", "lm", forcing(1.0), False))
    if polisher == "lm":
        stages.append(("Levenberg-Marquardt", "jacobian", "lm", forcing(0.0), True))
    else:
        stages.append(("L-BFGS-B", "value_and_grad", "lbfgsb", objective_and_grad, True))
    per_start = (budget - ledger.total) / starts
    if per_start < sum(ledger.cost(stage[1]) for stage in stages) or values[order[0]] <= 0.0:
        # no budget to polish, or a screened point fits exactly (every loss here is >= 0): the screen's best
        info["status"] = ["budget used" if values[order[0]] > 0.0 else "exact fit"] * len(order)
        return _finish(problem, "gradient", u0, values[order], ledger, progress, seed, info, reported[order])
    u = jnp.asarray(u0, dtype)
    for n, (name, kind, optimiser, what, record) in enumerate(stages):
        per_start = (budget - ledger.total) / starts
        if n == 0 and len(stages) > 1:  # the warm start: at most WARM_FRACTION of each start's budget
            cap = max(1, int(WARM_FRACTION * per_start // ledger.cost(kind)))
        elif n > 0:  # after the warm start: its loss (the screen's program); an exact fit or no budget left ends it
            after, after_reported = screen.run_screen(problem, np.asarray(u), batch=info["screen_batch"])
            ledger.add("forward", info["screen_batch"])
            progress.record(after, ledger.total / budget, "after the warm start")
            cap = int((budget - ledger.total) / starts // ledger.cost(kind))
            exact = np.nanmin(np.where(np.isfinite(after), after, np.nan), initial=np.inf) <= 0.0
            if exact or cap < 1:
                info["status"] = ["exact fit" if exact else "budget used"] * len(after)
                return _finish(problem, "gradient", u, after, ledger, progress, seed, info, after_reported)
        else:
            cap = int(per_start // ledger.cost(kind))
        cap_array = jnp.asarray(cap, jnp.int32)
        if optimiser == "lm":
            state = lm.start(lm_settings, u)
            ftol = jnp.asarray(lm_settings.ftol if record else WARM_FTOL, dtype)
            iterate = lambda s, what=what, cap_array=cap_array, ftol=ftol: lm.iterate(  # noqa: E731
                _residuals, lm_settings, (problem, what), s, cap_array, ftol)
        else:
            state = lbfgsb.start(settings, u)
            iterate = lambda s, what=what, cap_array=cap_array: lbfgsb.iterate(  # noqa: E731
                what, settings, problem, s, cap_array)
        done_before = ledger.total

        def on_iteration(state, name=name, kind=kind, record=record, done_before=done_before):
            used = (done_before + np.asarray(state.evals).sum() * ledger.cost(kind)) / budget
            if record:
                progress.record(state.f, used, name)
            else:  # the warm objective is not the loss: progress only
                progress.tick(used, name)

        began = progress.elapsed()
        state = _drive(iterate, state, on_iteration, stop_early)
        ledger.add(kind, int(np.asarray(state.evals).sum()))
        info.setdefault("stages", []).append({
            "stage": name, "seconds": round(progress.elapsed() - began, 4),
            "iterations": int(np.asarray(state.iterations).max()), "evaluations": int(np.asarray(state.evals).sum()),
            "status": _status_texts(optimiser, state.status)})
        u = state.u
    info.update({
        "status": _status_texts(optimiser, state.status),
        "iterations": np.asarray(state.iterations).tolist(),
        "evaluations_per_start": np.asarray(state.evals).tolist(),
    })
    return _finish(problem, "gradient", state.u, state.f, ledger, progress, seed, info)


def _residuals(args, u):
    """LM's residual function: ``args`` = (problem, forcing or None)."""
    problem, forcing = args
    return fp.residuals(problem, u, forcing)


class _BudgetUsed(Exception):
    """Raised inside SciPy's L-BFGS-B when a start's evaluations are spent."""


def fit_gradient_sequential(problem: fp.FitProblem, starts: int = 20, budget: int | None = None, seed: int = 0,
                            report=None, settings: lbfgsb.Settings | None = None) -> FitResult:
    """Seed-style: SciPy L-BFGS-B from uniform random starts one after another (for the benchmark).

    ``budget`` counts forward-equivalents as every method does (a value-and-gradient its measured multiple),
    split evenly over the starts; each start calls the jitted single-start value and gradient from Python.
    """
    from scipy.optimize import minimize

    settings = settings or lbfgsb.Settings()
    ledger = Ledger(problem.model, problem.target)
    progress = Progress(report, objective_to_loss(problem.target))
    dtype = jnp.result_type(float)
    u0 = initial_points(len(problem.names), starts, seed)
    budget = float(DEFAULT_BUDGET if budget is None or budget <= 0 else budget)
    cap = max(2, int(budget / starts / ledger.cost("value_and_grad")))
    value_and_grad = jax.jit(objective_and_grad)
    finals, values, status = [], [], []
    for i in range(starts):
        seen = {"calls": 0, "x": u0[i], "f": math.inf}

        def fun(x, seen=seen):
            if seen["calls"] >= cap:  # SciPy checks maxfun only between iterations: stop inside a line search too
                raise _BudgetUsed
            seen["calls"] += 1
            f, g = value_and_grad(problem, jnp.asarray(x, dtype))
            f = float(f)
            if not math.isfinite(f):
                return 1e20, np.zeros_like(x)
            if f < seen["f"]:
                seen["x"], seen["f"] = np.array(x), f
            return f, np.asarray(g, dtype=np.float64)

        try:
            out = minimize(fun, u0[i], jac=True, method="L-BFGS-B", bounds=[(0.0, 1.0)] * u0.shape[1],
                           options={"maxfun": cap, "maxcor": settings.memory, "ftol": settings.ftol,
                                    "gtol": settings.pgtol, "maxls": settings.max_linesearch})
            message = str(out.message)
        except _BudgetUsed:
            message = "budget used"
        ledger.add("value_and_grad", seen["calls"])
        finals.append(np.clip(seen["x"], 0.0, 1.0))
        values.append(seen["f"] if math.isfinite(seen["f"]) else math.nan)
        status.append(message)
        progress.record([values[-1]], (i + 1) / starts, f"start {i + 1}/{starts}")
    return _finish(problem, "gradient-sequential", np.asarray(finals), values, ledger, progress, seed,
                   {"status": status})
