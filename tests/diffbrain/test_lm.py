"""The Levenberg–Marquardt polisher: its forward-mode Jacobian against finite differences (float64, on the neuron
models), one damped Gauss–Newton step against the normal equations, and whole fits against SciPy's
``least_squares`` on a small bounded problem (issue 13's Must-show)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from diffbrain.fitting import lm, make_problem
from diffbrain.fitting import problem as fp
from diffbrain.neuron import get_model, simulate
from diffbrain.traces import Traces, protocol

# a decaying exponential on a baseline, y = a exp(-b t) + c, its three parameters mapped from the unit box
T = np.linspace(0.0, 4.0, 60)
LOWER, UPPER = np.array([0.0, 0.0, -1.0]), np.array([5.0, 3.0, 1.0])


def _data(a, b, c, noise=0.02):
    return a * np.exp(-b * T) + c + noise * np.random.default_rng(0).standard_normal(T.shape)


def _decay(y, u):
    a, b, c = jnp.asarray(LOWER) + u * jnp.asarray(UPPER - LOWER)
    return (a * jnp.exp(-b * jnp.asarray(T)) + c - y) / jnp.sqrt(float(T.size))


def _lm_fit(fun, args, u0, max_evals=200):
    settings = lm.Settings(ftol=1e-12, xtol=1e-12)
    state = lm.start(settings, jnp.asarray(u0))
    cap = jnp.asarray(max_evals, jnp.int32)
    while (np.asarray(state.status) == lm.RUNNING).any():
        state = lm.iterate(fun, settings, args, state, cap)
    return state


def _scipy_fit(y, u0):
    from scipy.optimize import least_squares

    with jax.enable_x64(True):
        residuals = jax.jit(lambda u: _decay(jnp.asarray(y), u))
        jacobian = jax.jit(jax.jacfwd(lambda u: _decay(jnp.asarray(y), u)))
        return least_squares(lambda u: np.asarray(residuals(jnp.asarray(u))), u0,
                             jac=lambda u: np.asarray(jacobian(jnp.asarray(u))), bounds=(0.0, 1.0), method="trf",
                             xtol=1e-14, ftol=1e-14, gtol=1e-14).x


def _fd_jacobian(fun, args, u, h=1e-6):
    columns = []
    for k in range(u.shape[0]):
        step = jnp.zeros_like(u).at[k].set(h)
        columns.append((np.asarray(fun(args, u + step)) - np.asarray(fun(args, u - step))) / (2 * h))
    return np.stack(columns, axis=1)


@pytest.mark.parametrize("truth", [(2.0, 1.3, 0.5), (3.0, 0.7, 1.4)])  # the second one's c lies above its bound
def test_lm_matches_scipy_least_squares_on_a_small_bounded_problem(truth):
    y = _data(*truth)
    starts = np.array([[0.1, 0.9, 0.2], [0.8, 0.1, 0.9], [0.5, 0.5, 0.5]])
    with jax.enable_x64(True):
        state = _lm_fit(_decay, jnp.asarray(y), jnp.asarray(starts))
        u_lm = np.asarray(state.u)
        cost = np.asarray(state.f)
    reference = _scipy_fit(y, starts[2])
    np.testing.assert_allclose(u_lm, np.broadcast_to(reference, u_lm.shape), atol=1e-6)
    with jax.enable_x64(True):
        best = float(jnp.sum(_decay(jnp.asarray(y), jnp.asarray(reference)) ** 2))
    np.testing.assert_allclose(cost, best, rtol=1e-9)
    assert set(np.asarray(state.status).tolist()) <= {lm.CONVERGED_X, lm.CONVERGED_F}
    if truth[2] > UPPER[2]:
        assert (u_lm[:, 2] == 1.0).all()  # held at the bound, as least_squares
    assert (np.asarray(state.evals) < 40).all()


def test_one_damped_step_solves_the_normal_equations_and_predicts_the_linear_model():
    y = jnp.asarray(_data(2.0, 1.3, 0.5))
    with jax.enable_x64(True):
        u = jnp.asarray([0.3, 0.2, 0.6])
        r, jac = lm.residuals_and_jacobian(_decay, y, u)
        np.testing.assert_allclose(np.asarray(jac), _fd_jacobian(_decay, y, u), rtol=1e-6, atol=1e-9)
        g, h = jac.T @ r, jac.T @ jac
        lam = 0.1
        u_try, taken, predicted, _ = lm.step_and_prediction(u, g, h, lam)
        step = np.linalg.solve(np.asarray(h) + lam * np.diag(np.diag(np.asarray(h))), -np.asarray(g))
        np.testing.assert_allclose(np.asarray(taken), step, rtol=1e-10)
        linear = np.asarray(r) + np.asarray(jac) @ step  # the Gauss-Newton model of the residuals
        np.testing.assert_allclose(float(predicted), float(r @ r) - float(linear @ linear), rtol=1e-10)
        # a step that leaves the box is projected, and the prediction follows the step taken
        u_edge = jnp.asarray([0.3, 0.2, 0.999])
        r, jac = lm.residuals_and_jacobian(_decay, jnp.asarray(_data(2.0, 1.3, 1.4)), u_edge)
        u_try, taken, _, _ = lm.step_and_prediction(u_edge, jac.T @ r, jac.T @ jac, 1e-3)
        assert float(u_try[2]) == 1.0 and float(taken[2]) == pytest.approx(0.001)


def _problem(model, duration, target="potential", truth=None):
    neuron = get_model(model)
    current = protocol("steps", model, duration, neuron.default_dt_ms, n_traces=3)
    sim = simulate(model, current, neuron.default_dt_ms, truth)
    return make_problem(model, target, Traces(current, sim.dt, sim.voltage, sim.spikes))


@jax.jit
def _residuals(args, u):
    problem, forcing = args
    return fp.residuals(problem, u, forcing)


_jacobian = jax.jit(lambda args, u: lm.residuals_and_jacobian(_residuals, args, u))
_gradient = jax.jit(jax.grad(lambda args, u: jnp.sum(_residuals(args, u) ** 2), argnums=1))


@pytest.mark.parametrize("model, duration, forcing, u", [
    ("hh", 6.0, None, [0.3, 0.45, 0.35, 0.5]),
    ("gif", 300.0, 0.0, [0.062, 0.115, 0.144, 0.089]),  # free running, through spike times
    ("gif", 300.0, 1.0, [0.2, 0.3, 0.6, 0.4]),  # spikes imposed, with the threshold penalty
])
def test_forward_mode_jacobian_matches_finite_differences_and_reverse_mode(model, duration, forcing, u):
    with jax.enable_x64(True):
        problem = _problem(model, duration, truth={"gNa": 20.0, "VT": -60.0} if model == "hh" else None)
        u = jnp.asarray(u, jnp.float64)
        args = (problem, None if forcing is None else jnp.asarray(forcing, jnp.float64))
        r, jac = _jacobian(args, u)
        fd = _fd_jacobian(_residuals, args, u)
        gradient = _gradient(args, u)
        if forcing == 0.0:  # the free residuals are the objective's
            assert float(jnp.sum(r**2)) == pytest.approx(float(fp.objective(problem, u)), rel=1e-10)
        if forcing == 1.0:
            assert float(jnp.sum(r**2)) == pytest.approx(float(fp.warm_objective(problem, u)), rel=1e-10)
    jac = np.asarray(jac)
    scale = np.abs(fd).max(axis=0)
    assert (scale > 0).all()
    np.testing.assert_allclose(jac, fd, rtol=1e-3, atol=1e-4 * scale.max())
    np.testing.assert_allclose(2 * jac.T @ np.asarray(r), np.asarray(gradient), rtol=1e-8)
