"""Bytes a network needs, computed before anything is allocated, and the refusal when they cannot fit.

:func:`estimate` adds up what a network holds (float32 values, int32 indices): the structure (CSR
indices on the host and their device copy), the weights, the neuron states, what a training method
keeps on top (BPTT: every step's states for the backward pass; D-RTRL: eligibility traces per weight,
state and trial, and its chunks' temporaries; ES-D-RTRL: presynaptic and postsynaptic traces per
projection and trial; Adam: two moments per weight) and the transient peak of drawing the structure.
:func:`ensure_fits` compares the total with the host's available memory and the device's limit and
raises :class:`BadInput` (one line: the figure, the limit, the fix) before the network is built. The
figures are estimates of the arrays the toolkit allocates; XLA's own temporaries are measured after
compilation and recorded per point.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from diffbrain.errors import BadInput

F32 = 4
I32 = 4
GB = 1024**3
DRTRL_CHUNK = 50  # diffbrain.network.drtrl.DEFAULT_CHUNK (not imported: planning must not import JAX)


def readable_bytes(value: float) -> str:
    """``12.5 GB`` (decimal units), or MB under 0.1 GB: how the memory checks and the plan print bytes."""
    return f"{value / 1e9:.3g} GB" if value >= 1e8 else f"{value / 1e6:.3g} MB"


def compiled_bytes(executable) -> tuple[int, int, int]:
    """XLA's memory analysis of a compiled executable: (temp, argument, output) bytes, -1 where not reported."""
    mem = executable.memory_analysis()
    size = lambda name: int(getattr(mem, name, -1)) if mem is not None else -1  # noqa: E731
    return size("temp_size_in_bytes"), size("argument_size_in_bytes"), size("output_size_in_bytes")


@dataclass(frozen=True)
class MemoryEstimate:
    """Estimated bytes by part; ``total`` is what must fit at once."""

    structure: int
    weights: int
    states: int
    training: int = 0
    recording: int = 0
    build_peak: int = 0

    @property
    def total(self) -> int:
        steady = self.structure + self.weights + self.states + self.training + self.recording
        return max(steady, self.build_peak + self.weights)

    def as_dict(self) -> dict[str, int]:
        return {**asdict(self), "total": self.total}


def estimate(n_neurons: int, n_synapses: float, *, n_in: int = 0, n_out: int = 0, states_per_neuron: int = 5,
             batch: int = 1, method: str = "simulation", n_steps: int = 0, impl: str = "event",
             record_bytes: int = 0) -> MemoryEstimate:
    """Bytes of a network of ``n_neurons`` with ``n_synapses`` recurrent synapses (expected count).

    ``impl``: ``event`` keeps the synapses as CSR (host indices, device indices and, for brainevent's
    operator, a device data vector); ``masked_dense``/``dense`` hold ``n_neurons^2`` dense matrices.
    ``method``: simulation, bptt, diag or expsm_diag (what training keeps; ``n_steps`` for bptt).
    """
    n, nnz, b = int(n_neurons), int(round(n_synapses)), max(1, int(batch))
    if impl == "event":
        structure = nnz * (I32 + I32 + (F32 if method != "simulation" else 0)) + 2 * (n + 1) * 8
        recurrent = nnz * F32
    else:
        structure = n * n * F32 + (nnz * I32 if impl == "masked_dense" else 0)
        recurrent = n * n * F32
    params = recurrent + (n_in + n_out) * n * F32
    weights = 2 * params  # the host's initial copy and the device's parameters
    states = 2 * b * n * states_per_neuron * F32  # current and next values
    training = 0
    if method != "simulation":
        training = 3 * params  # gradients and Adam's two moments
        if method == "bptt":
            training += max(1, n_steps) * b * n * (states_per_neuron + 3) * F32
        elif method == "diag":
            training += diag_bytes(n, nnz, n_in, b, impl)
        elif method == "expsm_diag":
            training += b * 3 * (2 * n + n_in) * states_per_neuron * F32
    build_peak = 3 * nnz * I32 + 8 * (n + 1) if impl == "event" else structure
    return MemoryEstimate(structure, weights, states, training, record_bytes, build_peak)


def diag_bytes(n: int, nnz: int, n_in: int, batch: int, impl: str) -> int:
    """What D-RTRL (:mod:`diffbrain.network.drtrl`) keeps: per weight and trial, a trace on the 4 states an
    input reaches, and per chunk its temporaries. Measured with XLA's memory analysis (n_rec 200, batch 32):
    dense ~6.6 traces' bytes (162.7 MB); on CSR non-zeros the chunk's gathered products dominate, ~5 x
    4 x chunk x batch x nnz floats (1.0 GB at density 0.2)."""
    states = 4
    dense_trace = states * batch * (n_in * n + (n * n if impl != "event" else 0)) * F32
    sparse = 5 * states * DRTRL_CHUNK * batch * nnz * F32 if impl == "event" else 0
    return 7 * dense_trace + sparse


def available() -> tuple[int, int | None, str]:
    """(host bytes available now, device bytes limit or None when the device is the host, device name)."""
    import psutil

    host = int(psutil.virtual_memory().available)
    try:
        import jax

        device = jax.devices()[0]
        stats = device.memory_stats() if device.platform != "cpu" else None
    except Exception:  # no backend yet: the host is the device
        return host, None, "cpu"
    if stats and "bytes_limit" in stats:
        return host, int(stats["bytes_limit"]) - int(stats.get("bytes_in_use", 0)), str(device)
    return host, None, str(device)


def ensure_fits(est: MemoryEstimate, limit_bytes: int | None = None, field: str = "n", what: str = "the network",
                device_share: float = 1.0, check_device: bool = True) -> None:
    """Raise :class:`BadInput` naming ``field`` when ``est`` cannot fit.

    ``limit_bytes`` (a user's cap) replaces the host's available memory; on an accelerator the
    device's free bytes also bound the device part (everything but the host copies), unless
    ``check_device`` is False (a training step's layout choice checks its devices itself:
    :mod:`diffbrain.network.device_fit`).
    """
    host, device, name = available()
    host_limit = int(limit_bytes) if limit_bytes else host
    need = est.total
    if need > host_limit:
        raise BadInput(field, f"{what} needs about {need / GB:.2f} GB ({_parts(est)}) but "
                       f"{'the limit is' if limit_bytes else 'the host has'} {host_limit / GB:.2f} GB available",
                       "lower the size or the connectivity, or run where more memory is free")
    if device is not None and check_device:
        on_device = int((est.total - est.weights / 2 - est.structure / 2) * device_share)
        if on_device > device:
            raise BadInput(field, f"{what} needs about {on_device / GB:.2f} GB on {name} but it has "
                           f"{device / GB:.2f} GB free", "lower the size or the connectivity, or use a larger device")


def _parts(est: MemoryEstimate) -> str:
    parts = [(k, v) for k, v in est.as_dict().items() if k != "total" and v]
    return ", ".join(f"{k} {v / GB:.2f}" for k, v in parts)


def network_estimate(cfg, n_in: int, n_out: int, method: str = "simulation", batch: int = 1,
                     n_steps: int = 0) -> MemoryEstimate:
    """The estimate of an E/I network configuration (:class:`NetworkConfig`) before it is built: expected
    synapse count, the operator ``sparse_impl`` resolves to, and what ``method`` keeps for training."""
    from diffbrain.network.connectivity import expected_synapses
    from diffbrain.network.crossover import choose_impl

    nnz = expected_synapses(cfg)
    impl = cfg.sparse_impl
    if cfg.conn_method == "dense":
        impl = "dense"
    elif impl == "auto":
        impl = choose_impl(method, cfg.n_rec, nnz / cfg.n_rec**2)
    return estimate(cfg.n_rec, nnz, n_in=n_in, n_out=n_out, states_per_neuron=5, batch=batch, method=method,
                    n_steps=n_steps, impl=impl)
