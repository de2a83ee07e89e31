"""The Vogels-Abbott COBA benchmark network (Brette et al. 2007, benchmark 1), as Brian2's COBA example.

LIF neurons, 80 % excitatory: ``tau_m dV/dt = (E_L - V) + g_e (E_e - V) + g_i (E_i - V) + I`` (conductances
in units of the leak conductance, I a constant 20 mV drive), ``V > V_th`` spikes, ``V = V_reset`` and 5 ms
refractory (V held, conductances still decay and receive input); exponential conductances with
increments 0.6 (excitatory, 6 nS / 10 nS) and 6.7 (inhibitory, 67 nS / 10 nS) per presynaptic spike,
no delay. Random connectivity with 80 synapses per neuron on average (p = 80 / N; 0.02 at N = 4000),
initial V uniform between reset and threshold, dt 0.1 ms, forward Euler, and each step in Brian2's order:
integrate, threshold, deliver spikes, reset. The network self-sustains near 20 Hz.

Units are fixed (mV, ms, dimensionless conductances) and documented on every field: the step is plain
float32 JAX for speed. Spikes travel through :func:`diffbrain.network.events.propagate` (event-driven).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from diffbrain.network import connectivity as conn
from diffbrain.network.memory import MemoryEstimate, compiled_bytes, estimate
from diffbrain.params import ParamError


@dataclass(frozen=True)
class CobaConfig:
    """Published parameters of the benchmark; ``n`` and ``syn_per_neuron`` scale it."""

    n: int = 4000
    syn_per_neuron: float = 80.0  # expected synapses per neuron (p = syn_per_neuron / n for rand)
    conn_method: str = "rand"  # rand, fixed_in or fixed_out (conn_num = syn_per_neuron)
    self_synapses: bool = False
    exc_fraction: float = 0.8
    tau_m: float = 20.0  # ms
    v_th: float = -50.0  # mV
    v_reset: float = -60.0  # mV
    e_leak: float = -60.0  # mV
    drive: float = 20.0  # mV, constant input I
    t_ref: float = 5.0  # ms
    tau_e: float = 5.0  # ms
    tau_i: float = 10.0  # ms
    e_exc: float = 0.0  # mV
    e_inh: float = -80.0  # mV
    w_exc: float = 0.6  # excitatory increment, units of the leak conductance
    w_inh: float = 6.7  # inhibitory increment, units of the leak conductance
    dt: float = 0.1  # ms

    @property
    def n_exc(self) -> int:
        return int(round(self.n * self.exc_fraction))

    @property
    def conn_prob(self) -> float:
        return self.syn_per_neuron / (self.n if self.self_synapses else self.n - 1)

    def network_config(self):
        """The connectivity part as a :class:`NetworkConfig` (drawn by the same generators)."""
        from diffbrain.network.config import NetworkConfig

        return NetworkConfig(n_rec=max(self.n, 5), conn_method=self.conn_method, conn_prob=min(1.0, self.conn_prob),
                             conn_num=max(1, int(round(self.syn_per_neuron))), self_synapses=self.self_synapses)

    def check(self) -> CobaConfig:
        if self.n < 10:
            raise ParamError("n", f"{self.n} neurons are too few for the benchmark", "give n >= 10")
        if self.conn_method not in ("rand", "fixed_in", "fixed_out"):
            raise ParamError("conn_method", f"{self.conn_method!r} is not a COBA connectivity",
                             "use rand, fixed_in or fixed_out")
        most = self.n if self.self_synapses else self.n - 1
        if not 0.0 < self.syn_per_neuron <= most:
            raise ParamError("syn_per_neuron", f"{self.syn_per_neuron} synapses per neuron do not fit n={self.n}",
                             f"give a value in (0, {most}]")
        if self.dt <= 0 or self.dt > self.t_ref:
            raise ParamError("dt", f"{self.dt} ms is not a usable time step", f"give 0 < dt <= {self.t_ref} ms")
        self.network_config().check()
        return self


def memory_estimate(cfg: CobaConfig, record_bytes: int = 0) -> MemoryEstimate:
    """Bytes of the COBA network before it is built (expected synapse count)."""
    nnz = cfg.n * cfg.syn_per_neuron
    return estimate(cfg.n, nnz, states_per_neuron=4, method="simulation", record_bytes=record_bytes)


@dataclass
class CobaNetwork:
    """A built network: the structure's two row blocks, per-synapse increments, initial membrane."""

    cfg: CobaConfig
    exc: conn.Structure
    inh: conn.Structure
    v0: np.ndarray  # mV
    build_seconds: float

    @property
    def n_synapses(self) -> int:
        return self.exc.nnz + self.inh.nnz

    @property
    def is_excitatory(self) -> np.ndarray:
        return np.arange(self.cfg.n) < self.cfg.n_exc


def build(cfg: CobaConfig, seed: int) -> CobaNetwork:
    """Draw the structure (O(synapses)) and the initial membrane potentials from ``seed``."""
    start = time.perf_counter()
    rng = np.random.default_rng(seed)
    full = conn.recurrent_structure(cfg.network_config(), rng)
    if full.nnz == 0:
        raise ParamError("syn_per_neuron", f"the network drew no synapse at n={cfg.n}", "raise syn_per_neuron")
    v0 = (cfg.v_reset + rng.random(cfg.n) * (cfg.v_th - cfg.v_reset)).astype(np.float32)
    return CobaNetwork(cfg, full.rows(0, cfg.n_exc), full.rows(cfg.n_exc, cfg.n), v0, time.perf_counter() - start)


def coba_step(cfg: CobaConfig, deliver, gather=None):
    """One time step of the benchmark on a block of neurons, in Brian2's order: ``step(state, t, synapses) ->
    (state, the block's packed spikes)`` with ``state = (V, g_e, g_i, last spike step)`` of the block's neurons.

    ``deliver(spikes, synapses, g_e, g_i) -> (g_e, g_i)`` adds the spikes of every presynaptic neuron onto the
    block's (decayed) conductances; ``gather`` turns the block's spikes into every neuron's (the neuron layout's
    all-gather; None: the block is the whole network). One definition for one device and for the neuron
    layout (:mod:`diffbrain.network.simulate_parallel`), so both do the same arithmetic per neuron.
    """
    import jax.numpy as jnp

    f32 = jnp.float32
    dt, ref_steps = cfg.dt, int(round(cfg.t_ref / cfg.dt))
    decay_e, decay_i = f32(1.0 - dt / cfg.tau_e), f32(1.0 - dt / cfg.tau_i)

    def step(state, t, synapses):
        v, ge, gi, last = state
        active = (t - last) >= ref_steps
        dv = (ge * (cfg.e_exc - v) + gi * (cfg.e_inh - v) + (cfg.e_leak - v) + cfg.drive) / cfg.tau_m
        v = jnp.where(active, v + dt * dv, v)
        ge, gi = ge * decay_e, gi * decay_i
        spikes = active & (v > cfg.v_th)
        every = spikes if gather is None else gather(spikes)
        ge, gi = deliver(every, synapses, ge, gi)
        v = jnp.where(spikes, f32(cfg.v_reset), v)
        last = jnp.where(spikes, t, last)
        return (v, ge, gi, last), jnp.packbits(spikes)

    return step


class CobaProgram:
    """The compiled chunk program: ``program(t0)`` advances ``chunk`` steps and returns packed spikes.

    The state (V, g_e, g_i, last spike step) stays on the device between calls (donated buffers).
    """

    def __init__(self, net: CobaNetwork, chunk: int, native: bool | None = None):
        import jax
        import jax.numpy as jnp

        from diffbrain.network.events import deliver_split, native_available, propagate

        cfg = net.cfg
        self.native = native_available() if native is None else native
        self.chunk = chunk
        n, f32 = cfg.n, jnp.float32
        # the weights are arguments, not constants: XLA turns a uniform weight constant into a broadcast
        # rebuilt at every step (measured: 10x slower at N = 4000)
        self.synapses = (jnp.asarray(np.full(net.exc.nnz, cfg.w_exc, dtype=np.float32)),
                         jnp.asarray(np.full(net.inh.nnz, cfg.w_inh, dtype=np.float32)))
        n_exc = cfg.n_exc
        if self.native:  # both blocks as one structure: one in-place call per step delivers E and I spikes
            # (measured: ~1.5x less CPU per step at N = 4000 than a product per block added to g_e, g_i)
            all_ptr = jnp.asarray(np.concatenate([net.exc.indptr, net.inh.indptr[1:] + net.exc.nnz]), dtype=jnp.int32)
            all_idx = jnp.asarray(np.concatenate([net.exc.indices, net.inh.indices]), dtype=jnp.int32)
            self.synapses = jnp.concatenate(self.synapses)

            def deliver(spikes, synapses, ge, gi):
                return deliver_split(spikes, all_ptr, all_idx, synapses, n_exc, ge, gi)
        else:
            (e_ptr, e_idx), (i_ptr, i_idx) = ((jnp.asarray(s.indptr, dtype=jnp.int32), jnp.asarray(s.indices))
                                              for s in (net.exc, net.inh))

            def deliver(spikes, synapses, ge, gi):
                return (ge + propagate(spikes[:n_exc], e_ptr, e_idx, synapses[0], n, False),
                        gi + propagate(spikes[n_exc:], i_ptr, i_idx, synapses[1], n, False))
        step = coba_step(cfg, deliver)

        def run(state, synapses, t0):
            return jax.lax.scan(lambda s, t: step(s, t, synapses), state, t0 + jnp.arange(chunk, dtype=jnp.int32))

        never = jnp.full(n, -(10**6), dtype=jnp.int32)
        self.state = (jnp.asarray(net.v0), jnp.zeros(n, dtype=f32), jnp.zeros(n, dtype=f32), never)
        self.state_bytes = 4 * n * 4
        start = time.perf_counter()
        lowered = jax.jit(run, donate_argnums=0).lower(self.state, self.synapses, jnp.asarray(0, dtype=jnp.int32))
        self.executable = lowered.compile()
        self.compile_seconds = time.perf_counter() - start
        self.temp_bytes, self.argument_bytes, self.output_bytes = compiled_bytes(self.executable)

    def __call__(self, t0):
        self.state, packed = self.executable(self.state, self.synapses, t0)
        return packed


def simulate(cfg: CobaConfig, seed: int, duration_ms: float, max_chunk: int = 1000, native: bool | None = None,
             progress=None):
    """Build, compile and run the benchmark for ``duration_ms``; a :class:`SimulationRecord`."""
    from diffbrain.network.simulate import SimulationRecord, chunking, run_chunks

    n_steps = max(1, int(round(duration_ms / cfg.dt)))
    net = build(cfg, seed)
    _, chunk = chunking(n_steps, max_chunk)
    program = CobaProgram(net, chunk, native)
    steps, neurons, seconds = run_chunks(program, None, n_steps, chunk, cfg.n, progress)
    structure_bytes = net.exc.nbytes + net.inh.nbytes
    return SimulationRecord(
        spike_step=steps, spike_neuron=neurons, is_excitatory=net.is_excitatory, n_steps=n_steps, dt=cfg.dt,
        n_synapses=net.n_synapses, build_seconds=net.build_seconds, compile_seconds=program.compile_seconds,
        run_seconds=seconds, memory=memory_estimate(cfg), structure_bytes=structure_bytes,
        state_bytes=program.state_bytes, temp_bytes=program.temp_bytes, argument_bytes=program.argument_bytes,
        output_bytes=program.output_bytes, event_kernel="native" if program.native else "brainevent",
    )
