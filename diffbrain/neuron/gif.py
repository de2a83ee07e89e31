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

from diffbrain.neuron.base import ModelParam, NeuronModel, crossing_lag, exprel, scan_step, spike_function

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


def _run(theta, constants, current, dt, forced=None, forcing=1.0):
    """The GIF scan; with ``forced`` [T, B] (0/1) spikes happen exactly there, half a step before the sample
    (``forcing`` 1, a traced value; with 0 the same program runs free, so both share one compilation).

    A step from sample t-1 to t integrates every variable exactly for the step (exponential Euler, the
    others held). When V >= V_th at sample t, the crossing is placed by linear interpolation between the
    state after sample t-1 and the state at t (``lag`` steps before t, where V - V_th = 0), the reset is
    applied to that interpolated state and it is advanced by ``lag * dt`` with the same scheme and input.
    A crossing just after sample t-1 (lag -> 1) then gives exactly the state of a crossing just before it
    (reset at t-1, one full step): V and everything after a spike are continuous in spike times.
    """
    import jax
    import jax.numpy as jnp

    a, b, k1, k2 = (theta[i] for i in range(4))
    (v_rest, v_reset, v_th_inf, v_th_reset, r, tau, r1, r2, a1, a2, v_init, v_th_init,
     width) = (constants[i] for i in range(13))
    spike = spike_function()
    n = current.shape[1]
    dtype = current.dtype

    def advance(v, v_th, i1, i2, i_ext, h):
        """Exponential Euler over ``h`` ms (currents decay first; V_th sees the old V, V the new currents)."""
        i1, i2 = i1 * jnp.exp(-k1 * h), i2 * jnp.exp(-k2 * h)
        v_th_new = v_th + h * exprel(-b * h) * (a * (v - v_rest) - b * (v_th - v_th_inf))
        v_new = v + h * exprel(-h / tau) / tau * (-(v - v_rest) + r * (i_ext + i1 + i2))
        return v_new, v_th_new, i1, i2

    def step(carry, inputs):
        i_ext, forced_now = inputs
        v, v_th, i1, i2, before, i_prev = carry  # ``before``: (v, v_th, i1, i2) just after sample t-1
        x = v - v_th
        s = spike(x / width)
        if forced is None:
            fired = jax.lax.stop_gradient(s)
            lag = crossing_lag(before[0] - before[1], x) * fired
        else:  # ``forcing`` (traced) 1: the imposed spikes; 0: the model's own, as above
            own = jax.lax.stop_gradient(s)
            fired = forcing * forced_now + (1.0 - forcing) * own
            lag = forcing * 0.5 * forced_now + (1.0 - forcing) * crossing_lag(before[0] - before[1], x) * own
        # the state at the crossing, reset, then advanced to this sample
        cross = [now + lag * (then - now) for now, then in zip((v, v_th, i1, i2), before, strict=True)]
        reset = (v_reset, jnp.maximum(v_th_reset, cross[1]), r1 * cross[2] + a1, r2 * cross[3] + a2)
        post = advance(*reset, i_prev, lag * dt)
        # recorded at a spike sample: the step's pre-crossing value blended with the reset trajectory
        v_out = v + fired * lag * (post[0] - v)
        v, v_th, i1, i2 = (old + fired * (new - old) for old, new in zip((v, v_th, i1, i2), post, strict=True))
        after = (v, v_th, i1, i2)
        nxt = advance(v, v_th, i1, i2, i_ext, dt)
        return (*nxt, after, i_ext), (v_out, s, lag, x, after[0] - after[1])

    zeros = jnp.zeros((n,), dtype)
    v0, th0 = zeros + v_init, zeros + v_th_init
    init = (v0, th0, zeros, zeros, (v0, th0, zeros, zeros), zeros)
    forced_seq = jnp.zeros_like(current) if forced is None else forced
    _, (v, s, lag, x, x_after) = jax.lax.scan(scan_step(step, current.shape), init, (current, forced_seq))
    x_before = jnp.concatenate([x_after[:1], x_after[:-1]], axis=0)  # x just after the previous sample
    return v, s, lag, x, x_before


def simulate(theta, constants, current, dt):
    """GIF on ``current`` [T, B] (nA) with step ``dt`` (ms): (V [T, B] mV, spikes [T, B], lag [T, B]).

    A spike found at sample t (V >= V_th) crossed threshold ``lag`` steps earlier; the reset happens at
    that time (see :func:`_run`). The V recorded at a spike sample blends the step's pre-crossing value
    with the reset trajectory (``lag`` of the way), as sampling a continuous trajectory would. So V and
    everything after a spike depend continuously on spike times, and gradients reach a, b, k1, k2
    through the timing, exactly within a fixed spike pattern. The reset uses the spike's forward value
    only; the surrogate gradient flows through the ``spikes`` output.
    """
    v, s, lag, _, _ = _run(theta, constants, current, dt)
    return v, s, lag


def simulate_forced(theta, constants, current, dt, forced, forcing=1.0):
    """GIF with spikes imposed at ``forced`` [T, B] (0/1): (V, x, x_before) [T, B], where x = V - V_th at each
    sample before any reset and x_before the same just after the previous sample's reset. ``forcing`` 0 (a
    traced value) runs the model free instead, in the same compiled program.

    With the data's spike times imposed, V between spikes no longer depends on when the model would
    have fired: a smooth function of k1, k2 (and of a, b through the threshold x), the classic way to fit
    threshold models (Mensi et al. 2012; Pozzorini et al. 2015). See :func:`diffbrain.losses.threshold_penalty`.
    """
    v, _, _, x, x_before = _run(theta, constants, current, dt, forced, forcing)
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
