"""The generalized integrate-and-fire model (Mihalas & Niebur 2009) as fitted in Wang et al. 2024.

    dI1/dt  = -k1 I1                      dI2/dt = -k2 I2
    tau dV/dt = -(V - V_rest) + R (I + I1 + I2)
    dV_th/dt = a (V - V_rest) - b (V_th - V_th_inf)

and when V >= V_th: V <- V_reset, I1 <- R1 I1 + A1, I2 <- R2 I2 + A2, V_th <- max(V_th_reset, V_th).
Fitted: a, b, k1, k2 (1/ms). Units: V in mV, I in nA, R in MOhm, time in ms. Each step applies the
reset of a spike detected at its start, then integrates exactly (exponential Euler) as the paper's code
does. The spike-triggered currents are what make k1 and k2 identifiable: with the brainpy defaults
A1 = A2 = 0 they stay zero, so the defaults here give them a depolarising I1 kick and an adapting I2
(A1 = 0.5 nA, A2 = -0.1 nA, within the ranges of Mihalas & Niebur's firing patterns).
"""

from __future__ import annotations

from diffbrain.neuron.base import ModelParam, NeuronModel, crossing_lag, exprel, spike_function

FITTED = (
    ModelParam("a", "1/ms", 0.005, "dependence of the threshold on V", 0.0, 0.1),
    ModelParam("b", "1/ms", 0.01, "relaxation rate of the threshold to V_th_inf", 0.0, 0.1),
    ModelParam("k1", "1/ms", 0.2, "decay rate of the spike-triggered current I1", 0.1, 1.0),
    ModelParam("k2", "1/ms", 0.02, "decay rate of the spike-triggered current I2", 0.01, 0.1),
)
FIXED = (
    ModelParam("V_rest", "mV", -70.0, "resting potential"),
    ModelParam("V_reset", "mV", -70.0, "reset potential after a spike"),
    ModelParam("V_th_inf", "mV", -50.0, "target of the threshold dynamics"),
    ModelParam("V_th_reset", "mV", -60.0, "lowest threshold after a spike"),
    ModelParam("R", "Mohm", 20.0, "membrane resistance"),
    ModelParam("tau", "ms", 20.0, "membrane time constant"),
    ModelParam("R1", "1", 0.0, "fraction of I1 kept at a spike"),
    ModelParam("R2", "1", 1.0, "fraction of I2 kept at a spike"),
    ModelParam("A1", "nA", 0.5, "jump of I1 at a spike"),
    ModelParam("A2", "nA", -0.1, "jump of I2 at a spike"),
    ModelParam("V_init", "mV", -70.0, "initial V"),
    ModelParam("V_th_init", "mV", -50.0, "initial threshold"),
    ModelParam("spike_width", "mV", 10.0, "half-width of the surrogate gradient in V - V_th"),
)


def _run(theta, constants, current, dt, forced=None):
    """The GIF scan; with ``forced`` [T, B] (0/1) spikes happen exactly there, half a step before the sample."""
    import jax
    import jax.numpy as jnp

    a, b, k1, k2 = (theta[i] for i in range(4))
    (v_rest, v_reset, v_th_inf, v_th_reset, r, tau, r1, r2, a1, a2, v_init, v_th_init,
     width) = (constants[i] for i in range(13))
    spike = spike_function()
    n = current.shape[1]
    dtype = current.dtype
    decay1, decay2 = jnp.exp(-k1 * dt), jnp.exp(-k2 * dt)
    th_gain, v_gain = dt * exprel(-b * dt), dt * exprel(-dt / tau) / tau

    def threshold_rate(v, v_th):
        return a * (v - v_rest) - b * (v_th - v_th_inf)

    def step(carry, inputs):
        i_ext, forced_now = inputs
        v, v_th, i1, i2, x_prev = carry
        x = v - v_th
        s = spike(x / width)
        if forced is None:
            fired = jax.lax.stop_gradient(s)
            lag = crossing_lag(x_prev, x) * fired
        else:
            fired, lag = forced_now, 0.5 * forced_now
        since = lag * dt  # ms since the crossing
        i1_post = r1 * i1 + a1 * jnp.exp(-k1 * since)
        i2_post = r2 * i2 + a2 * jnp.exp(-k2 * since)
        th_cross = jnp.maximum(v_th_reset, v_th - since * threshold_rate(v, v_th))
        th_post = th_cross + since * threshold_rate(v_reset, th_cross)
        v_post = v_reset + since * (-(v_reset - v_rest) + r * (i_ext + i1_post + i2_post)) / tau
        # recorded at a spike sample: the mean over the step (pre-crossing V, then the reset trajectory)
        v_out = v + fired * lag * (v_post - v)
        v = v + fired * (v_post - v)
        v_th = v_th + fired * (th_post - v_th)
        i1 = i1 + fired * (i1_post - i1)
        i2 = i2 + fired * (i2_post - i2)
        x_after = v - v_th
        i1, i2 = i1 * decay1, i2 * decay2
        v_th = v_th + th_gain * threshold_rate(v, v_th)
        v = v + v_gain * (-(v - v_rest) + r * (i_ext + i1 + i2))
        return (v, v_th, i1, i2, x_after), (v_out, s, lag, x, x_prev)

    zeros = jnp.zeros((n,), dtype)
    v0, th0 = zeros + v_init, zeros + v_th_init
    init = (v0, th0, zeros, zeros, v0 - th0)
    forced_seq = jnp.zeros_like(current) if forced is None else forced
    _, out = jax.lax.scan(step, init, (current, forced_seq))
    return out


def simulate(theta, constants, current, dt):
    """GIF on ``current`` [T, B] (nA) with step ``dt`` (ms): (V [T, B] mV, spikes [T, B], lag [T, B]).

    A spike found at sample t (V >= V_th) crossed threshold ``lag`` steps earlier (linear interpolation);
    the reset is applied at that crossing time and the reset state advanced by the remaining ``lag * dt``
    (first order for V and V_th, exactly for I1 and I2). The V recorded at a spike sample is the mean over
    that step (the pre-crossing value, then the reset trajectory), as sampling a continuous trajectory
    would give. So V and everything after a spike depend continuously on spike times, and gradients
    reach a, b, k1, k2 through the timing, exactly within a fixed spike pattern. The reset uses the
    spike's forward value only; the surrogate gradient flows through the ``spikes`` output.
    """
    v, s, lag, _, _ = _run(theta, constants, current, dt)
    return v, s, lag


def simulate_forced(theta, constants, current, dt, forced):
    """GIF with spikes imposed at ``forced`` [T, B] (0/1): (V, x, x_before) [T, B], where x = V - V_th at each
    sample before any reset and x_before the same just after the previous sample's reset.

    With the data's spike times imposed, V between spikes no longer depends on when the model would
    have fired: a smooth function of k1, k2 (and of a, b through the threshold x), the classic way to fit
    threshold models (Mensi et al. 2012; Pozzorini et al. 2015). See :func:`diffbrain.losses.threshold_penalty`.
    """
    v, _, _, x, x_before = _run(theta, constants, current, dt, forced)
    return v, x, x_before


def spikes_from_voltage(voltage, constants=None, jump_mv: float = 5.0):
    """Spike samples [B, T] (0/1) read off a GIF voltage trace: where V jumps by more than ``jump_mv`` within
    one step (the reset; a jump over two samples counts once). A reset that barely moves V is missed."""
    import numpy as np

    voltage = np.asarray(voltage, dtype=np.float64)
    jump = np.zeros(voltage.shape, dtype=bool)
    jump[:, 1:] = np.abs(np.diff(voltage, axis=1)) > jump_mv
    first = jump.copy()
    first[:, 1:] &= ~jump[:, :-1]
    return first.astype(np.float64)


MODEL = NeuronModel(
    name="gif",
    fitted=FITTED,
    fixed=FIXED,
    simulate=simulate,
    simulate_forced=simulate_forced,
    spikes_from_voltage=spikes_from_voltage,
    default_dt_ms=0.1,
    default_duration_ms=1000.0,
    current_scale_na=1.5,
    gamma_delta_ms=2.0,
    help="generalized integrate-and-fire (Mihalas-Niebur): threshold dynamics and two spike-triggered currents",
)
