"""Event-driven propagation through a CSR projection: forward-only (simulation) and differentiable (BPTT).

``propagate(spikes, indptr, indices, weights, n_post)`` adds, for every spiking presynaptic row, its
weights onto its targets: O(spikes x out-degree) work per step. ``differentiable_propagate`` is the
same product with a custom gradient for BPTT: the weight gradient visits the active rows only, the
activity's gradient (``W ct``, the surrogate path) every synapse once per trial. On the CPU the kernel is a small C++
loop compiled once per machine through brainevent's own kernel builder (``load_cpp_inline``) and called
as a native XLA FFI target. brainevent's stock CPU operators (numba kernels) enter Python through a
ctypes callback on every call, which measured ~40 us per call here: at dt = 0.1 ms that is 0.4 s per
simulated second, more than the whole rest of a 4000-neuron COBA step. Where no C++ compiler is found,
and on accelerators (whose brainevent kernels are native), the projection falls back to brainevent's
``BinaryArray @ CSR``; both give the same sums (tests/diffbrain/test_network_simulate.py).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import shutil

import jax
import jax.numpy as jnp
import numpy as np

log = logging.getLogger(__name__)

_MODULE = "diffbrain_events_v3"
_FUNCTION = "event_csr_forward"
_FUNCTIONS = [_FUNCTION, "event_csr_grad_weights", "csr_grad_events", "event_csr_deliver_split"]
_SOURCE = r"""
#include "brainevent/common.h"
#include <cstdint>
#include <cstring>

// out[b, :] = sum over rows i with spikes[b, i] != 0 of weights[j] at column indices[j],
// j in [indptr[i], indptr[i + 1]); spikes [batch, n_pre] as bytes, out [batch, n_post].
void event_csr_forward(const BE::Tensor spikes, const BE::Tensor indptr, const BE::Tensor indices,
                       const BE::Tensor weights, BE::Tensor out) {
    const int64_t n_pre = indptr.numel() - 1;
    const int64_t batch = n_pre > 0 ? spikes.numel() / n_pre : 0;
    const int64_t n_post = batch > 0 ? out.numel() / batch : 0;
    const uint8_t* s = static_cast<const uint8_t*>(spikes.data_ptr());
    const int32_t* ip = static_cast<const int32_t*>(indptr.data_ptr());
    const int32_t* ix = static_cast<const int32_t*>(indices.data_ptr());
    const float* w = static_cast<const float*>(weights.data_ptr());
    float* o = static_cast<float*>(out.data_ptr());
    std::memset(o, 0, sizeof(float) * out.numel());
    for (int64_t b = 0; b < batch; ++b) {
        const uint8_t* sb = s + b * n_pre;
        float* ob = o + b * n_post;
        for (int64_t i = 0; i < n_pre; ++i) {
            if (!sb[i]) continue;
            for (int32_t j = ip[i]; j < ip[i + 1]; ++j) ob[ix[j]] += w[j];
        }
    }
}

// dw[j] = sum over b of [spikes[b, pre(j)] != 0] * ct[b, indices[j]]  (event-driven: spiking rows only)
void event_csr_grad_weights(const BE::Tensor spikes, const BE::Tensor indptr, const BE::Tensor indices,
                            const BE::Tensor ct, BE::Tensor dw) {
    const int64_t n_pre = indptr.numel() - 1;
    const int64_t batch = n_pre > 0 ? spikes.numel() / n_pre : 0;
    const int64_t n_post = batch > 0 ? ct.numel() / batch : 0;
    const uint8_t* s = static_cast<const uint8_t*>(spikes.data_ptr());
    const int32_t* ip = static_cast<const int32_t*>(indptr.data_ptr());
    const int32_t* ix = static_cast<const int32_t*>(indices.data_ptr());
    const float* c = static_cast<const float*>(ct.data_ptr());
    float* g = static_cast<float*>(dw.data_ptr());
    std::memset(g, 0, sizeof(float) * dw.numel());
    for (int64_t b = 0; b < batch; ++b) {
        const uint8_t* sb = s + b * n_pre;
        const float* cb = c + b * n_post;
        for (int64_t i = 0; i < n_pre; ++i) {
            if (!sb[i]) continue;
            for (int32_t j = ip[i]; j < ip[i + 1]; ++j) g[j] += cb[ix[j]];
        }
    }
}

// dx[b, i] = sum over j in row i of weights[j] * ct[b, indices[j]]  (the product's transpose)
void csr_grad_events(const BE::Tensor indptr, const BE::Tensor indices, const BE::Tensor weights,
                     const BE::Tensor ct, BE::Tensor dx) {
    const int64_t n_pre = indptr.numel() - 1;
    const int64_t batch = n_pre > 0 ? dx.numel() / n_pre : 0;
    const int64_t n_post = batch > 0 ? ct.numel() / batch : 0;
    const int32_t* ip = static_cast<const int32_t*>(indptr.data_ptr());
    const int32_t* ix = static_cast<const int32_t*>(indices.data_ptr());
    const float* w = static_cast<const float*>(weights.data_ptr());
    const float* c = static_cast<const float*>(ct.data_ptr());
    float* d = static_cast<float*>(dx.data_ptr());
    for (int64_t b = 0; b < batch; ++b) {
        const float* cb = c + b * n_post;
        float* db = d + b * n_pre;
        for (int64_t i = 0; i < n_pre; ++i) {
            float acc = 0.0f;
            for (int32_t j = ip[i]; j < ip[i + 1]; ++j) acc += w[j] * cb[ix[j]];
            db[i] = acc;
        }
    }
}
// In place, for simulation: rows [0, split) add onto first, rows [split, n_pre) onto second (the
// excitatory and inhibitory conductances). first_out/second_out alias first/second when XLA can donate
// them (then nothing is copied); no dense temporary, no memset, one call per step for both projections.
void event_csr_deliver_split(const BE::Tensor spikes, const BE::Tensor indptr, const BE::Tensor indices,
                             const BE::Tensor weights, const BE::Tensor split, const BE::Tensor first,
                             const BE::Tensor second, BE::Tensor first_out, BE::Tensor second_out) {
    const int64_t n_pre = indptr.numel() - 1;
    const int64_t cut = static_cast<const int32_t*>(split.data_ptr())[0];
    const uint8_t* s = static_cast<const uint8_t*>(spikes.data_ptr());
    const int32_t* ip = static_cast<const int32_t*>(indptr.data_ptr());
    const int32_t* ix = static_cast<const int32_t*>(indices.data_ptr());
    const float* w = static_cast<const float*>(weights.data_ptr());
    float* a = static_cast<float*>(first_out.data_ptr());
    float* b = static_cast<float*>(second_out.data_ptr());
    if (a != first.data_ptr()) std::memcpy(a, first.data_ptr(), sizeof(float) * first_out.numel());
    if (b != second.data_ptr()) std::memcpy(b, second.data_ptr(), sizeof(float) * second_out.numel());
    for (int64_t i = 0; i < n_pre; ++i) {
        if (!s[i]) continue;
        float* o = i < cut ? a : b;
        for (int32_t j = ip[i]; j < ip[i + 1]; ++j) o[ix[j]] += w[j];
    }
}
"""


_choice: list[bool | None] = [None]


@contextlib.contextmanager
def kernel_choice(native: bool | None):
    """Within the block, :func:`propagate` calls without an explicit ``native`` use this choice
    (None: the native kernel where available). The choice is baked into programs traced inside."""
    _choice.append(native)
    try:
        yield
    finally:
        _choice.pop()


@functools.cache
def native_available() -> bool:
    """Compile (once per machine, cached by brainevent) and register the CPU kernel; False if impossible."""
    if jax.default_backend() != "cpu" or not (shutil.which("g++") or shutil.which("clang++")):
        return False
    try:
        import brainevent

        brainevent.load_cpp_inline(name=_MODULE, cpp_sources=_SOURCE, functions=_FUNCTIONS,
                                   extra_cflags=["-O3"])
        return True
    except Exception as exc:  # no working compiler or headers: brainevent's own operator still works
        log.warning("native event kernel unavailable (%s); using brainevent's CSR operator", exc)
        return False


def propagate(spikes, indptr, indices, weights, n_post: int, native: bool | None = None):
    """Sum of ``weights`` onto targets of the spiking rows: ``spikes [..., n_pre]`` -> ``[..., n_post]`` (float32).

    ``indptr``/``indices`` int32 CSR (rows presynaptic), ``weights`` float32 ``[nnz]``. ``native`` None:
    the compiled kernel where available.
    """
    spikes = jnp.asarray(spikes)
    if native is None:
        native = _choice[-1]
    if native is None:
        native = native_available()
    elif native and not native_available():
        raise RuntimeError("the native event kernel is not available here (no C++ compiler or not a CPU)")
    if native:
        lead = spikes.shape[:-1]
        call = jax.ffi.ffi_call(f"{_MODULE}.{_FUNCTION}", jax.ShapeDtypeStruct((*lead, n_post), jnp.float32),
                                vmap_method="sequential")
        return call((spikes != 0).astype(jnp.uint8), indptr, indices, weights)
    import brainevent

    csr = brainevent.CSR((weights, indices, indptr), shape=(indptr.shape[0] - 1, n_post))
    return brainevent.BinaryArray(spikes != 0) @ csr


def deliver_split(spikes, indptr, indices, weights, split: int, first, second):
    """``first + spikes[:split] @ W[:split]`` and ``second + spikes[split:] @ W[split:]`` for one CSR
    structure over all presynaptic rows (float32 ``[n_post]`` each), in one native call that adds in place.

    Simulation only (no gradient), native kernel only: callers without it use :func:`propagate` per block.
    """
    if not native_available():
        raise RuntimeError("the native event kernel is not available here (no C++ compiler or not a CPU)")
    spikes = jnp.asarray(spikes)
    shape = jax.ShapeDtypeStruct(first.shape, jnp.float32)
    call = jax.ffi.ffi_call(f"{_MODULE}.event_csr_deliver_split", (shape, shape),
                            input_output_aliases={5: 0, 6: 1})
    return call((spikes != 0).astype(jnp.uint8), indptr, indices, weights,
                jnp.asarray([split], dtype=jnp.int32), first, second)


def _call(name: str, shape, *args):
    return jax.ffi.ffi_call(f"{_MODULE}.{name}", jax.ShapeDtypeStruct(shape, jnp.float32),
                            vmap_method="sequential")(*args)


@functools.cache
def _event_matmul(n_post: int):
    @jax.custom_vjp
    def op(x, indptr, indices, weights):
        return _call(_FUNCTION, (*x.shape[:-1], n_post), (x != 0).astype(jnp.uint8), indptr, indices, weights)

    def fwd(x, indptr, indices, weights):
        return op(x, indptr, indices, weights), (x, indptr, indices, weights)

    def bwd(res, ct):
        x, indptr, indices, weights = res
        ct = ct.astype(jnp.float32)
        dw = _call("event_csr_grad_weights", weights.shape, (x != 0).astype(jnp.uint8), indptr, indices, ct)
        dx = _call("csr_grad_events", x.shape, indptr, indices, weights, ct).astype(x.dtype)
        return dx, None, None, dw

    op.defvjp(fwd, bwd)
    return op


@jax.tree_util.register_pytree_node_class
class TaskWorkspace:
    """brainevent's binary task workspace (the attributes ``binary_csrmv``/``binary_csrmm`` document) sized on the
    host: brainevent's own ``CSR`` operator sizes it from a concrete row pointer, which a CSR block passed as
    traced data (one per device in an SPMD program) does not have."""

    def __init__(self, capacity: int, begin=None, end=None, status=None):
        self.task_capacity = int(capacity)
        self.task_begin = jnp.zeros((capacity,), jnp.int32) if begin is None else begin
        self.task_end = jnp.zeros((capacity,), jnp.int32) if end is None else end
        self.status = jnp.zeros((2,), jnp.int32) if status is None else status

    def tree_flatten(self):
        return (self.task_begin, self.task_end, self.status), self.task_capacity

    @classmethod
    def tree_unflatten(cls, capacity, children):
        return cls(capacity, *children)


def task_capacity(row_pointers) -> int:
    """The workspace size brainevent would give the largest of these CSR row pointers (host arrays)."""
    from brainevent._csr.hybrid_config import hybrid_task_capacity  # brainevent 0.3.0 (pinned): not re-exported

    return max(int(hybrid_task_capacity(np.asarray(p))) for p in row_pointers)


def traced_structure_product(x, indptr, indices, weights, n_post: int, capacity: int):
    """``x @ W`` through brainevent's event-driven CSR kernels with the structure as traced data (``capacity``:
    :func:`task_capacity` of every block the program may see); differentiable in ``x`` and ``weights``."""
    import brainevent

    shape = (indptr.shape[0] - 1, n_post)
    if x.ndim == 1:
        return brainevent.binary_csrmv(weights, indices, indptr, x, shape=shape, transpose=True,
                                       workspace=TaskWorkspace(capacity))
    flat = x.reshape(-1, x.shape[-1])
    out = brainevent.binary_csrmm(weights, indices, indptr, flat.T, shape=shape, transpose=True,
                                  workspace=TaskWorkspace(capacity))
    return out.T.reshape(*x.shape[:-1], n_post)


def differentiable_propagate(x, indptr, indices, weights, n_post: int, capacity: int | None = None):
    """``x @ W`` (0/1 ``x``) with gradients for BPTT: native kernels where available (and not switched off by
    :func:`kernel_choice`), else brainevent's; ``capacity`` given: the structure is traced data (a device's CSR
    block), see :func:`traced_structure_product`."""
    native = _choice[-1]
    if native is None or native:
        native = native_available()
    if native:
        return _event_matmul(n_post)(jnp.asarray(x, dtype=jnp.float32), indptr, indices, weights)
    if capacity is not None:
        return traced_structure_product(jnp.asarray(x, dtype=jnp.float32), indptr, indices, weights, n_post,
                                        capacity)
    import brainevent

    csr = brainevent.CSR((weights, indices, indptr), shape=(indptr.shape[0] - 1, n_post))
    return brainevent.BinaryArray(x) @ csr
