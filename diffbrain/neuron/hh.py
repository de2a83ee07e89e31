"""The Hodgkin-Huxley model of the paper's HH experiment: Traub-Miles rates shifted by V_T.

    alpha_m = 0.32 (13 - V + V_T) / (exp((13 - V + V_T)/4) - 1)
    beta_m  = 0.28 (V - V_T - 40) / (exp((V - V_T - 40)/5) - 1)
    alpha_h = 0.128 exp((17 - V + V_T)/18)      beta_h = 4 / (1 + exp((40 - V + V_T)/5))
    alpha_n = 0.032 (15 - V + V_T) / (exp((15 - V + V_T)/5) - 1)
    beta_n  = 0.5 exp((10 - V + V_T)/40)                                  (1/ms, mV)
    C dV/dt = gL (EL - V) - gNa m^3 h (V - ENa) - gK n^4 (V - EK) + I     (nF, uS, nA)

Fitted: gL, gNa, gK (uS) and VT (mV). Integrated with exponential Euler (each variable exactly, the
others held at their values from the start of the step), the scheme Brian2 uses by default: at
dt = 0.01 ms it reproduces the recorded traces of ``../shared/data/hh`` at the noise floor. A spike is
an upward crossing of ``V_spike`` (not fitted).
"""

from __future__ import annotations

from diffbrain.neuron.base import ModelParam, NeuronModel, crossing_lag, exprel, scan_step, spike_function

FITTED = (
    ModelParam("gL", "uS", 0.008363657, "leak conductance", 1e-4, 0.1),
    ModelParam("gNa", "uS", 24.6977377, "sodium conductance", 0.01, 40.0),
    ModelParam("gK", "uS", 5.8148950, "potassium conductance", 0.01, 20.0),
    ModelParam("VT", "mV", -55.3109446, "shift of the rate functions", -65.0, -50.0),
)
FIXED = (
    ModelParam("C", "nF", 0.2, "membrane capacitance"),
    ModelParam("EL", "mV", -65.0, "leak reversal potential"),
    ModelParam("EK", "mV", -90.0, "potassium reversal potential"),
    ModelParam("ENa", "mV", 50.0, "sodium reversal potential"),
    ModelParam("V_init", "mV", -65.0, "initial V (m = h = n = 0)"),
    ModelParam("V_spike", "mV", 0.0, "a spike is an upward crossing of this potential"),
    ModelParam("spike_width", "mV", 10.0, "half-width of the surrogate gradient in V - V_spike"),
)


def rates(v, vt):
    """(alpha_m, beta_m, alpha_h, beta_h, alpha_n, beta_n) in 1/ms at ``v`` (mV)."""
    import jax.numpy as jnp

    u = v - vt
    return (
        1.28 / exprel((13.0 - u) / 4.0),
        1.4 / exprel((u - 40.0) / 5.0),
        0.128 * jnp.exp((17.0 - u) / 18.0),
        4.0 / (1.0 + jnp.exp((40.0 - u) / 5.0)),
        0.16 / exprel((15.0 - u) / 5.0),
        0.5 * jnp.exp((10.0 - u) / 40.0),
    )


def simulate(theta, constants, current, dt):
    """HH on ``current`` [T, B] (nA) with step ``dt`` (ms): (V [T, B] mV, spikes [T, B], lag [T, B])."""
    import jax
    import jax.numpy as jnp

    g_l, g_na, g_k, vt = (theta[i] for i in range(4))
    c, e_l, e_k, e_na, v_init, v_spike, width = (constants[i] for i in range(7))
    spike = spike_function()
    n = current.shape[1]
    dtype = current.dtype

    def relax(x, alpha, beta):
        rate = alpha + beta
        target = alpha / rate
        return target + (x - target) * jnp.exp(-dt * rate)

    def step(carry, i_ext):
        v, m, h, nk, v_prev = carry
        # spike: V crossed V_spike upward between the previous sample and this one
        s = spike((v - v_spike) / width) * spike((v_spike - v_prev) / width)
        lag = crossing_lag(v_prev - v_spike, v - v_spike) * s
        am, bm, ah, bh, an, bn = rates(v, vt)
        g_na_open = g_na * m * m * m * h
        n2 = nk * nk
        g_k_open = g_k * n2 * n2
        g_total = g_l + g_na_open + g_k_open
        v_inf = (g_l * e_l + g_na_open * e_na + g_k_open * e_k + i_ext) / g_total
        v_next = v_inf + (v - v_inf) * jnp.exp(-dt * g_total / c)
        carry = (v_next, relax(m, am, bm), relax(h, ah, bh), relax(nk, an, bn), v)
        return carry, (v, s, lag)

    zeros = jnp.zeros((n,), dtype)
    v0 = zeros + v_init
    _, (v, s, lag) = jax.lax.scan(scan_step(step, current.shape), (v0, zeros, zeros, zeros, v0), current)
    return v, s, lag


def spikes_from_voltage(voltage, constants=None):
    """Spike samples [B, T] (0/1): where V reached ``V_spike`` (``constants``: fixed values in order) from below
    since the previous sample."""
    import numpy as np

    v_spike = FIXED[5].default if constants is None else float(constants[5])
    voltage = np.asarray(voltage, dtype=np.float64)
    out = np.zeros(voltage.shape)
    out[:, 1:] = (voltage[:, 1:] >= v_spike) & (voltage[:, :-1] < v_spike)
    return out


MODEL = NeuronModel(
    name="hh",
    fitted=FITTED,
    fixed=FIXED,
    simulate=simulate,
    spikes_from_voltage=spikes_from_voltage,
    default_dt_ms=0.01,
    default_duration_ms=14.97,
    current_scale_na=2.0,
    gamma_delta_ms=0.5,
    help="Hodgkin-Huxley with Traub-Miles rates shifted by V_T (the paper's HH experiment)",
)
