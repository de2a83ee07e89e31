"""Forward-only event-driven propagation through a CSR projection (simulation: no gradient needed).

``propagate(spikes, indptr, indices, weights, n_post)`` adds, for every spiking presynaptic row, its
weights onto its targets: O(spikes x out-degree) work per step. On the CPU the kernel is a small C++
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

log = logging.getLogger(__name__)

_MODULE = "diffbrain_events_v1"
_FUNCTION = "event_csr_forward"
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

        brainevent.load_cpp_inline(name=_MODULE, cpp_sources=_SOURCE, functions=[_FUNCTION],
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
