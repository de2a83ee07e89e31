"""The conductance-based excitatory/inhibitory recurrent spiking network of the brainscale paper.

GIF neurons with an adaptation current (time constants drawn around ``tau_a``), a 4:1 E:I split of
``n_rec``, exponential conductance synapses with conductance-based (COBA) output, a feed-forward input
projection and a leaky rate readout, as in the paper's ``examples/002-coba-ei-rsnn.py``. One deliberate
difference: the paper reads out standardised membrane potentials through a leaky readout unit; here
each neuron's membrane is low-pass filtered with ``tau_out`` (a state of the neuron) and the filtered
potentials are standardised and read out linearly. The readout keeps its memory, and D-RTRL, which
drops dependencies between state groups, keeps the gradient through it (with the paper's readout,
D-RTRL lost ~90% of the hidden-weight gradient norm at ``tau_out`` = 10 ms).

Dale's law: weights are stored as magnitudes ``w`` and act as conductances ``|w| >= 0``; excitatory
presynaptic neurons (and the input) open excitatory channels (reversal ``e_exc``), inhibitory ones
inhibitory channels (``e_inh``). Three projections: the input (dense ``[n_in, n_rec]``, dense by
nature), the excitatory and the inhibitory neurons (each a CSR structure of its rows, or dense);
the input and the excitatory projection both drive the excitatory conductance.

Every trainable product goes through a braintrace ETP operator (``braintrace.matmul`` /
``braintrace.sparse_matmul`` with ``weight_fn=abs``), so the same module trains by BPTT and online
(braintrace's ES-D-RTRL; D-RTRL differentiates :meth:`EINetwork.advance`, the per-neuron step, in
:mod:`diffbrain.network.drtrl`). Sparse recurrent projections hold their weights on the non-zeros only: BPTT
runs them event-driven (:func:`diffbrain.network.events.differentiable_propagate`: native CPU kernels with
their own gradient, else brainevent's ``BinaryArray @ CSR``); ES-D-RTRL applies the CSR through
``braintrace.sparse_matmul`` (float spikes); D-RTRL keeps its traces on the non-zeros; simulation without
gradients (``method="simulation"``) uses the forward-only event kernel of :mod:`diffbrain.network.events`.
``sparse_impl="auto"`` picks the event-driven or the masked dense operator from the measured crossover
(:mod:`diffbrain.network.crossover`). States carry brainunit units (mV, mA, S with a 1-ohm membrane
resistance as in the paper).
"""

from __future__ import annotations

import brainevent
import brainstate
import braintools
import braintrace
import brainunit as u
import jax
import jax.numpy as jnp
import numpy as np

from diffbrain.network.config import NetworkConfig
from diffbrain.network.connectivity import InitialWeights, Structure, initial_weights, recurrent_structures
from diffbrain.network.crossover import choose_impl
from diffbrain.network.events import differentiable_propagate, propagate

PROJECTION_IMPLS = ("dense", "event", "masked_dense")


def magnitude(w):
    """Dale's-law transform of a stored weight: the conductance ``|w|`` (module-level: a stable jaxpr param)."""
    return u.math.abs(w)


class DaleProjection(brainstate.nn.Module):
    """Presynaptic activity ``[..., n_pre]`` -> conductance increment ``[..., n_post]`` = ``x @ |W|`` (siemens).

    ``weight`` is a ParamState: the dense ``[n_pre, n_post]`` magnitudes or, for a sparse structure,
    the CSR non-zero vector (row-major). ``impl``: ``dense``; ``event`` (brainevent CSR, event-driven
    unless ``online``); ``masked_dense`` (the sparse pattern applied as a dense masked matrix: N^2 memory,
    for small networks where dense arithmetic wins). ``forward_only`` (simulation, no gradients) runs the
    event path through the native forward kernel.
    """

    def __init__(self, structure: Structure, init: np.ndarray, impl: str = "dense", online: bool = False,
                 forward_only: bool = False):
        super().__init__()
        if impl not in PROJECTION_IMPLS:
            raise ValueError(f"impl must be one of {PROJECTION_IMPLS}, not {impl!r}")
        self.structure = structure
        self.online = online
        self.forward_only = forward_only and not online
        self.impl = "dense" if not structure.sparse else impl
        if self.impl == "masked_dense":
            init = structure.to_dense(init)
            mask = jnp.asarray(structure.mask(), dtype=jnp.float32)
            self._weight_fn = lambda w: u.math.abs(w) * mask
        else:
            self._weight_fn = magnitude
            if self.impl == "dense":
                init = np.asarray(init).reshape(structure.shape)
        if self.impl == "event":
            self.indptr = jnp.asarray(structure.indptr, dtype=jnp.int32)
            self.indices = jnp.asarray(structure.indices, dtype=jnp.int32)
            ones = jnp.ones(structure.nnz, dtype=jnp.float32)
            self.csr = brainevent.CSR((ones, self.indices, self.indptr), shape=structure.shape)
        self.weight = brainstate.ParamState(jnp.asarray(init, dtype=jnp.float32))

    def update(self, x):
        w = self.weight.value
        if self.impl != "event":
            g = braintrace.matmul(x, w, weight_fn=self._weight_fn)
        elif self.online:
            g = self.online_sparse(x, w)
        elif self.forward_only:
            g = propagate(x, self.indptr, self.indices, magnitude(w), self.structure.n_post)
        else:
            g = differentiable_propagate(x, self.indptr, self.indices, magnitude(w), self.structure.n_post)
        return g * u.siemens

    def online_sparse(self, x, w):
        """The online (braintrace) product on the sparse structure: float spikes through the CSR."""
        return braintrace.sparse_matmul(x, w, sparse_mat=self.csr, weight_fn=magnitude)

    def effective_values(self) -> np.ndarray:
        """The effective conductances ``|w|`` (S) of the synapses, in CSR order (dense: row-major)."""
        w = np.abs(np.asarray(self.weight.value))
        return self.structure.dense_values(w) if self.impl == "masked_dense" else w.reshape(-1)

    def effective_dense(self) -> np.ndarray:
        """The effective conductance matrix ``[n_pre, n_post]`` (S, zeros off the pattern; small networks)."""
        return self.structure.to_dense(self.effective_values())


class GapJunctions:
    """Symmetric electrical coupling: neuron i receives ``sum_j g_ij (V_j - V_i)`` (mA with the 1-ohm membrane).

    Returned as a leak conductance ``sum_j g_ij`` (S, constant) and a current ``sum_j g_ij V_j`` (mA), so the
    membrane's exact step takes them like its other conductances. The conductances are fixed (not trained).
    Online learning treats the neighbours' potentials as an input (no gradient through them, as for the
    recurrent spikes); BPTT differentiates through them.
    """

    def __init__(self, structure: Structure, conductance: np.ndarray, online: bool):
        pre, post = structure.pre_post()
        self.pre, self.post = jnp.asarray(pre), jnp.asarray(post)
        self.g = jnp.asarray(conductance, dtype=jnp.float32)
        self.n = structure.n_post
        self.total = jnp.asarray(np.bincount(post, weights=conductance, minlength=self.n), dtype=jnp.float32)
        self.online = online

    def __call__(self, v):
        vm = u.get_magnitude(v / u.mV)
        if self.online:
            vm = jax.lax.stop_gradient(vm)
        flows = jnp.moveaxis(jnp.take(vm, self.pre, axis=-1) * self.g, -1, 0)  # [nnz, ...]
        current = jnp.moveaxis(jax.ops.segment_sum(flows, self.post, num_segments=self.n), 0, -1)
        return self.total * u.siemens, current * u.mA


class EINetwork(brainstate.nn.Module):
    """The E/I network; ``update(x)`` advances one time step and returns the readout ``[..., n_out]``.

    Neuron order: the first ``n_exc`` neurons are excitatory, the rest inhibitory. Hidden states (one
    group per neuron): membrane ``V`` (mV), adaptation current ``I_a`` (mA), excitatory and inhibitory
    conductances ``g_exc``/``g_inh`` (S), and the readout trace (mV, the membrane low-passed by ``tau_out``).
    """

    def __init__(self, cfg: NetworkConfig, n_in: int, n_out: int, seed: int = 0, online: bool = False,
                 weights: InitialWeights | None = None, method: str | None = None):
        """``method`` (bptt, diag, expsm_diag or simulation) selects the sparse operator when
        ``cfg.sparse_impl`` is ``auto``; default: bptt, or expsm_diag when ``online``."""
        super().__init__()
        rng = np.random.default_rng(seed)
        self.wiring = None  # a connectome's wiring (conn_method = "connectome"), else None
        if cfg.conn_method == "connectome":
            from diffbrain.network.connectome import build_wiring, connectome_weights

            self.wiring = build_wiring(cfg)
            cfg = self.wiring.resolve(cfg)  # the connectome's size and E/I split
            exc, inh = self.wiring.exc, self.wiring.inh
            ff_structure = self.wiring.input_structure(n_in)  # the task input onto the input neurons only
            init = weights or connectome_weights(cfg, self.wiring, n_in, n_out, rng)
        else:
            exc, inh = recurrent_structures(cfg, rng)
            ff_structure = Structure.dense(n_in, cfg.n_rec)
            init = weights or initial_weights(cfg, n_in, n_out, exc, inh, rng)
        self.cfg = cfg
        self.n_in, self.n_out, self.n_rec = n_in, n_out, cfg.n_rec
        self.n_exc, self.n_inh = cfg.n_exc, cfg.n_inh
        self.online = online
        self.method = method or ("expsm_diag" if online else "bptt")
        self.initial = init
        impl = cfg.sparse_impl
        if impl == "auto":
            impl = choose_impl(self.method, cfg.n_rec, (exc.nnz + inh.nnz) / cfg.n_rec**2)
        self.sparse_impl = impl
        forward_only = self.method == "simulation"
        # the input and the excitatory neurons both open the excitatory channel
        self.ff = DaleProjection(ff_structure, init.ff, impl if ff_structure.sparse else "dense", online, forward_only)
        self.exc = DaleProjection(exc, init.exc, impl, online, forward_only)
        self.inh = DaleProjection(inh, init.inh, impl, online, forward_only)
        self.readout = brainstate.ParamState(jnp.asarray(init.readout, dtype=jnp.float32))
        # the neurons the readout sees (None: all) and the gap junctions (None: no electrical coupling)
        self.readout_neurons = None if self.wiring is None else jnp.asarray(self.wiring.outputs)
        self.gap = None
        if self.wiring is not None and self.wiring.gap is not None and cfg.gap_scale > 0:
            self.gap = GapJunctions(self.wiring.gap, self.wiring.gap_counts * cfg.gap_scale, online)
        self.spike_fn = braintools.surrogate.ReluGrad()
        self.decay_syn = float(np.exp(-cfg.dt / cfg.tau_syn))
        self.decay_out = float(np.exp(-cfg.dt / cfg.tau_out))
        self.decay_adapt = jnp.asarray(np.exp(-cfg.dt / init.tau_adapt), dtype=jnp.float32)
        self.dt = cfg.dt * u.ms
        self.tau = cfg.tau_neu * u.ms
        self.v_th = cfg.v_th * u.mV
        self.e_exc = cfg.e_exc * u.mV
        self.e_inh = cfg.e_inh * u.mV
        self.beta = cfg.beta * u.mA
        self.resistance = 1.0 * u.ohm

    def held_neurons(self) -> int:
        """The neurons whose states this module holds: all of them (a neuron-parallel shard: its share)."""
        return self.n_rec

    def init_state(self, batch_size: int | None = None, **kwargs):
        n = self.held_neurons()
        shape = (n,) if batch_size is None else (batch_size, n)
        zeros = jnp.zeros(shape, dtype=jnp.float32)
        self.V = brainstate.HiddenState(zeros * u.mV)
        self.I_a = brainstate.HiddenState(zeros * u.mA)
        self.g_exc = brainstate.HiddenState(zeros * u.siemens)
        self.g_inh = brainstate.HiddenState(zeros * u.siemens)
        self.trace = brainstate.HiddenState(zeros * u.mV)

    def spikes(self, v=None):
        """Spikes (float 0/1, surrogate gradient) of membrane ``v`` (default: the current state)."""
        v = self.V.value if v is None else v
        return self.spike_fn(u.get_magnitude((v - self.v_th) / self.v_th))

    def conductance_increment(self, x, spikes):
        """The conductance each postsynaptic neuron receives: (excitatory, inhibitory), in S."""
        return self.ff(x) + self.exc(spikes[..., : self.n_exc]), self.inh(spikes[..., self.n_exc :])

    STATES = ("V", "I_a", "g_exc", "g_inh", "trace")  # one group per neuron, in this order

    def state_values(self) -> tuple:
        """The hidden states (V, I_a, g_exc, g_inh, trace) as brainunit quantities ``[..., n_rec]``."""
        return tuple(getattr(self, name).value for name in self.STATES)

    def set_state_values(self, values) -> None:
        for name, value in zip(self.STATES, values, strict=True):
            getattr(self, name).value = value

    def update(self, x):
        """One step in the paper's order: spikes of the last step and this step's input open conductances,
        the adaptation current decays, the membrane integrates both, the readout trace follows it.

        Every path carries the surrogate gradient, including a spike's soft reset and its adaptation
        increment. The adaptation current holds the evidence across the task's delay, and its effect on
        the membrane has the opposite sign to the input's direct one: BPTT and D-RTRL (exact within a
        neuron) follow it; ES-D-RTRL's rank-one trace (smoothed presynaptic input times smoothed
        postsynaptic sensitivity) loses the input/spike coincidence it depends on and points the
        hidden-weight gradients against BPTT's (smallest case: n_rec 5, one trial, no recurrence, cosine
        -0.26/-0.91/-0.99 for ff/exc/inh, D-RTRL 1.000; for every trace decay tried). Making the increment a
        constant aligns ES-D-RTRL (+0.45 to +0.96) but then no method learns the task (BPTT ends at 0.16
        test accuracy); making the reset a constant too (the paper's ``diff_spike=0``) lets BPTT's gradient
        explode (norm 8e14 at n_rec 40).

        Each new state is built from the previous step's states and this step's inputs by its *own*
        expression, even where a later state needs the same value (the membrane needs the new
        conductances): braintrace 0.2.8's D-RTRL double-counts a state that reads another state's newly
        assigned variable within a step (measured: norm ratio 1.12 instead of 1.00 on a two-state linear
        group), while recomputing the value keeps D-RTRL exact (XLA merges the duplicates).
        """
        spk = self.spikes()
        d_exc, d_inh = self.conductance_increment(x, spk)
        self.set_state_values(self.advance(self.state_values(), d_exc, d_inh))
        return self.logits(self.trace.value)

    def advance(self, states: tuple, d_exc, d_inh) -> tuple:
        """The new hidden states from the previous ones and this step's conductance increments (S): a pure,
        elementwise function of each neuron's own states (the projections' inputs are outside it), so
        its Jacobian with respect to ``states`` is D-RTRL's per-neuron block. Gap junctions couple neurons
        through the last step's potentials; online they are an input (no gradient through the neighbours,
        :class:`GapJunctions`), so only a neuron's own leak ``sum_j g_ij`` enters its block."""
        v_old, i_a_old, g_e_old, g_i_old, tr_old = states
        spk = self.spikes(v_old)

        def g_exc():
            return g_e_old * self.decay_syn + d_exc

        def g_inh():
            return g_i_old * self.decay_syn + d_inh

        def adaptation():  # spike-triggered increment, then decay
            return (i_a_old - self.beta * spk) * self.decay_adapt

        def membrane():
            # exact step of the linear ODE  tau dV/dt = -V + R (g_e (E_e - V) + g_i (E_i - V) + I_a)
            v = v_old - self.v_th * spk  # soft reset
            g_e, g_i = g_exc(), g_inh()
            rate = 1.0 / self.tau + self.resistance * g_e / self.tau + self.resistance * g_i / self.tau
            drive = self.resistance * (g_e * self.e_exc + g_i * self.e_inh + adaptation()) / self.tau
            if self.gap is not None:  # electrical coupling sum_j g_ij (V_j - V_i), neighbours at the last step
                g_gap, i_gap = self.gap(v_old)
                rate = rate + self.resistance * g_gap / self.tau
                drive = drive + self.resistance * i_gap / self.tau
            return v + (drive - rate * v) * (-u.math.expm1(-rate * self.dt)) / rate

        # leaky rate readout: each neuron's membrane is low-pass filtered (tau_out) inside the neuron's own
        # state group, so D-RTRL follows the readout's memory
        trace = tr_old * self.decay_out + (1.0 - self.decay_out) * (membrane() - self.v_th)
        return membrane(), adaptation(), g_exc(), g_inh(), trace

    def logits(self, trace, readout=None):
        """The readout ``[..., n_out]``: the filtered potentials of the readout neurons (all, or a connectome's
        outputs) standardised across them, read out linearly."""
        if self.readout_neurons is not None:
            trace = trace[..., self.readout_neurons]
        rec = jax.nn.standardize(u.get_magnitude(trace / u.mV), axis=-1)
        return braintrace.matmul(rec, self.readout.value if readout is None else readout)

    # -- introspection ----------------------------------------------------------------------------

    def weight_states(self) -> dict[str, brainstate.ParamState]:
        """The trainable ParamStates: ``ff`` (input), ``exc``, ``inh`` (recurrent), ``readout``."""
        return {"ff": self.ff.weight, "exc": self.exc.weight, "inh": self.inh.weight, "readout": self.readout}

    def weight_values(self) -> dict[str, jax.Array]:
        return {k: s.value for k, s in self.weight_states().items()}

    def set_weights(self, values: dict) -> None:
        for k, s in self.weight_states().items():
            s.value = jnp.asarray(values[k], dtype=s.value.dtype)

    def split_named(self, values: dict) -> dict[str, np.ndarray]:
        """Per-projection views ``ff`` (input), ``exc``, ``inh``, ``readout`` of weight-shaped arrays
        (weights or their gradients); sparse ones stay non-zero vectors."""
        return {k: np.asarray(values[k]) for k in ("ff", "exc", "inh", "readout")}

    def structure_bytes(self) -> int:
        """Host bytes of the recurrent structures (CSR indices and pointers; 0 for dense)."""
        return self.exc.structure.nbytes + self.inh.structure.nbytes

    def is_excitatory(self) -> np.ndarray:
        return np.arange(self.n_rec) < self.n_exc

    def presynaptic_reversal(self) -> np.ndarray:
        """Reversal potential (mV) of every recurrent presynaptic neuron's synapses."""
        return np.where(self.is_excitatory(), self.cfg.e_exc, self.cfg.e_inh).astype(np.float32)

    def effective_recurrent(self) -> tuple[np.ndarray, np.ndarray]:
        """Effective recurrent conductance weights (S) on the pattern, from excitatory and from inhibitory
        presynaptic neurons, in CSR order."""
        return self.exc.effective_values(), self.inh.effective_values()
