"""Bounded L-BFGS for many starts at once, in JAX: one jitted program advances every start by one iteration.

Projected L-BFGS on the unit box (Kim, Sra & Dhillon 2010 style, close to L-BFGS-B in behaviour):
variables at a bound whose gradient pushes outward are held (the active set), the two-loop recursion
gives a quasi-Newton direction on the free variables, and a backtracking line search along the
projected path (Armijo condition, safeguarded quadratic interpolation) accepts the step. A start whose
line search fails drops its memory and retries steepest descent once before it stops. Each start keeps
its own memory, step and stopping state; ``jax.vmap`` runs them together (a start that has stopped is
carried along unchanged and uses no evaluations). Every value-and-gradient evaluation counts as one;
:func:`start` evaluates nothing, the first :func:`iterate` evaluates the starts themselves.

Status codes: 0 running, 1 projected gradient below ``pgtol``, 2 relative decrease below ``ftol``,
3 no acceptable step, 4 evaluation budget used, 5 the starting point's loss is not finite.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from functools import partial

import jax
import jax.numpy as jnp

RUNNING, CONVERGED_PG, CONVERGED_F, NO_STEP, BUDGET, NOT_FINITE = range(6)
STATUS_TEXT = ("running", "projected gradient small", "loss decrease small", "no acceptable step",
               "budget used", "start not finite")


@partial(jax.tree_util.register_dataclass,
         data_fields=["u", "f", "g", "s_hist", "y_hist", "count", "status", "evals", "iterations"],
         meta_fields=[])
@dataclasses.dataclass(frozen=True)
class LbfgsState:
    """State of every start (leading axis S)."""

    u: jax.Array  # [S, P] current point in the unit box
    f: jax.Array  # [S]
    g: jax.Array  # [S, P]
    s_hist: jax.Array  # [S, m, P], newest first
    y_hist: jax.Array  # [S, m, P]
    count: jax.Array  # [S] stored pairs
    status: jax.Array  # [S] int, see module doc
    evals: jax.Array  # [S] value-and-gradient evaluations used
    iterations: jax.Array  # [S]


@dataclasses.dataclass(frozen=True)
class Settings:
    """Tolerances (static: part of the compiled program)."""

    memory: int = 10
    max_linesearch: int = 12
    ftol: float = 1e-7
    pgtol: float = 1e-7
    c1: float = 1e-4
    first_step: float = 0.05  # length (inf-norm, unit box) of the first steepest-descent step


def _two_loop(g, s_hist, y_hist, count, memory: int):
    """-H g by the L-BFGS two-loop recursion over the valid pairs (newest first)."""
    q = g
    alphas, rhos = [], []
    for i in range(memory):
        valid = i < count
        sy = jnp.dot(s_hist[i], y_hist[i])
        rho = jnp.where(valid & (sy > 0), 1.0 / jnp.where(sy > 0, sy, 1.0), 0.0)
        a = rho * jnp.dot(s_hist[i], q)
        q = q - a * y_hist[i]
        alphas.append(a)
        rhos.append(rho)
    yy = jnp.dot(y_hist[0], y_hist[0])
    sy0 = jnp.dot(s_hist[0], y_hist[0])
    gamma = jnp.where((count > 0) & (yy > 0) & (sy0 > 0), sy0 / jnp.where(yy > 0, yy, 1.0), 1.0)
    r = gamma * q
    for i in reversed(range(memory)):
        b = rhos[i] * jnp.dot(y_hist[i], r)
        r = r + s_hist[i] * (alphas[i] - b)
    return -r


def _projected_gradient_norm(u, g):
    return jnp.max(jnp.abs(u - jnp.clip(u - g, 0.0, 1.0)))


def _iterate_one(fun: Callable, settings: Settings, args, u, f, g, s_hist, y_hist, count, status, evals,
                 iterations, max_evals):
    """One iteration of one start (vmapped by :func:`iterate`)."""
    running = status == RUNNING
    fresh = jnp.isposinf(f)  # not evaluated yet (g = 0): the one trial is u itself
    free = ~(((u <= 0.0) & (g > 0.0)) | ((u >= 1.0) & (g < 0.0)))
    g_free = jnp.where(free, g, 0.0)
    s_masked = jnp.where(free, s_hist, 0.0)
    y_masked = jnp.where(free, y_hist, 0.0)
    d = jnp.where(free, _two_loop(g_free, s_masked, y_masked, count, settings.memory), 0.0)
    descent = jnp.dot(d, g_free) < 0.0
    use_memory = (count > 0) & descent
    d = jnp.where(use_memory, d, -g_free)
    d_norm = jnp.max(jnp.abs(d))
    safe_norm = jnp.where(d_norm > 0, d_norm, 1.0)
    alpha0 = jnp.where(use_memory, jnp.minimum(1.0, 1.0 / safe_norm), settings.first_step / safe_norm)

    def trial(alpha):
        u_try = jnp.clip(u + alpha * d, 0.0, 1.0)
        f_try, g_try = fun(args, u_try)
        decrease = jnp.dot(g, u_try - u)
        finite = jnp.isfinite(f_try) & jnp.all(jnp.isfinite(g_try))
        ok = jnp.where(fresh, finite, finite & (f_try <= f + settings.c1 * decrease) & jnp.any(u_try != u))
        gap = f_try - f - decrease
        tau = jnp.where(jnp.isfinite(f_try) & (gap > 0), -decrease / (2.0 * jnp.where(gap > 0, gap, 1.0)), 0.25)
        return u_try, f_try, g_try, ok, jnp.clip(tau, 0.1, 0.5)

    def cond(c):
        _, accepted, n, _, _, _ = c
        return running & ~accepted & (n < jnp.where(fresh, 1, settings.max_linesearch)) & (evals + n < max_evals)

    def body(c):
        alpha, _, n, u_best, f_best, g_best = c
        u_try, f_try, g_try, ok, tau = trial(alpha)
        return (jnp.where(ok, alpha, alpha * tau), ok, n + 1,
                jnp.where(ok, u_try, u_best), jnp.where(ok, f_try, f_best), jnp.where(ok, g_try, g_best))

    init = (alpha0, jnp.array(False), jnp.zeros((), evals.dtype), u, f, g)
    _, accepted, used, u_new, f_new, g_new = jax.lax.while_loop(cond, body, init)

    s = u_new - u
    y = g_new - g
    curvature = jnp.dot(s, y) > 1e-10 * jnp.dot(y, y)
    store = accepted & curvature
    s_hist_new = jnp.where(store, jnp.roll(s_hist, 1, axis=0).at[0].set(s), s_hist)
    y_hist_new = jnp.where(store, jnp.roll(y_hist, 1, axis=0).at[0].set(y), y_hist)
    count_new = jnp.where(store, jnp.minimum(count + 1, settings.memory), count)
    # a failed search with memory: forget it and retry steepest descent; without memory: stop
    count_new = jnp.where(~accepted & (count > 0), 0, count_new)
    evals_new = evals + used
    small_f = (f - f_new) <= settings.ftol * jnp.maximum(jnp.maximum(jnp.abs(f), jnp.abs(f_new)), 1.0)
    pg_small = _projected_gradient_norm(u_new, g_new) <= settings.pgtol
    budget_left = jnp.where(evals_new >= max_evals, BUDGET, RUNNING)
    if_fresh = jnp.where(~accepted, NOT_FINITE, jnp.where(pg_small, CONVERGED_PG, budget_left))
    new_status = jnp.where(fresh, if_fresh, jnp.where(
        ~accepted & (evals_new >= max_evals), BUDGET,
        jnp.where(~accepted & (count == 0), NO_STEP,
                  jnp.where(accepted & pg_small, CONVERGED_PG,
                            jnp.where(accepted & small_f, CONVERGED_F, budget_left)))))
    keep = lambda old, new: jnp.where(running, new, old)  # noqa: E731
    return (keep(u, u_new), keep(f, f_new), keep(g, g_new), keep(s_hist, s_hist_new), keep(y_hist, y_hist_new),
            keep(count, count_new), keep(status, new_status), keep(evals, evals_new),
            keep(iterations, iterations + 1))


def start(settings: Settings, u0) -> LbfgsState:
    """The state of every start ``u0`` [S, P] before any evaluation: the first :func:`iterate` evaluates the
    starts (so the value-and-gradient lives in one compiled program only)."""
    u0 = jnp.asarray(u0)
    n, p = u0.shape
    zeros = jnp.zeros((n, settings.memory, p), u0.dtype)
    ints = jnp.zeros((n,), jnp.int32)
    return LbfgsState(u0, jnp.full((n,), jnp.inf, u0.dtype), jnp.zeros_like(u0), zeros, zeros, ints, ints + RUNNING,
                      ints, ints)


@partial(jax.jit, static_argnums=(0, 1))
def iterate(fun: Callable, settings: Settings, args, state: LbfgsState, max_evals) -> LbfgsState:
    """Advance every running start by one iteration (one vectorised program for all starts)."""
    step = jax.vmap(partial(_iterate_one, fun, settings, args), in_axes=(0,) * 9 + (None,))
    out = step(state.u, state.f, state.g, state.s_hist, state.y_hist, state.count, state.status, state.evals,
               state.iterations, max_evals)
    return LbfgsState(*out)
