"""``jax.grad`` of the fitting objectives against central finite differences in float64 (issue 2's Must-show)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from diffbrain.fitting import make_problem
from diffbrain.fitting import problem as fp
from diffbrain.neuron import get_model, simulate
from diffbrain.traces import Traces, protocol


def _problem(model, duration, target="potential", points=0, truth=None):
    neuron = get_model(model)
    current = protocol("steps", model, duration, neuron.default_dt_ms, n_traces=3)
    sim = simulate(model, current, neuron.default_dt_ms, truth)
    return make_problem(model, target, Traces(current, sim.dt, sim.voltage, sim.spikes), points=points)


def _grad_and_fd(objective, problem, u, h=1e-6):
    grad = np.asarray(jax.grad(objective, argnums=1)(problem, u))
    fd = []
    for k in range(u.shape[0]):
        step = jnp.zeros_like(u).at[k].set(h)
        fd.append((float(objective(problem, u + step)) - float(objective(problem, u - step))) / (2 * h))
    return grad, np.asarray(fd)


@pytest.mark.parametrize("points", [0, 40])
def test_hh_voltage_loss_gradient_matches_finite_differences(points):
    with jax.enable_x64(True):
        problem = _problem("hh", 6.0, points=points, truth={"gNa": 20.0, "VT": -60.0})
        u = jnp.asarray([0.3, 0.45, 0.35, 0.5], jnp.float64)  # away from the truth: spikes shifted
        assert problem.current.dtype == jnp.float64
        grad, fd = _grad_and_fd(fp.objective, problem, u)
    assert np.abs(grad).min() > 1e-3
    np.testing.assert_allclose(grad, fd, rtol=1e-3)


def test_gif_voltage_loss_gradient_matches_finite_differences_through_spike_times():
    with jax.enable_x64(True):
        problem = _problem("gif", 300.0)
        u = problem.to_unit(jnp.asarray([0.0062, 0.0115, 0.23, 0.018], jnp.float64))
        spikes = [np.asarray(fp.traces_at(problem, u + d)[1]) for d in (-1e-6, 0.0, 1e-6)]
        assert spikes[1].sum() >= 5 and all((s == spikes[1]).all() for s in spikes)  # one spike pattern
        grad, fd = _grad_and_fd(fp.objective, problem, u)
    assert np.abs(grad).min() > 1e-3  # a and b act through spike timing only
    np.testing.assert_allclose(grad, fd, rtol=1e-3)


@pytest.mark.parametrize("target", ["potential", "spike"])
def test_gif_spike_forced_objective_gradient_matches_finite_differences(target):
    with jax.enable_x64(True):
        problem = _problem("gif", 300.0, target=target)
        u = jnp.asarray([0.2, 0.3, 0.6, 0.4], jnp.float64)
        grad, fd = _grad_and_fd(fp.warm_objective, problem, u)
    np.testing.assert_allclose(grad, fd, rtol=1e-3, atol=1e-6 * np.abs(fd).max())
