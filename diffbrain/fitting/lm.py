"""Bounded Levenberg–Marquardt for many starts at once, in JAX, with the Jacobian from forward mode.

For least-squares objectives ``F(u) = sum(r(u)**2)`` over the unit box (voltage residuals of a potential
target, scaled so that F is the mean squared error): each iteration pushes the P unit tangents through the
model in forward mode (``jax.jvp`` vmapped over the P directions: no reverse scan, nothing stored per time
step), forms the Gauss–Newton system ``H = J'J``, ``g = J'r`` and solves ``(H + lam D) s = -g`` with
Marquardt's scaling ``D = diag(H)``. Variables at a bound whose gradient pushes outward are held (the active
set, as in :mod:`diffbrain.fitting.lbfgsb`) and the step is projected onto the box (a projected step that
does not descend is rejected: the next, more damped one is shorter). A step is kept when the
loss falls (gain ratio rho > RHO_MIN); ``lam`` follows Nielsen's rule (times max(1/3, 1 - (2 rho - 1)^3) on
success, times a doubling factor on failure). ``jax.vmap`` runs every start in lockstep; a start that has
stopped is carried along unchanged and uses no evaluations.

Every iteration costs one residual-and-Jacobian evaluation at the trial point (counted in ``evals``); a
rejected trial's Jacobian is discarded. :func:`start` evaluates nothing: the first iteration evaluates the
starts themselves, so the Jacobian is compiled into one program only. Status codes are those of
:mod:`diffbrain.fitting.lbfgsb`: 0 running, 1 step below ``xtol``, 2 relative decrease below ``ftol``
(actual or, on a rejected step, predicted), 3 no acceptable step (``lam`` above LAM_MAX), 4 budget used,
5 the start is not finite.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from functools import partial

import jax
import jax.numpy as jnp

from diffbrain.fitting.lbfgsb import BUDGET, CONVERGED_F, CONVERGED_PG, NO_STEP, NOT_FINITE, RUNNING

CONVERGED_X = CONVERGED_PG  # the same code: "the step (or projected gradient) is below tolerance"
STATUS_TEXT = ("running", "step small", "loss decrease small", "no acceptable step", "budget used",
               "start not finite")
RHO_MIN = 1e-3
LAM_MAX = 1e10
MAX_REJECTIONS = 6  # ordinary steps rejected in a row before a start stops ("no acceptable step")
# After a step the model predicted well (rho > STRETCH_RHO) that gained more than STRETCH_GAIN of the loss while
# the new model reaches no lower than STRETCH_MYOPIC of it, try twice as far (up to STRETCH_MAX times the step)
STRETCH_RHO, STRETCH_GAIN, STRETCH_MYOPIC, STRETCH_MAX = 0.75, 0.01, 0.5, 64.0


@partial(jax.tree_util.register_dataclass,
         data_fields=["u", "f", "g", "h", "lam", "nu", "stretch", "f_model", "status", "evals", "iterations"],
         meta_fields=[])
@dataclasses.dataclass(frozen=True)
class LmState:
    """State of every start (leading axis S)."""

    u: jax.Array  # [S, P] current point in the unit box
    f: jax.Array  # [S] sum of squared residuals
    g: jax.Array  # [S, P] J'r (half the gradient of f)
    h: jax.Array  # [S, P, P] J'J
    lam: jax.Array  # [S] damping
    nu: jax.Array  # [S] growth factor of lam after a rejected step (2^(k+1) after k rejections in a row)
    stretch: jax.Array  # [S] multiple of the LM step tried next (> 1 after steps the model predicted well)
    f_model: jax.Array  # [S] the Gauss–Newton model's minimum where the last iteration began (<= f)
    status: jax.Array  # [S] int
    evals: jax.Array  # [S] residual-and-Jacobian evaluations used
    iterations: jax.Array  # [S]


@dataclasses.dataclass(frozen=True)
class Settings:
    """Tolerances (static: part of the compiled program)."""

    ftol: float = 1e-5
    xtol: float = 1e-6
    lam0: float = 1e-3


def residuals_and_jacobian(fun: Callable, args, u):
    """``(r [M], J [M, P])`` of ``fun(args, u)`` at ``u`` [P] by forward mode: P tangents pushed through once."""
    eye = jnp.eye(u.shape[0], dtype=u.dtype)
    push = lambda t: jax.jvp(lambda x: fun(args, x), (u,), (t,))  # noqa: E731
    return jax.vmap(push, out_axes=(None, 1))(eye)


def _normal_equations(fun: Callable, args, u):
    r, jac = residuals_and_jacobian(fun, args, u)
    return jnp.sum(r * r), jac.T @ r, jac.T @ jac


def _free(u, g):
    """Variables not held at a bound (a variable at a bound whose descent direction points outward is held)."""
    return ~(((u <= 0.0) & (g > 0.0)) | ((u >= 1.0) & (g < 0.0)))


def _steps(h, g, lam, free):
    """The damped (Marquardt scaling) and the undamped Gauss–Newton step on the free variables; held variables do
    not move. One batched solve for both: each ``jnp.linalg.solve`` in the program adds about half a CPU second
    to its compilation (measured), more than the solves ever cost to run."""
    p = g.shape[0]
    diag = jnp.diag(h)
    top = jnp.maximum(jnp.max(diag), 1e-30)
    scale = jnp.maximum(diag, 1e-12 * top)
    both = free[:, None] & free[None, :]
    eye = jnp.eye(p, dtype=h.dtype)
    damped = jnp.where(both, h + lam * jnp.diag(scale), eye)
    undamped = jnp.where(both, h + 1e-9 * top * eye, eye)  # a ridge far below any scale: singular H stays solvable
    rhs = jnp.where(free, -g, 0.0)
    steps = jnp.linalg.solve(jnp.stack([damped, undamped]), jnp.stack([rhs, rhs])[..., None])[..., 0]
    return steps[0], steps[1]


def model_minimum(f, g, h, gn_step):
    """The Gauss–Newton model's lowest loss (at the undamped step), >= 0: what a start could still reach locally."""
    return jnp.maximum(f + 2.0 * jnp.dot(gn_step, g) + gn_step @ h @ gn_step, 0.0)


def _project(u, g, h, step):
    """The trial point of ``step`` projected onto the box, the step taken and the model's predicted decrease."""
    u_try = jnp.clip(u + step, 0.0, 1.0)
    taken = u_try - u
    return u_try, taken, -(2.0 * jnp.dot(taken, g) + taken @ h @ taken)


def step_and_prediction(u, g, h, lam, stretch=1.0):
    """One LM step from ``u`` (times ``stretch``), projected onto the box: (trial point, step taken, predicted loss
    decrease, the undamped Gauss–Newton step). A projected step can fail to descend; it is then rejected and the
    larger damping of the next try shortens it, and a variable that reaches its bound is held there."""
    step, gn_step = _steps(h, g, lam, _free(u, g))
    return (*_project(u, g, h, stretch * step), gn_step)


def _iterate_one(fun: Callable, settings: Settings, args, u, f, g, h, lam, nu, stretch, f_model, status, evals,
                 iterations, max_evals, ftol):
    running = status == RUNNING
    fresh = jnp.isposinf(f)  # not evaluated yet: g = 0, so the step is 0 and the trial is u itself
    step, gn_step = _steps(h, g, lam, _free(u, g))
    model_here = jnp.where(fresh, jnp.inf, model_minimum(f, g, h, gn_step))
    # crawling: the last step gained as predicted, but the model here sees little further to go, as when spike
    # times in sampled residuals move by one sample per linearisation: then try ``stretch`` times the step
    stretch = jnp.where(model_here > STRETCH_MYOPIC * f, stretch, 1.0)
    stretched = stretch > 1.0
    u_try, taken, predicted = _project(u, g, h, stretch * step)
    f_try, g_try, h_try = _normal_equations(fun, args, u_try)
    finite = jnp.isfinite(f_try) & jnp.all(jnp.isfinite(g_try)) & jnp.all(jnp.isfinite(h_try))
    actual = f - f_try
    rho = actual / jnp.where(predicted > 0, predicted, jnp.inf)
    accept = finite & (fresh | (actual > 0) & (stretched | (rho > RHO_MIN)))
    plain = ~fresh & ~stretched  # an ordinary LM step: lam and the convergence tests follow it
    lam_new = jnp.where(plain, jnp.where(accept, lam * jnp.maximum(1.0 / 3.0, 1.0 - (2.0 * rho - 1.0) ** 3),
                                         lam * nu), lam)
    nu_new = jnp.where(plain & ~accept, 2.0 * nu, jnp.where(accept, 2.0, nu))
    grow = accept & ~fresh & (stretched | (rho > STRETCH_RHO)) & (actual > STRETCH_GAIN * f)
    stretch_new = jnp.where(grow, jnp.minimum(2.0 * stretch, STRETCH_MAX), 1.0)
    u_new = jnp.where(accept, u_try, u)
    f_new = jnp.where(accept, f_try, f)
    g_new = jnp.where(accept, g_try, g)
    h_new = jnp.where(accept, h_try, h)
    evals_new = evals + 1
    scale = jnp.maximum(f, 1e-30)
    small_step = plain & (jnp.max(jnp.abs(taken)) <= settings.xtol)
    converged_f = jnp.where(accept, actual <= ftol * scale, plain & (predicted >= 0.0) & (predicted <= ftol * scale))
    stuck = plain & ~accept & ((lam_new > LAM_MAX) | (nu_new >= 2.0 ** (MAX_REJECTIONS + 1)))
    budget_left = jnp.where(evals_new >= max_evals, BUDGET, RUNNING)
    new_status = jnp.where(
        fresh, jnp.where(finite, budget_left, NOT_FINITE),
        jnp.where(converged_f, CONVERGED_F,
                  jnp.where(small_step, CONVERGED_X, jnp.where(stuck, NO_STEP, budget_left))))
    keep = lambda old, new: jnp.where(running, new, old)  # noqa: E731
    return (keep(u, u_new), keep(f, f_new), keep(g, g_new), keep(h, h_new), keep(lam, lam_new), keep(nu, nu_new),
            keep(stretch, stretch_new), keep(f_model, jnp.minimum(model_here, f_new)), keep(status, new_status),
            keep(evals, evals_new), keep(iterations, iterations + 1))


def start(settings: Settings, u0) -> LmState:
    """The state of every start ``u0`` [S, P] before any evaluation: the first :func:`iterate` evaluates the
    residuals and Jacobian there (so the Jacobian lives in one compiled program only)."""
    u0 = jnp.asarray(u0)
    n, p = u0.shape
    ones = jnp.ones((n,), u0.dtype)
    ints = jnp.zeros((n,), jnp.int32)
    eye = jnp.broadcast_to(jnp.eye(p, dtype=u0.dtype), (n, p, p))
    return LmState(u0, jnp.full((n,), jnp.inf, u0.dtype), jnp.zeros_like(u0), eye, settings.lam0 * ones, 2.0 * ones,
                   ones, jnp.full((n,), jnp.inf, u0.dtype), ints + RUNNING, ints, ints)


@partial(jax.jit, static_argnums=(0, 1))
def iterate(fun: Callable, settings: Settings, args, state: LmState, max_evals, ftol=None) -> LmState:
    """Advance every running start by one LM iteration (one vectorised program for all starts).

    ``ftol`` (a traced value; default ``settings.ftol``) lets stages with looser tolerances share the program.
    """
    ftol = settings.ftol if ftol is None else ftol
    step = jax.vmap(partial(_iterate_one, fun, settings, args), in_axes=(0,) * 11 + (None, None))
    out = step(state.u, state.f, state.g, state.h, state.lam, state.nu, state.stretch, state.f_model, state.status,
               state.evals, state.iterations, max_evals, ftol)
    return LmState(*out)
