"""Fitting: the vectorised L-BFGS-B on known minima, parameter recovery (issue 2's Must-show), the seed-style
sequential path, and the gradient-free baselines through their libraries."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from diffbrain.errors import BadInput
from diffbrain.fitting import fit, fit_gradient_sequential, lbfgsb, make_problem
from diffbrain.fitting import problem as fp
from diffbrain.neuron import get_model, simulate
from diffbrain.traces import Traces, protocol


def _quadratic(center, u):
    weights = jnp.arange(1.0, u.shape[0] + 1.0)
    return jnp.sum(weights * (u - center) ** 2) + 0.5 * jnp.prod(jnp.sin(u))


quadratic_and_grad = jax.value_and_grad(_quadratic, argnums=1)


SETTINGS = lbfgsb.Settings()


def _solve(fun, args, u0, max_evals=200, settings=SETTINGS):
    cap = jnp.asarray(max_evals)
    state = lbfgsb.start(settings, jnp.asarray(u0, jnp.float32))
    while (np.asarray(state.status) == lbfgsb.RUNNING).any():
        state = lbfgsb.iterate(fun, settings, args, state, cap)
    return state


def test_vectorised_lbfgsb_finds_bounded_minima_like_scipy():
    from scipy.optimize import minimize

    center = jnp.asarray([0.3, 1.4, -0.2, 0.7], jnp.float32)  # two coordinates end on a bound
    u0 = np.random.default_rng(0).uniform(size=(6, 4))
    state = _solve(quadratic_and_grad, center, u0)
    with jax.enable_x64(True):
        exact = jax.jit(quadratic_and_grad)
        center64 = jnp.asarray(center, jnp.float64)
        reference = minimize(lambda u: tuple(np.asarray(x, np.float64) for x in exact(center64, jnp.asarray(u))),
                             u0[0], jac=True, method="L-BFGS-B", bounds=[(0, 1)] * 4,
                             options={"ftol": 1e-14, "gtol": 1e-10}).x
    np.testing.assert_allclose(np.asarray(state.u), np.broadcast_to(reference, (6, 4)), atol=2e-4)
    assert np.asarray(state.u)[:, 1].tolist() == [1.0] * 6 and np.asarray(state.u)[:, 2].tolist() == [0.0] * 6
    assert set(np.asarray(state.status).tolist()) <= {lbfgsb.CONVERGED_PG, lbfgsb.CONVERGED_F}
    assert (np.asarray(state.evals) < 60).all()


def test_lbfgsb_respects_the_budget_and_stops_non_finite_starts():
    def rosenbrock(args, u):
        x, y = 2 * u[0] - 1, 2 * u[1] - 1
        f = (1 - x) ** 2 + 100 * (y - x * x) ** 2
        return jnp.where(u[0] > 0.95, jnp.nan, f)

    fun = jax.value_and_grad(rosenbrock, argnums=1)
    state = _solve(fun, None, np.array([[0.1, 0.1], [0.99, 0.5], [0.3, 0.8]]), max_evals=7)
    status, evals = np.asarray(state.status), np.asarray(state.evals)
    assert status[1] == lbfgsb.NOT_FINITE and evals[1] == 1
    assert (evals <= 7).all() and status[0] == lbfgsb.BUDGET


def _target(model, kind, duration, target):
    neuron = get_model(model)
    current = protocol(kind, model, duration, neuron.default_dt_ms)
    sim = simulate(model, current, neuron.default_dt_ms)
    return make_problem(model, target, Traces(current, sim.dt, sim.voltage, sim.spikes)), sim, neuron


@pytest.mark.slow
@pytest.mark.parametrize("model, duration, starts", [("gif", 300.0, 10), ("hh", 8.0, 8)])
def test_gradient_fit_recovers_every_parameter_from_a_potential_target(model, duration, starts):
    problem, _, neuron = _target(model, "steps", duration, "potential")
    result = fit(problem, "gradient", starts=starts, budget=starts * 200, seed=0)
    truth = np.asarray(neuron.theta())
    np.testing.assert_allclose(result.best, truth, rtol=0.05)
    assert result.loss < 0.1 and result.evaluations <= starts * 200
    assert result.start_loss.shape == (starts,) and result.loss == pytest.approx(result.start_loss.min())


@pytest.mark.slow
@pytest.mark.parametrize("model, duration, starts", [("gif", 300.0, 10), ("hh", 8.0, 8)])
def test_gradient_fit_matches_a_spike_target(model, duration, starts):
    problem, sim, _ = _target(model, "steps", duration, "spike")
    assert sim.spike_counts().sum() >= 5
    result = fit(problem, "gradient", starts=starts, budget=starts * 200, seed=0)
    assert result.loss <= 0.1
    u = problem.to_unit(jnp.asarray(result.best[None], jnp.float32))
    counts = np.asarray(fp.batch_spike_counts(problem, u))[0]
    assert np.abs(counts - sim.spike_counts()).max() <= 1


def test_sequential_scipy_path_reaches_the_same_fit_from_the_same_starts():
    problem, _, neuron = _target("hh", "steps", 6.0, "potential")
    vectorised = fit(problem, "gradient", starts=3, budget=300, seed=5)
    sequential = fit_gradient_sequential(problem, starts=3, budget=300, seed=5)
    assert sequential.method == "gradient-sequential" and sequential.evaluations <= 300
    assert sequential.loss < 0.05 and vectorised.loss < 0.05
    np.testing.assert_allclose(sequential.best, vectorised.best, rtol=0.01)
    assert len(sequential.progress_seconds) == 3


@pytest.mark.parametrize("method", ["de", "pso", "twopointsde", "bayes"])
def test_each_baseline_runs_through_its_library_within_budget_and_deterministically(method, monkeypatch):
    import nevergrad.optimization.base as ng_base
    import skopt

    told = []
    library_tell = skopt.Optimizer.tell if method == "bayes" else ng_base.Optimizer.tell

    def spy(self, *args, **kwargs):
        told.append(len(args[0]) if method == "bayes" else 1)
        return library_tell(self, *args, **kwargs)

    monkeypatch.setattr(skopt.Optimizer if method == "bayes" else ng_base.Optimizer, "tell", spy)
    problem, _, _ = _target("hh", "steps", 4.0, "potential")
    first = fit(problem, method, starts=4, budget=12, seed=7)
    assert sum(told) == 12 and first.evaluations == 12 and first.start_loss.shape == (3,)
    again = fit(problem, method, starts=4, budget=12, seed=7)
    np.testing.assert_array_equal(first.best, again.best)
    assert first.loss == again.loss and np.isfinite(first.loss)
    other = fit(problem, method, starts=4, budget=12, seed=8)
    assert not np.array_equal(first.start_params, other.start_params)
    lower, upper = np.asarray(problem.lower), np.asarray(problem.upper)
    assert ((first.start_params >= lower - 1e-6) & (first.start_params <= upper + 1e-6)).all()


def test_fit_rejects_bad_settings():
    problem, _, _ = _target("hh", "steps", 4.0, "potential")
    with pytest.raises(BadInput, match="method"):
        fit(problem, "newton")
    with pytest.raises(BadInput) as info:
        fit(problem, "gradient", starts=8, budget=4)
    assert info.value.field == "budget"
    with pytest.raises(BadInput) as info:
        fit(problem, "de", starts=1, budget=10)
    assert info.value.field == "starts"
