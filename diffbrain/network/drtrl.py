"""D-RTRL (``diag``) for the E/I network, with its eligibility traces rolled in closed form over chunks of steps.

D-RTRL keeps, for every weight ``w_ij`` (presynaptic ``i`` -> neuron ``j``) and every state ``a`` of neuron
``j``, the sensitivity ``eps_ija = d h_ja / d w_ij`` along neuron ``j``'s own dynamics only (the diagonal
approximation of RTRL: presynaptic activity is a constant):

    eps_t = D_t eps_{t-1} + Df_t x_t          gradient = sum over loss steps t of  dL_t/dh_t . eps_t

with ``D_t`` the neuron's ``S x S`` state Jacobian (``S`` = 5 states) and ``Df_t`` its states' sensitivity to
the conductance increment. These are the numbers braintrace's ``D_RTRL`` computes (the tests compare
them); braintrace 0.2.8 spends 100x BPTT's time on this network (the per-step trace update is an
``S x S`` contraction over ``[batch, pre, post, S]`` that XLA:CPU runs as ``batch*post`` tiny dots, and
the ``|w|`` of Dale's law or a sparse projection disables its closed-form kernels). Here:

- the recursion is linear in ``eps``, so over a chunk of ``C`` steps ``eps_end = M eps_start + sum_k x_k (x)
  P_k Df_k`` with ``P_k = D_{C-1} ... D_{k+1}`` and ``M = P_{-1}``: one mixing of the trace per chunk and
  one matrix product over the chunk's time axis, instead of an ``S x S`` mixing per step;
- within a chunk, the loss terms use the adjoint ``lam_k = dL_k/dh_k + D_{k+1}^T lam_{k+1}`` (neuron-local
  backpropagation over at most ``C`` steps), so the trace is never needed at every step;
- traces are ``[S, batch, pre, post]`` for dense projections and ``[S, batch, nnz]`` on the non-zeros of a
  sparse (CSR) one; no per-step trace is stored, so memory is independent of the trial length.

Per-neuron Jacobians come from one ``jax.linearize`` of :meth:`EINetwork.advance` (the same function
the network steps with), pushed forward along the ``S`` state directions and the two conductance inputs.
"""

from __future__ import annotations

from dataclasses import dataclass

import brainstate
import brainunit as u
import jax
import jax.numpy as jnp
import numpy as np

from diffbrain.network.task import step_loss

DEFAULT_CHUNK = 50
_UNITS = (u.mV, u.mA, u.siemens, u.siemens, u.mV)  # V, I_a, g_exc, g_inh, trace (EINetwork.STATES)
TRACE = 4  # index of the readout trace among the states: the only one the loss reads
PROJECTIONS = ("ff", "exc", "inh")  # the trained projections of EINetwork (the readout apart)
CONDUCTANCE = {"ff": 0, "exc": 0, "inh": 1}  # which conductance increment each one drives: excitatory, inhibitory


@dataclass(frozen=True)
class Projection:
    """A trained projection as D-RTRL sees it: dense ``[n_pre, n_post]`` or CSR non-zeros (``rows``, ``cols``)."""

    name: str
    module: object  # the DaleProjection
    n_pre: int
    rows: jax.Array | None  # int32 [nnz]: presynaptic index of each non-zero (CSR order)
    cols: jax.Array | None  # int32 [nnz]: postsynaptic index

    @staticmethod
    def of(name: str, module) -> Projection:
        s = module.structure
        if module.impl != "event":
            return Projection(name, module, s.shape[0], None, None)
        rows = np.repeat(np.arange(s.shape[0], dtype=np.int32), np.diff(np.asarray(s.indptr)))
        return Projection(name, module, s.shape[0], jnp.asarray(rows), jnp.asarray(s.indices, dtype=jnp.int32))

    @property
    def sparse(self) -> bool:
        return self.rows is not None

    def zeros_trace(self, n_states: int, batch: int, n_post: int) -> jax.Array:
        if self.sparse:
            return jnp.zeros((n_states, batch, self.rows.size), jnp.float32)
        return jnp.zeros((n_states, batch, self.n_pre, n_post), jnp.float32)

    def zeros_grad(self, n_post: int) -> jax.Array:
        return jnp.zeros((self.rows.size,) if self.sparse else (self.n_pre, n_post), jnp.float32)

    def mix(self, m: jax.Array, trace: jax.Array, pattern: np.ndarray) -> jax.Array:
        """``M eps``: each synapse's state vector times its postsynaptic neuron's block ``m [S, S, B, n]``."""
        return block_apply(m[..., self.cols] if self.sparse else m[:, :, :, None, :], trace, pattern)

    def outer_sum(self, x_seq: jax.Array, pdf: jax.Array) -> jax.Array:
        """``sum_k x_k (x) pdf_k`` over a chunk: ``x_seq [C, B, pre]``, ``pdf [S, C, B, n]`` -> trace-shaped."""
        if self.sparse:
            return jnp.sum(x_seq[None, :, :, self.rows] * pdf[..., self.cols], axis=1)  # a fused gather-reduce
        return jnp.einsum("kbi,akbn->abin", x_seq, pdf)

    def contract(self, mu: jax.Array, trace: jax.Array) -> jax.Array:
        """``sum_{b,a} mu_ab . eps_ab``: ``mu [S, B, n]`` with a trace -> gradient-shaped (effective weight)."""
        if self.sparse:
            return jnp.sum(mu[..., self.cols] * trace, axis=(0, 1))
        return jnp.sum(mu[:, :, None, :] * trace, axis=(0, 1))

    def outer_grad(self, x_seq: jax.Array, q: jax.Array) -> jax.Array:
        """``sum_{k,b} x_kb (x) q_kb``: ``x_seq [C, B, pre]``, ``q [C, B, n]`` -> gradient-shaped."""
        if self.sparse:
            return jnp.sum(x_seq[..., self.rows] * q[..., self.cols], axis=(0, 1))
        return jnp.einsum("kbi,kbn->in", x_seq, q)

    def to_stored(self, grad_effective: jax.Array) -> jax.Array:
        """The gradient of the stored weight (the projection applies ``|w|``, masked where it is masked dense)."""
        w = self.module.weight.value
        return jax.vjp(self.module._weight_fn, w)[1](grad_effective)[0]


# The S x S algebra below is written out state by state (S is small and static): XLA:CPU fuses the unrolled
# elementwise products into one loop, while a broadcast-and-reduce over a small middle axis ran 10x slower
# (measured at n_rec 200, batch 32: 51 ms vs 564 ms for one trace mixing). ``pattern`` arguments are the
# static non-zero patterns of the blocks (numpy bool): structurally zero terms are skipped.


def _sum(terms: list, like: jax.Array) -> jax.Array:
    return sum(terms[1:], terms[0]) if terms else jnp.zeros_like(like)


def block_matmul(a: jax.Array, b: jax.Array, pa: np.ndarray, pb: np.ndarray) -> jax.Array:
    """Per-neuron matrix products of ``[S, S, ...]`` blocks (elementwise over the trailing axes)."""
    n = len(pa)
    return jnp.stack([jnp.stack([_sum([a[i, m] * b[m, j] for m in range(n) if pa[i, m] and pb[m, j]], a[0, 0])
                                 for j in range(n)]) for i in range(n)])


def block_apply(a: jax.Array, v: jax.Array, pa: np.ndarray) -> jax.Array:
    """``A v`` per neuron: ``a [S, S, ...]``, ``v [S, ...]`` (broadcasting over the trailing axes)."""
    n = len(pa)
    return jnp.stack([_sum([a[i, m] * v[m] for m in range(n) if pa[i, m]], a[0, 0] * v[0]) for i in range(n)])


def block_apply_t(a: jax.Array, v: jax.Array, pa: np.ndarray) -> jax.Array:
    """``A^T v`` per neuron: ``a [S, S, ...]``, ``v [S, ...]``."""
    n = len(pa)
    return jnp.stack([_sum([a[m, i] * v[m] for m in range(n) if pa[m, i]], v[0]) for i in range(n)])


def closure(pattern: np.ndarray) -> np.ndarray:
    """The pattern of every product of matrices with ``pattern`` (identity included): reflexive-transitive."""
    out = pattern | np.eye(len(pattern), dtype=bool)
    while True:
        nxt = out | ((out.astype(int) @ out.astype(int)) > 0)
        if (nxt == out).all():
            return out
        out = nxt


def suffix_products(d_seq: jax.Array, pd: np.ndarray) -> tuple[jax.Array, jax.Array]:
    """``P_k = D_{C-1} ... D_{k+1}`` (``P_{C-1}`` = identity) for ``d_seq [C, S, S, ...]`` with pattern ``pd``,
    and ``M = D_{C-1} ... D_0``; both have the pattern ``closure(pd)``."""
    n = len(pd)
    pp = closure(pd)
    eye = jnp.eye(n, dtype=d_seq.dtype).reshape((n, n) + (1,) * (d_seq.ndim - 3))
    eye = jnp.broadcast_to(eye, d_seq.shape[1:])

    def back(p, d):
        return block_matmul(p, d, pp, pd), p

    m, p_seq = jax.lax.scan(back, eye, d_seq, reverse=True)
    return p_seq, m


def adjoints(d_seq: jax.Array, delta_seq: jax.Array, pd: np.ndarray) -> tuple[jax.Array, jax.Array]:
    """``lam_k = delta_k + D_{k+1}^T lam_{k+1}`` over a chunk, and ``mu = D_0^T lam_0`` (the chunk's loss
    sensitivity to the states before it)."""

    def back(carry, dd):
        d, delta = dd
        lam = delta + carry
        return block_apply_t(d, lam, pd), lam

    mu, lam_seq = jax.lax.scan(back, jnp.zeros_like(delta_seq[0]), (d_seq, delta_seq), reverse=True)
    return lam_seq, mu


def dependency_pattern(advance, n_states: int, n_inputs: int, shape: tuple) -> tuple[np.ndarray, np.ndarray]:
    """Which new state depends on which previous state (``[S, S]``) and on which input (``[n_inputs, S]``),
    structurally: a NaN tangent reaches every output that depends on it, whatever the derivative's value at
    the probe point (a surrogate derivative that is zero there still multiplies it), and a stop_gradient
    blocks it. Evaluated once, eagerly, at a random point."""
    rng = np.random.default_rng(0)
    states = tuple(jnp.asarray(rng.normal(size=shape), jnp.float32) for _ in range(n_states))
    inputs = tuple(jnp.asarray(np.abs(rng.normal(size=shape)), jnp.float32) for _ in range(n_inputs))
    zero, nan = jnp.zeros(shape, jnp.float32), jnp.full(shape, jnp.nan, jnp.float32)

    def reached(state_tangents, input_tangents):
        _, out = jax.jvp(advance, (states, *inputs), (state_tangents, *input_tangents))
        return np.array([bool(np.isnan(np.asarray(o)).any()) for o in out])

    pd = np.stack([reached(tuple(nan if s == c else zero for s in range(n_states)), (zero,) * n_inputs)
                   for c in range(n_states)], axis=1)
    pf = np.stack([reached((zero,) * n_states, tuple(nan if i == k else zero for i in range(n_inputs)))
                   for k in range(n_inputs)])
    return pd, pf


def reachable(start: np.ndarray, pd: np.ndarray) -> np.ndarray:
    """States reachable from ``start`` (bool ``[S]``) through ``pd`` (``pd[a, c]``: ``a`` depends on ``c``)."""
    out = start.copy()
    while True:
        nxt = out | (pd[:, out].any(axis=1))
        if (nxt == out).all():
            return out
        out = nxt


def chunk_length(n_steps: int, chunk: int) -> int:
    """A chunk length that divides ``n_steps`` if one lies in ``[chunk/2, chunk]`` (one compiled chunk body instead
    of two: the remainder needs its own), else ``chunk``."""
    top = min(chunk, n_steps)
    for c in range(top, max(1, top // 2) - 1, -1):
        if n_steps % c == 0:
            return c
    return chunk


class DRTRL:
    """D-RTRL gradients of the recall-period loss for one :class:`EINetwork` (call inside a brainstate jit).

    Only the states a projection's conductance can reach (through the per-neuron dependency pattern) carry
    its trace (``g_inh`` never depends on an excitatory weight), and structurally zero Jacobian entries are
    skipped.
    """

    def __init__(self, model, chunk: int = DEFAULT_CHUNK):
        self.model = model
        self.chunk = chunk
        self.projections = tuple(Projection.of(name, getattr(model, name)) for name in PROJECTIONS)
        n = len(model.STATES)
        with jax.ensure_compile_time_eval():  # concrete numbers, also while a jit traces this
            pd, pf = dependency_pattern(self._advance_plain, n, 2, (1, model.n_rec))
        reach = [reachable(pf[k], pd) for k in range(2)]  # from the excitatory, the inhibitory conductance
        self.active = np.flatnonzero(np.any(reach, axis=0))  # states that carry any trace
        self.pd = pd[np.ix_(self.active, self.active)]
        self.pp = closure(self.pd)
        # per projection: positions (in the active set) of the states its trace lives on
        self.own = [np.flatnonzero(reach[CONDUCTANCE[p.name]][self.active]) for p in self.projections]
        self.trace_index = int(np.flatnonzero(self.active == TRACE)[0])

    # -- one step ----------------------------------------------------------------------------------

    def _advance_plain(self, states, d_exc, d_inh):
        quantities = tuple(s * unit for s, unit in zip(states, _UNITS, strict=True))
        new = self.model.advance(quantities, d_exc * u.siemens, d_inh * u.siemens)
        return tuple(q.to_decimal(unit) for q, unit in zip(new, _UNITS, strict=True))

    def step(self, states, x):
        """Advance one step; returns the new states and ``(presynaptic inputs, D [A,A,B,n], Df per projection
        [A,B,n])`` over the active states ``A``."""
        model = self.model
        spk = jax.lax.stop_gradient(model.spikes(states[0] * u.mV))
        pre = (x, spk[:, : model.n_exc], spk[:, model.n_exc :])  # ff, exc, inh
        ff, exc, inh = (proj.module(p).to_decimal(u.siemens) for proj, p in zip(self.projections, pre, strict=True))
        d_exc, d_inh = ff + exc, inh
        new, jvp = jax.linearize(self._advance_plain, states, d_exc, d_inh)
        # tangent directions: the active states, then the excitatory and the inhibitory conductance increment
        a = len(self.active)
        select = np.zeros((a + 2, len(states) + 2), np.float32)
        select[np.arange(a), self.active] = 1.0
        select[a, -2] = select[a + 1, -1] = 1.0
        ones = jnp.ones_like(d_exc)[None]
        directions = [jnp.asarray(select[:, c])[:, None, None] * ones for c in range(len(states) + 2)]
        out = jax.vmap(jvp)(tuple(directions[:-2]), directions[-2], directions[-1])  # per state: [direction, B, n]
        out = jnp.stack([out[c] for c in self.active], axis=0)  # [A (output), direction, B, n]
        increments = (out[:, a], out[:, a + 1])  # sensitivity to the excitatory, the inhibitory increment
        return new, (pre, out[:, :a], tuple(increments[CONDUCTANCE[p.name]] for p in self.projections))

    # -- one chunk -----------------------------------------------------------------------------------

    def chunk_update(self, carry, steps, inputs, labels, with_loss: bool):
        """Advance states, traces and gradients over ``steps`` (a static-length index array)."""
        states, traces, grads, g_out = carry
        readout = self.model.readout.value

        def body(states, t):
            new, (pre, d, dfs) = self.step(states, inputs.at(t))
            extra = ()
            if with_loss:
                def loss_of(tr, w):
                    logits = self.model.logits(tr * u.mV, w)
                    return step_loss(logits, labels), logits

                loss, pull, logits = jax.vjp(loss_of, new[TRACE], readout, has_aux=True)
                d_trace, d_readout = pull(jnp.ones_like(loss))
                extra = (loss, logits, d_trace, d_readout)
            return new, (pre, d, dfs, extra)

        states, (pre_seq, d_seq, df_seq, extra) = jax.lax.scan(body, states, steps)
        p_seq, m = suffix_products(d_seq, self.pd)
        if with_loss:
            loss_seq, logits_seq, d_trace_seq, d_readout_seq = extra
            delta = jnp.zeros(d_seq.shape[:1] + d_seq.shape[2:], d_seq.dtype).at[:, self.trace_index].set(d_trace_seq)
            lam_seq, mu = adjoints(d_seq, delta, self.pd)
            g_out = g_out + jnp.sum(d_readout_seq, axis=0)
        new_traces, new_grads = [], []
        for proj, own, x_seq, dfs, trace, grad in zip(self.projections, self.own, pre_seq, df_seq, traces, grads,
                                                      strict=True):
            dfs = dfs[:, own]
            if with_loss:
                q = _sum([dfs[:, i] * lam_seq[:, a] for i, a in enumerate(own)], dfs[:, 0])  # [C, B, n]
                grad = grad + proj.contract(mu[own], trace) + proj.outer_grad(x_seq, q)
            pattern = self.pp[np.ix_(own, own)]
            # P_k Df_k for every step of the chunk: [S_p, C, B, n]
            pdf = block_apply(jnp.moveaxis(p_seq[:, own][:, :, own], 0, 2), jnp.moveaxis(dfs, 1, 0), pattern)
            new_traces.append(proj.mix(m[own][:, own], trace, pattern) + proj.outer_sum(x_seq, pdf))
            new_grads.append(grad)
        out = (loss_seq, logits_seq) if with_loss else None
        return (states, tuple(new_traces), tuple(new_grads), g_out), out

    def run_phase(self, carry, start: int, stop: int, inputs, labels, with_loss: bool):
        """Steps ``[start, stop)`` in chunks (a scan over full chunks, then the remainder)."""
        c = chunk_length(stop - start, self.chunk)
        n_full, rest = divmod(stop - start, c)
        outs = []
        if n_full:
            def one(carry, k):
                return self.chunk_update(carry, start + k * c + jnp.arange(c), inputs, labels, with_loss)

            carry, out = jax.lax.scan(one, carry, jnp.arange(n_full))
            if with_loss:
                outs.append(jax.tree.map(lambda a: a.reshape((n_full * c,) + a.shape[2:]), out))
        if rest:
            carry, out = self.chunk_update(carry, start + n_full * c + jnp.arange(rest), inputs, labels, with_loss)
            outs.append(out)
        if not with_loss:
            return carry, None
        return carry, jax.tree.map(lambda *a: jnp.concatenate(a, axis=0), *outs)

    def gradients(self, inputs, labels, recall_start: int):
        """``(grads, per-step losses [T_recall], recall outputs [T_recall, B, n_out])`` for the weight states."""
        model = self.model
        batch = labels.shape[0]
        brainstate.nn.init_all_states(model, batch_size=batch)
        states = tuple(q.to_decimal(unit) for q, unit in zip(model.state_values(), _UNITS, strict=True))
        n = model.n_rec
        traces = tuple(p.zeros_trace(len(own), batch, n) for p, own in zip(self.projections, self.own, strict=True))
        grads = tuple(p.zeros_grad(n) for p in self.projections)
        carry = (states, traces, grads, jnp.zeros_like(model.readout.value))
        carry, _ = self.run_phase(carry, 0, recall_start, inputs, labels, with_loss=False)
        carry, (losses, recall) = self.run_phase(carry, recall_start, inputs.n_steps, inputs, labels, with_loss=True)
        states, _, grads, g_out = carry
        model.set_state_values(tuple(s * unit for s, unit in zip(states, _UNITS, strict=True)))
        out = {p.name: p.to_stored(g) for p, g in zip(self.projections, grads, strict=True)}
        out["readout"] = g_out
        return out, losses, recall
