"""The neuron-parallel layout: the recurrent neurons split across devices by postsynaptic neuron.

Device ``d`` of ``D`` holds the neurons ``[d n/D, (d+1) n/D)``: their states and their incoming synapses as its
own column block of every projection (input ``[n_in, n/D]``, excitatory ``[n_exc, n/D]``, inhibitory
``[n_inh, n/D]``). Each step it all-gathers the spikes (``[B, n]`` booleans), computes its neurons' conductance
increments from its own blocks, advances its neurons with the one-device model's per-neuron step
(:meth:`EINetwork.advance`), and forms the readout: the standardisation's mean and variance are cross-device
sums, and the standardised potentials are all-gathered and read out by the (small, replicated) readout matrix.
Every device ends with the same readout, loss and recall outputs; the gradients of each block stay on their
device. Why not the partial products ``z_d @ R_d`` summed across devices (a ``[B, n_out]`` psum instead of a
``[B, n]`` gather): braintrace 0.2.8 computes no gradient for a weight whose path to the output crosses a
collective (it warns that the readout "bypasses every new hidden state, through ... an equation with effects"
and returns zero), measured both with ``psum`` and with an ``all_gather`` of the partial products.

Why this design (checked on jax 0.12 / brainstate 0.6 / braintrace 0.2.8): the per-shard program is the
one-device training code itself (:func:`diffbrain.network.gradients.gradients`: brainstate's autodiff through
time for ``bptt``, ``braintrace.compile`` of ES-D-RTRL for ``expsm_diag``) run on :class:`NeuronShardNetwork`
inside brainstate's ``shard_map``, so no gradient algorithm is re-implemented and ES-D-RTRL's traces are
computed per shard by braintrace: its presynaptic trace follows the gathered spikes, its postsynaptic trace
the shard's own neurons (both are local to a column block). The module's code is shape-agnostic because
brainstate's ``shard_map`` first traces it at *global* shapes to discover its states: the states are sized from
the local weight block, each neuron's adaptation decay is sliced by the device's axis index.

Sparse wiring: under BPTT each device holds its CSR block (:class:`CSRBlocks`: the synapses onto its neurons, padded
to the largest block's count with masked entries, built in ``O(synapses)``) and runs it event-driven with the
project's kernels (:func:`diffbrain.network.events.differentiable_propagate`; without them, brainevent's kernels
with a workspace sized on the host), the row pointers and indices being data split like the weights. Under
ES-D-RTRL, where the one-device model runs the sparse operator (``sparse_impl`` event, or auto where the measured
crossover picks it: large, sparse networks), each device holds its synapses as *slots* (:class:`SlotBlocks`: each of
its neurons' incoming synapses in ``k`` slots, ``k`` the projection's largest in-degree, the rest masked: ``n/D x
k`` weights and presynaptic indices) and computes ``y[b, j] = sum_k x[b, pre[j, k]] |w[j, k]|`` as a braintrace
``einsum`` (``'bjk,jk->bj'``) of the gathered presynaptic spikes. braintrace's own sparse ETP operator cannot be
used here: it takes its CSR structure as a static jaxpr parameter, so one SPMD program cannot hold a different
structure on every device, and an ETP rule receives only the trainable weights, never an index array. The einsum
needs no structure in its rules: ES-D-RTRL's presynaptic trace is the smoothed gathered input ``[B, n/D, k]`` (the
one-device trace ``[B, n_pre]`` gathered the same way: smoothing is linear), its postsynaptic trace the device's own
``[B, n/D]``, and the weight gradient ``sum_b trace_x[b, j, k] trace_f[b, j]``, the one-device sparse operator's
gradient, in ``O(B synapses / D)`` memory per device instead of dense ``n_pre x n/D`` columns. A padded slot starts
at weight 0 and its gradient is masked, so Adam, L1 and L2 leave it at 0. The slots' traces cost ``B k`` floats per
neuron against dense columns' ``n_pre`` weights (and their gradient and Adam moments), so where the one-device model
runs masked dense (moderate sizes: n_rec 800 at p 0.05, batch 64, the slots' step took 1.27x / 0.64x one device's
temp bytes on 2 / 4 devices, columns 0.51x / 0.26x) each device holds its dense columns with the pattern masked,
built block by block from the CSR structure (no ``n x n`` array).

Random numbers: the step draws none per neuron (the task's input spikes are the same on every device and are
drawn from the trial keys), so there is nothing to fold the axis index into.

``check_vma=False`` for the reason in :mod:`diffbrain.network.parallel`; with it, JAX transposes the readout's
gather to a reduce-scatter of a cotangent that is the same on every device (it cannot know that), which makes
the projections' gradients ``D`` times too large (the readout's, computed after the gather, are right); they
are divided by ``D`` (:func:`neuron_gradients`), which the tests check against one device.
"""

from __future__ import annotations

from collections.abc import Callable

import brainstate
import braintrace
import brainunit as u
import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from diffbrain.network.connectivity import Structure
from diffbrain.network.events import differentiable_propagate, task_capacity
from diffbrain.network.model import EINetwork, magnitude
from diffbrain.network.parallel import Layout, mesh_of

AXIS = "neurons"  # the mesh axis the neurons are split along
# where each trained array's neuron axis is: the projections' columns, the readout's rows
SPECS = {"ff": P(None, AXIS), "exc": P(None, AXIS), "inh": P(None, AXIS), "readout": P()}


def column_block(structure: Structure, values: np.ndarray, cols: slice) -> np.ndarray:
    """The ``[n_pre, cols]`` block of a projection's weights (zeros off a sparse pattern), from its stored values
    (dense ``[n_pre, n_post]`` or the CSR non-zeros) without building the whole matrix."""
    if not structure.sparse:
        return np.asarray(values).reshape(structure.shape)[:, cols]
    lo, hi = cols.start or 0, structure.n_post if cols.stop is None else cols.stop
    pre, post = structure.pre_post()
    inside = (post >= lo) & (post < hi)
    block = np.zeros((structure.n_pre, hi - lo), dtype=np.float32)
    block[pre[inside], post[inside] - lo] = np.asarray(values).reshape(-1)[inside]
    return block


def stored_values(model: EINetwork, name: str) -> np.ndarray:
    """A recurrent projection's weights as the CSR non-zeros (sparse) or the dense matrix, whatever the
    one-device model's operator stores."""
    proj = getattr(model, name)
    w = np.asarray(proj.weight.value)
    if proj.structure.sparse and proj.impl == "masked_dense":
        return proj.structure.dense_values(w)
    return w


@jax.custom_jvp
def gather_spikes(spikes: jax.Array) -> jax.Array:
    """Every device's 0/1 spikes ``[..., n/D]`` -> all neurons' ``[..., n]`` (float), sent as booleans (a quarter of
    float32's bytes); the derivative is the float gather of the tangents (its transpose a reduce-scatter), so the
    surrogate gradient reaches the presynaptic neurons on their own devices."""
    every = jax.lax.all_gather(spikes != 0, AXIS, axis=spikes.ndim - 1, tiled=True)
    return every.astype(spikes.dtype)


@gather_spikes.defjvp
def _gather_spikes_jvp(primals, tangents):
    (spikes,), (tangent,) = primals, tangents
    return gather_spikes(spikes), jax.lax.all_gather(tangent, AXIS, axis=tangent.ndim - 1, tiled=True)


class BlockProjection(brainstate.nn.Module):
    """A projection as one device holds it: its columns ``[n_pre, n/D]`` (a sharded global array), ``x @ |W|``."""

    def __init__(self, weight: jax.Array):
        super().__init__()
        self.weight = brainstate.ParamState(weight)

    def update(self, x):
        return braintrace.matmul(x, self.weight.value, weight_fn=magnitude) * u.siemens


class CSRBlocks:
    """A sparse projection split by postsynaptic neuron into one CSR block per device: device ``d`` keeps the
    synapses onto its neurons (rows: every presynaptic neuron; columns: its own neurons), padded at the end of the
    last row to the largest block's count with zero-weight entries that the gradient mask keeps at zero. Built in
    ``O(synapses)``; global arrays ``[D * nnz_max]`` (``[D * (n_pre + 1)]`` for the row pointers) split over
    the mesh."""

    def __init__(self, structure: Structure, n_devices: int, mesh):
        self.structure, self.sharding = structure, NamedSharding(mesh, P(AXIS))
        local = structure.n_post // n_devices
        pre, post = structure.pre_post()
        owner = post // local
        self.positions = [np.flatnonzero(owner == d) for d in range(n_devices)]  # CSR order kept (row-major)
        self.nnz_max = max(1, max(p.size for p in self.positions))
        indptr, indices, mask = [], [], []
        for pos in self.positions:
            counts = np.bincount(pre[pos], minlength=structure.n_pre)
            counts[-1] += self.nnz_max - pos.size  # the padding: zero-weight entries in the last row
            indptr.append(np.concatenate([[0], np.cumsum(counts)]).astype(np.int32))
            indices.append(np.pad((post[pos] % local).astype(np.int32), (0, self.nnz_max - pos.size)))
            mask.append(np.pad(np.ones(pos.size, np.float32), (0, self.nnz_max - pos.size)))
        self.capacity = task_capacity(indptr)  # brainevent's workspace for the largest block (no native kernel)
        put = lambda a: jax.device_put(np.concatenate(a), self.sharding)  # noqa: E731
        self.indptr, self.indices, self.mask = put(indptr), put(indices), put(mask)

    @property
    def device_bytes(self) -> int:
        """Bytes of one device's block: its weights and indices, and every presynaptic row's pointer."""
        return self.nnz_max * 8 + (self.structure.n_pre + 1) * 4

    def split(self, values: np.ndarray) -> jax.Array:
        """The CSR non-zeros ``[nnz]`` as the padded blocks."""
        values = np.asarray(values, dtype=np.float32).reshape(-1)
        return jax.device_put(np.concatenate([np.pad(values[p], (0, self.nnz_max - p.size)) for p in self.positions]),
                              self.sharding)

    def join(self, blocks) -> np.ndarray:
        """The padded blocks back as the CSR non-zeros ``[nnz]`` (host)."""
        blocks = np.asarray(blocks).reshape(len(self.positions), self.nnz_max)
        out = np.empty(self.structure.nnz, dtype=blocks.dtype)
        for d, p in enumerate(self.positions):
            out[p] = blocks[d, : p.size]
        return out


class CSRBlockProjection(brainstate.nn.Module):
    """A sparse projection as one device holds it under BPTT: its CSR block, event-driven (the project's native
    kernels, or brainevent's operator, on the block: :func:`differentiable_propagate`)."""

    def __init__(self, blocks: CSRBlocks, weight: jax.Array, n_post_of: Callable):
        super().__init__()
        self.weight = brainstate.ParamState(weight)
        self.indptr = brainstate.State(blocks.indptr)  # data, split like the weights (not trained)
        self.indices = brainstate.State(blocks.indices)
        self.n_post_of = n_post_of  # this device's neuron count (at brainstate's discovery trace: all of them)
        self.capacity = blocks.capacity

    def data_states(self) -> dict:
        return {self.indptr: P(AXIS), self.indices: P(AXIS)}

    def update(self, x):
        # brainstate's discovery trace sees every device's row pointers (global shapes, values unused): one
        # block's worth keeps brainevent's shape checks satisfied there; inside shard_map this slices nothing
        indptr = self.indptr.value[: x.shape[-1] + 1]
        g = differentiable_propagate(x, indptr, self.indices.value, magnitude(self.weight.value), self.n_post_of(),
                                     self.capacity)
        return g * u.siemens


class SlotBlocks:
    """A sparse projection as every postsynaptic neuron's incoming synapses in ``k`` slots (``k`` the largest
    in-degree; the slots past a neuron's in-degree hold presynaptic index 0, weight 0 and mask 0): global arrays
    ``[n_post, k]`` split by rows (postsynaptic neurons) over the mesh. Built in ``O(n_post k)`` from the CSR
    structure (row-major, so each neuron's slots keep presynaptic order)."""

    spec = P(AXIS, None)

    def __init__(self, structure: Structure, mesh):
        pre, post = structure.pre_post()
        counts = np.bincount(post, minlength=structure.n_post)
        self.structure, self.k = structure, max(1, int(counts.max(initial=0)))
        order = np.argsort(post, kind="stable")
        first = np.concatenate([[0], np.cumsum(counts)[:-1]])
        slot = np.empty(post.size, dtype=np.int64)
        slot[order] = np.arange(post.size) - first[post[order]]
        self.flat = post * self.k + slot  # where each CSR non-zero sits in the [n_post, k] slots
        self.sharding = NamedSharding(mesh, self.spec)
        self.pre = self._put(self._fill(pre, np.int32))
        self.mask = self._put(self._fill(np.ones(post.size, np.float32), np.float32))

    def _fill(self, values: np.ndarray, dtype) -> np.ndarray:
        out = np.zeros(self.structure.n_post * self.k, dtype=dtype)
        out[self.flat] = values
        return out

    def _put(self, flat: np.ndarray) -> jax.Array:
        return jax.device_put(flat.reshape(self.structure.n_post, self.k), self.sharding)

    def split(self, values: np.ndarray) -> jax.Array:
        """The CSR non-zeros ``[nnz]`` as the slots."""
        return self._put(self._fill(np.asarray(values, dtype=np.float32).reshape(-1), np.float32))

    def join(self, blocks) -> np.ndarray:
        """The slots back as the CSR non-zeros ``[nnz]`` (host)."""
        return np.asarray(blocks).reshape(-1)[self.flat]


class SlotProjection(brainstate.nn.Module):
    """A sparse projection as one device holds it under ES-D-RTRL: its neurons' slots, ``y[b, j] = sum_k
    x[b, pre[j, k]] |w[j, k]|`` through braintrace's ``einsum`` (an ETP operator whose rules need no structure)."""

    def __init__(self, blocks: SlotBlocks, weight: jax.Array):
        super().__init__()
        self.weight = brainstate.ParamState(weight)
        self.pre = brainstate.State(blocks.pre)  # data, split like the weights (not trained)

    def data_states(self) -> dict:
        return {self.pre: SlotBlocks.spec}

    def update(self, x):
        inputs = x[..., self.pre.value]  # [B, n/D, k]: each slot's presynaptic spike
        return braintrace.einsum("bjk,jk->bj", inputs, self.weight.value, weight_fn=magnitude) * u.siemens


class NeuronShardNetwork(brainstate.nn.Module):
    """The one-device :class:`EINetwork`'s dynamics on one device's share of the neurons (call it inside
    :func:`neuron_gradients`' shard_map). Built from a one-device network ``base``; its weights are global
    arrays split over ``layout``'s devices (:data:`SPECS`), and ``masks`` (sparse projections only) the
    pattern each gradient is restricted to."""

    STATES = EINetwork.STATES
    spikes = EINetwork.spikes
    advance = EINetwork.advance
    state_values = EINetwork.state_values
    set_state_values = EINetwork.set_state_values
    weight_states = EINetwork.weight_states  # ff, exc, inh (blocks here) and readout
    weight_values = EINetwork.weight_values
    init_state = EINetwork.init_state  # states sized by held_neurons

    def __init__(self, base: EINetwork, layout: Layout, method: str = "bptt"):
        super().__init__()
        if base.gap is not None or base.readout_neurons is not None or base.ff.structure.sparse:
            raise ValueError("the neuron layout needs a generated network (no connectome wiring)")
        self.layout = layout
        self.mesh = mesh_of(layout, AXIS, explicit=False)
        n, d = base.n_rec, layout.n_devices
        if n % d:
            raise ValueError(f"n_rec {n} does not split evenly across {d} devices")
        self.n_rec, self.n_exc, self.n_inh, self.n_local = n, base.n_exc, base.n_inh, n // d
        for name in ("cfg", "spike_fn", "decay_syn", "decay_out", "dt", "tau", "v_th", "e_exc", "e_inh", "beta",
                     "resistance", "gap"):
            setattr(self, name, getattr(base, name))
        self._decay_adapt = base.decay_adapt  # [n]: every device slices its own neurons' (decay_adapt)
        self.ff = BlockProjection(self._split(base.ff.structure, np.asarray(base.ff.weight.value)))
        self.readout = brainstate.ParamState(
            jax.device_put(jnp.asarray(base.readout.value), NamedSharding(self.mesh, SPECS["readout"])))
        self.specs, self.masks, self.blocks = dict(SPECS), {}, {}
        for name in ("exc", "inh"):
            structure = getattr(base, name).structure
            if not structure.sparse or (method != "bptt" and getattr(base, name).impl == "masked_dense"):
                proj = BlockProjection(self._split(structure, stored_values(base, name)))  # dense columns
                if structure.sparse:
                    self.masks[name] = self._split(structure, None)
            elif method == "bptt":  # CSR blocks, event-driven
                blocks = self.blocks[name] = CSRBlocks(structure, d, self.mesh)
                proj = CSRBlockProjection(blocks, blocks.split(stored_values(base, name)), self.held_neurons)
                self.masks[name], self.specs[name] = blocks.mask, P(AXIS)
            else:  # slots: braintrace's einsum (its sparse operator needs a static CSR)
                blocks = self.blocks[name] = SlotBlocks(structure, self.mesh)
                proj = SlotProjection(blocks, blocks.split(stored_values(base, name)))
                self.masks[name], self.specs[name] = blocks.mask, SlotBlocks.spec
            setattr(self, name, proj)

    def held_neurons(self) -> int:
        """This device's neurons: its input block's columns (at brainstate's discovery trace: all of them)."""
        return self.ff.weight.value.shape[-1]

    def _split(self, structure: Structure, values: np.ndarray | None) -> jax.Array:
        """A projection's columns as a global array, each device's block built on its own (``values`` None:
        the pattern as 0/1)."""
        sharding = NamedSharding(self.mesh, SPECS["exc"])
        if values is None:
            values = np.ones(structure.nnz, dtype=np.float32)

        def block(index):
            return column_block(structure, values, index[1])

        return jax.make_array_from_callback(structure.shape, sharding, block)

    # -- the per-shard step (inside shard_map) -----------------------------------------------------------

    @property
    def decay_adapt(self):
        n = self.V.value.shape[-1]
        start = jax.lax.axis_index(AXIS) * n
        return jax.lax.dynamic_slice_in_dim(self._decay_adapt, start, n)

    def update(self, x):
        spk = self.spikes()
        every = gather_spikes(spk)  # [..., n]: all neurons' spikes
        d_exc = self.ff(x) + self.exc(every[..., : self.n_exc])
        d_inh = self.inh(every[..., self.n_exc : self.n_exc + self.n_inh])
        self.set_state_values(self.advance(self.state_values(), d_exc, d_inh))
        return self.logits(self.trace.value)

    def logits(self, trace, readout=None):
        """The readout of all neurons: the filtered potentials standardised with the mean and variance over
        every device's neurons, all-gathered, read out by the (replicated, small) readout matrix."""
        x = u.get_magnitude(trace / u.mV)
        total = lambda a: jax.lax.psum(jnp.sum(a, axis=-1, keepdims=True), AXIS)  # noqa: E731
        mean = total(x) / self.n_rec
        variance = total(jnp.square(x)) / self.n_rec - jnp.square(mean)
        z = jax.nn.standardize(x, axis=-1, mean=mean, variance=variance)
        every = jax.lax.all_gather(z, AXIS, axis=z.ndim - 1, tiled=True)[..., : self.n_rec]
        return braintrace.matmul(every, self.readout.value if readout is None else readout)

    # -- weights -------------------------------------------------------------------------------------------

    def set_weights(self, values: dict) -> None:
        for k, s in self.weight_states().items():
            s.value = jax.device_put(jnp.asarray(values[k], dtype=jnp.float32),
                                     NamedSharding(self.mesh, self.specs[k]))

    def masked(self, grads: dict) -> dict:
        """Gradients restricted to the sparse projections' patterns (elementwise on the blocks: no traffic)."""
        return {k: g * self.masks[k] if k in self.masks else g for k, g in grads.items()}

    def to_base(self, values: dict, base: EINetwork) -> dict[str, np.ndarray]:
        """Weight-shaped arrays (weights or gradients) in the one-device model's format (host copies)."""
        out = {}
        for k, v in values.items():
            v = np.asarray(v)
            if k in self.blocks:
                v = self.blocks[k].join(v)
                if getattr(base, k).impl == "masked_dense":
                    v = getattr(base, k).structure.to_dense(v)
            elif k in ("exc", "inh"):
                proj = getattr(base, k)
                if proj.structure.sparse and proj.impl != "masked_dense":
                    v = proj.structure.dense_values(v)
            out[k] = v
        return out

    def from_base(self, values: dict, base: EINetwork) -> dict[str, jax.Array]:
        """One-device weights (:meth:`EINetwork.weight_values` format) as this layout's global blocks."""
        out = {"ff": self._split(base.ff.structure, np.asarray(values["ff"])),
               "readout": jax.device_put(jnp.asarray(values["readout"]), NamedSharding(self.mesh, SPECS["readout"]))}
        for k in ("exc", "inh"):
            proj = getattr(base, k)
            v = np.asarray(values[k])
            if proj.structure.sparse and proj.impl == "masked_dense":
                v = proj.structure.dense_values(v)
            out[k] = self.blocks[k].split(v) if k in self.blocks else self._split(proj.structure, v)
        return out


def neuron_gradients(net: NeuronShardNetwork, local: Callable, n_args: int) -> Callable:
    """``local(*args) -> (grads, losses, recall)`` (the one-device gradient code, run on ``net``) on every device
    of ``net``'s layout with the replicated ``n_args`` arguments; returns the gradients as global blocks
    (masked to sparse patterns), the per-step losses and the recall outputs (the same on every device).
    Call it inside a brainstate ``jit``."""
    d = net.layout.n_devices

    def per_shard(*args):
        grads, losses, recall = local(*args)
        # the transposes of the readout's gather (a reduce-scatter) see the same cotangent on every device
        # (check_vma=False): the projections' gradients come out D times too large; the readout's does not
        return {k: g if k == "readout" else g / d for k, g in grads.items()}, losses, recall

    states = net.weight_states()
    specs = {states[k]: net.specs[k] for k in states}
    for name in net.blocks:  # the sparse blocks' structure (row pointers and indices, or slots), split like them
        specs.update(getattr(net, name).data_states())
    sharded = brainstate.transform.shard_map(
        per_shard, net.mesh, in_specs=(P(),) * n_args, out_specs=({k: net.specs[k] for k in states}, P(), P()),
        state_in_specs=specs, state_out_specs=specs, check_vma=False)  # out: braintrace writes the slots back

    def run(*args):
        grads, losses, recall = sharded(*args)
        return net.masked(grads), losses, recall

    return run
