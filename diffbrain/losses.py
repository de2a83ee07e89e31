"""Fitting objectives on simulated traces, usable under ``jax.grad``.

All arrays are [T, B] (time first, as the simulators return them).

Voltage error: mean squared error in mV^2 over the whole trace or at ``points`` evenly spaced samples
per trace (the paper samples); report its square root (RMSE, mV).

Spike trains: the gamma (coincidence) factor with rate correction as brian2modelfitting's
``GammaFactor`` defines it, per trace (Jolivet et al. 2008):

    gamma = (N_coinc - 2 delta N_data r_data) / (0.5 (1 - 2 r_data delta) (N_model + N_data))
    loss  = max(0, 1 + 2 |r_data - r_model| / r_data - gamma)

where a data spike is coincident when a model spike lies within +-delta. :func:`gamma_factor_exact`
computes exactly that on 0/1 spike trains (forward only). :func:`gamma_factor_loss`, the objective,
makes it differentiable in two ways:

1. spike counts come from surrogate-gradient spikes, so the rate term and the normaliser pull the
   firing rate toward the data's;
2. the coincidence count uses each model spike's interpolated crossing time (differentiable, finer
   than dt) and a smooth window: weight 1 within delta/2 of the data spike, a cosine taper to 0 at
   delta. The window is never above brian's box, so this loss is an upper bound of the exact one and
   equals it (0) at a perfect match; it is continuous in the spike times where the box is not.

A data spike at sample t means a crossing within ((t-1) dt, t dt]; it is placed at (t - 1/2) dt.
Traces whose data have no spike contribute N_model / (1 + N_model). The loss is the mean over traces.
"""

from __future__ import annotations

import math


def sample_indices(n_steps: int, points: int):
    """``points`` evenly spaced sample indices of a trace of ``n_steps`` (all when 0 or >= n_steps)."""
    import numpy as np

    if points <= 0 or points >= n_steps:
        return np.arange(n_steps)
    return np.linspace(0, n_steps - 1, points).round().astype(np.int64)


def voltage_mse(v_model, v_target, points: int = 0):
    """Mean squared voltage error (mV^2) over the whole trace, or at ``points`` samples per trace."""
    import jax.numpy as jnp

    index = sample_indices(v_model.shape[0], points)
    if len(index) == v_model.shape[0]:
        return jnp.mean((v_model - v_target) ** 2)
    return jnp.mean((v_model[index] - v_target[index]) ** 2)


def voltage_rmse(v_model, v_target, points: int = 0):
    """Root mean squared voltage error in mV."""
    import jax.numpy as jnp

    return jnp.sqrt(voltage_mse(v_model, v_target, points))


def window_steps(delta_ms: float, dt_ms: float) -> int:
    """Half-width in steps of the coincidence window (static: fixes the shape of the computation)."""
    return int(math.ceil(delta_ms / dt_ms)) + 1


def spike_capacity(target_spikes) -> int:
    """Room for the data's spikes per trace in the compiled loss: the largest count rounded up to a power of two
    (at least 8), so that data with similar counts share one compiled program."""
    import numpy as np

    most = int(np.asarray(target_spikes).sum(axis=0).max()) if np.asarray(target_spikes).size else 0
    return max(8, 1 << max(most - 1, 0).bit_length())


def _near_data_spikes(target_spikes, capacity: int, window: int, weight_at):
    """For every data spike (up to ``capacity`` per trace): sum over model samples within ``window`` steps of
    ``weight_at(offset, position)`` (gathered; zero outside the trace). Returns (near [M, B], valid [M, B])."""
    import jax
    import jax.numpy as jnp

    n_steps, n_traces = target_spikes.shape
    index = jax.vmap(lambda col: jnp.nonzero(col > 0.5, size=capacity, fill_value=n_steps)[0],
                     in_axes=1, out_axes=1)(target_spikes)  # [M, B]
    valid = index < n_steps
    offsets = jnp.arange(-window, window + 1)[:, None, None]
    position = index[None] + offsets  # [O, M, B]
    inside = valid[None] & (position >= 0) & (position < n_steps)
    position = jnp.clip(position, 0, n_steps - 1)
    near = jnp.sum(jnp.where(inside, weight_at(offsets, position), 0.0), axis=0)
    return near, valid


def _taper(distance, delta):
    """Smooth window: 1 for |d| <= delta/2, cosine taper to 0 at delta, 0 beyond."""
    import jax.numpy as jnp

    half = delta / 2.0
    u = jnp.clip((jnp.abs(distance) - half) / half, 0.0, 1.0)
    return 0.5 * (1.0 + jnp.cos(jnp.pi * u))


def _gamma_from_counts(coincidences, n_model, n_data, duration, delta, rate_correction: bool):
    import jax.numpy as jnp

    has_data = n_data > 0
    safe_data = jnp.where(has_data, n_data, 1.0)
    rate = safe_data / duration
    expected = 2.0 * delta * safe_data * rate
    norm = 0.5 * (1.0 - 2.0 * rate * delta)
    gamma = (coincidences - expected) / (norm * (n_model + safe_data))
    rate_term = 1.0 + 2.0 * jnp.abs(n_data - n_model) / safe_data if rate_correction else 1.0
    loss = jnp.maximum(rate_term - gamma, 0.0)
    return jnp.where(has_data, loss, n_model / (1.0 + n_model))


def gamma_factor_loss(spikes, lag, target_spikes, dt, delta, window: int, capacity: int,
                      rate_correction: bool = True):
    """Differentiable gamma-factor loss per trace [B] (see the module doc).

    ``spikes``/``lag`` are the model's [T, B] outputs, ``target_spikes`` the data's 0/1 [T, B]; ``dt`` and
    ``delta`` in ms; ``window`` from :func:`window_steps`, ``capacity`` >= the data's spikes per trace
    (:func:`spike_capacity`).
    """
    import jax.numpy as jnp

    columns = jnp.arange(spikes.shape[1])

    def weight(offset, position):
        # model crossing at (t + o - lag) dt, data spike placed at (t - 1/2) dt
        distance = (offset - lag[position, columns] + 0.5) * dt
        return spikes[position, columns] * _taper(distance, delta)

    near, valid = _near_data_spikes(target_spikes, capacity, window, weight)
    coincidences = jnp.sum(jnp.where(valid, jnp.minimum(near, 1.0), 0.0), axis=0)
    duration = spikes.shape[0] * dt
    return _gamma_from_counts(coincidences, jnp.sum(spikes, axis=0), jnp.sum(target_spikes, axis=0),
                              duration, delta, rate_correction)


def gamma_factor_exact(spikes, target_spikes, dt, delta, window: int, capacity: int, rate_correction: bool = True):
    """brian2modelfitting's gamma-factor loss per trace [B] on 0/1 trains (box window of +-delta)."""
    import jax.numpy as jnp

    columns = jnp.arange(spikes.shape[1])
    steps_delta = jnp.round(delta / dt)

    def weight(offset, position):
        return jnp.where(jnp.abs(offset) <= steps_delta, spikes[position, columns], 0.0)

    near, valid = _near_data_spikes(target_spikes, capacity, window, weight)
    coincidences = jnp.sum(jnp.where(valid, jnp.minimum(near, 1.0), 0.0), axis=0)
    duration = spikes.shape[0] * dt
    return _gamma_from_counts(coincidences, jnp.sum(spikes, axis=0), jnp.sum(target_spikes, axis=0),
                              duration, delta, rate_correction)


def check_gamma_window(target_spikes, dt_ms: float, delta_ms: float) -> None:
    """BadInput when the data fire too fast for the window (the gamma normaliser 1 - 2 r delta <= 0.05)."""
    import numpy as np

    from diffbrain.errors import BadInput

    counts = np.asarray(target_spikes).sum(axis=0)
    duration = np.asarray(target_spikes).shape[0] * dt_ms
    worst = float(counts.max()) / duration if duration > 0 else 0.0
    if 1.0 - 2.0 * worst * delta_ms <= 0.05:
        raise BadInput("delta_ms", f"a window of {delta_ms} ms is too wide for data firing at {worst * 1e3:.0f} Hz",
                       f"use a coincidence window below {0.45 / max(worst, 1e-12):.3g} ms")


def threshold_penalty(x, x_before, forced):
    """How far a threshold model with spikes imposed at ``forced`` [T, B] is from firing exactly there (mV^2).

    ``x`` = V - V_th at each sample before any reset, ``x_before`` the same just after the previous
    sample's reset. At an imposed spike the crossing should fall mid-step, (x_before + x) / 2 = 0;
    elsewhere V should stay below threshold, relu(x) = 0. Summed squares per imposed spike.
    """
    import jax
    import jax.numpy as jnp

    crossing = 0.5 * (x + x_before)
    total = jnp.sum(forced * crossing**2) + jnp.sum((1.0 - forced) * jax.nn.relu(x) ** 2)
    return total / jnp.maximum(jnp.sum(forced), 1.0)
