"""Losses against ground truth: hand-computed errors and a spike-time reference of brian2modelfitting's gamma factor."""

import math

import numpy as np
import pytest

from diffbrain import losses
from diffbrain.errors import BadInput


def _gamma_reference(model_steps, data_steps, delta_steps, n_steps, dt):
    """The gamma-factor error from spike *times*, as brian2modelfitting defines it (each data spike is
    coincident when its nearest model spike is within delta; rate-corrected; clipped at 0)."""
    duration, delta = n_steps * dt, delta_steps * dt
    n_model, n_data = len(model_steps), len(data_steps)
    coincident = sum(1 for d in data_steps if n_model and min(abs(m - d) for m in model_steps) <= delta_steps)
    rate = n_data / duration
    gamma = (coincident - 2 * delta * n_data * rate) / (0.5 * (1 - 2 * rate * delta) * (n_model + n_data))
    return max(0.0, 1 + 2 * abs(n_data - n_model) / n_data - gamma)


def _trains(rng, n_steps, n_traces, rate):
    return (rng.uniform(size=(n_steps, n_traces)) < rate).astype(np.float64)


def test_voltage_errors_are_hand_computable():
    v = np.zeros((4, 2))
    target = np.array([[0.0, 0.0], [1.0, 2.0], [0.0, 0.0], [3.0, 0.0]])
    assert float(losses.voltage_mse(v, target)) == pytest.approx((1 + 4 + 9) / 8)
    assert float(losses.voltage_rmse(v, target)) == pytest.approx(math.sqrt(14 / 8))
    assert losses.sample_indices(4, 2).tolist() == [0, 3]
    assert float(losses.voltage_mse(v, target, points=2)) == pytest.approx(9 / 4)


def test_exact_gamma_matches_the_spike_time_reference():
    rng = np.random.default_rng(3)
    dt, delta_ms, n_steps = 0.1, 0.5, 2000
    window = losses.window_steps(delta_ms, dt)
    for _ in range(5):
        model, data = _trains(rng, n_steps, 4, 0.004), _trains(rng, n_steps, 4, 0.004)
        # put some model spikes near data spikes, at 0..7 steps
        for t, b in zip(*np.nonzero(data), strict=True):
            if rng.uniform() < 0.5:
                model[min(t + rng.integers(0, 8), n_steps - 1), b] = 1.0
        got = np.asarray(losses.gamma_factor_exact(model, data, dt, delta_ms, window, losses.spike_capacity(data)))
        for b in range(4):
            want = _gamma_reference(np.nonzero(model[:, b])[0], np.nonzero(data[:, b])[0], 5, n_steps, dt)
            assert got[b] == pytest.approx(want, rel=1e-5, abs=1e-6)


def test_smooth_gamma_is_an_upper_bound_equal_at_a_perfect_match():
    rng = np.random.default_rng(4)
    dt, delta_ms, n_steps = 0.1, 1.0, 3000
    window, data = losses.window_steps(delta_ms, dt), _trains(rng, n_steps, 3, 0.003)
    capacity = losses.spike_capacity(data)
    lag = rng.uniform(size=data.shape)
    perfect = losses.gamma_factor_loss(data, lag, data, dt, delta_ms, window, capacity)
    np.testing.assert_allclose(np.asarray(perfect), 0.0, atol=1e-6)
    for shift in (1, 4, 8, 12):
        model = np.roll(data, shift, axis=0)
        smooth = np.asarray(losses.gamma_factor_loss(model, lag, data, dt, delta_ms, window, capacity))
        exact = np.asarray(losses.gamma_factor_exact(model, data, dt, delta_ms, window, capacity))
        assert (smooth >= exact - 1e-6).all()
    assert float(np.asarray(losses.gamma_factor_exact(np.roll(data, 12, axis=0), data, dt, delta_ms, window,
                                                      capacity)).min()) > 1.0


def test_smooth_gamma_is_continuous_and_differentiable_in_spike_times():
    import jax
    import jax.numpy as jnp

    dt, delta_ms, n_steps = 0.1, 1.0, 400
    window = losses.window_steps(delta_ms, dt)
    data = np.zeros((n_steps, 1))
    data[[100, 250], 0] = 1.0
    model = np.zeros((n_steps, 1))
    model[[100, 258], 0] = 1.0  # the second model spike is 0.8 ms late: inside the taper

    def loss(lag_value):
        lag = jnp.zeros((n_steps, 1)).at[258, 0].set(lag_value)
        return losses.gamma_factor_loss(jnp.asarray(model), lag, jnp.asarray(data), dt, delta_ms, window, 8)[0]

    with jax.enable_x64(True):
        grad = float(jax.grad(loss)(0.3))
        fd = float((loss(0.3 + 1e-6) - loss(0.3 - 1e-6)) / 2e-6)
        assert grad < 0  # an earlier crossing (larger lag) moves the spike toward the data: lower loss
        assert grad == pytest.approx(fd, rel=1e-5)
        values = np.asarray([float(loss(x)) for x in np.linspace(0.0, 0.99, 50)])
    assert np.abs(np.diff(values)).max() < 0.02  # no jumps


def test_gamma_without_data_spikes_penalises_model_spikes():
    data = np.zeros((100, 2))
    model = np.zeros((100, 2))
    model[[10, 20, 30], 1] = 1.0
    got = np.asarray(losses.gamma_factor_exact(model, data, 0.1, 1.0, 11, 8))
    np.testing.assert_allclose(got, [0.0, 3 / 4])


def test_gamma_window_too_wide_for_the_rate_is_bad_input():
    data = np.zeros((1000, 1))
    data[::20, 0] = 1.0  # 500 Hz at dt 0.1 ms
    with pytest.raises(BadInput) as info:
        losses.check_gamma_window(data, 0.1, 1.0)
    assert info.value.field == "delta_ms"
    losses.check_gamma_window(data, 0.1, 0.5)


def test_threshold_penalty_is_hand_computable():
    forced = np.array([[0.0], [1.0], [0.0], [0.0]])
    x = np.array([[-5.0], [1.0], [2.0], [-1.0]])  # crossing at sample 1; V above threshold at sample 2
    x_before = np.array([[-6.0], [-3.0], [-8.0], [-2.0]])
    want = ((1.0 - 3.0) / 2) ** 2 + 2.0**2
    assert float(losses.threshold_penalty(x, x_before, forced)) == pytest.approx(want)
