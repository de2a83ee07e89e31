"""Simulation only: run a spiking network for a duration and keep its spikes as events (plain records).

A model supplies one compiled program that advances ``chunk`` steps from step ``t0`` and returns the
spikes of those steps bit-packed (``[chunk, ceil(N / 8)]`` uint8): the device never holds a dense
raster of the run, and the host turns each chunk into events (step, neuron) while the next chunk runs.
Compile time (XLA's ahead-of-time compile, with its memory analysis) and run time are measured apart.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from diffbrain.network.memory import MemoryEstimate


@dataclass
class SimulationRecord:
    """A finished simulation: spikes as events, timings and memory (plain NumPy and numbers)."""

    spike_step: np.ndarray  # int32 time-step index of each spike
    spike_neuron: np.ndarray  # int32 neuron index
    is_excitatory: np.ndarray  # bool [N]
    n_steps: int
    dt: float  # ms
    n_synapses: int
    build_seconds: float
    compile_seconds: float
    run_seconds: float
    memory: MemoryEstimate
    structure_bytes: int  # bytes of the recurrent structure as built (indices and pointers)
    state_bytes: int  # bytes of the neuron states
    temp_bytes: int  # XLA's temporaries of the chunk program (-1 where not reported)
    argument_bytes: int
    output_bytes: int
    event_kernel: str
    info: dict = field(default_factory=dict)

    @property
    def n_neurons(self) -> int:
        return int(self.is_excitatory.size)

    @property
    def duration_s(self) -> float:
        return self.n_steps * self.dt / 1000.0

    @property
    def seconds_per_sim_second(self) -> float:
        return self.run_seconds / self.duration_s


def chunking(n_steps: int, max_chunk: int) -> tuple[int, int]:
    """(chunks, steps per chunk) covering ``n_steps`` with at most ``chunks - 1`` steps run past the end."""
    chunks = max(1, math.ceil(n_steps / max(1, max_chunk)))
    return chunks, math.ceil(n_steps / chunks)


def packed_events(packed: np.ndarray, first_step: int, n_neurons: int, n_steps: int) -> tuple[np.ndarray, np.ndarray]:
    """(step, neuron) of every set bit of ``packed [steps, bytes]`` (big-endian bits, as ``jnp.packbits``),
    ordered by step then neuron; steps at or past ``n_steps`` are dropped."""
    rows, cols = np.nonzero(packed)
    bits = np.unpackbits(packed[rows, cols][:, None], axis=1).astype(bool)
    k, bit = np.nonzero(bits)
    step = (rows[k] + first_step).astype(np.int32)
    neuron = (cols[k] * 8 + bit).astype(np.int32)
    keep = (step < n_steps) & (neuron < n_neurons)
    return step[keep], neuron[keep]


def block_events(packed: np.ndarray, first_step: int, n_neurons: int, n_steps: int,
                 blocks: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """:func:`packed_events` of ``packed [steps, blocks x bytes]``: ``blocks`` equal blocks of neurons side by
    side, each packed on its own (the neuron layout: every device packs its ``n_neurons / blocks`` neurons);
    ordered by step then neuron."""
    if blocks == 1:
        return packed_events(packed, first_step, n_neurons, n_steps)
    local, width = n_neurons // blocks, packed.shape[1] // blocks
    parts = [packed_events(packed[:, d * width:(d + 1) * width], first_step, local, n_steps) for d in range(blocks)]
    step = np.concatenate([s for s, _ in parts])
    neuron = np.concatenate([i + d * local for d, (_, i) in enumerate(parts)]).astype(np.int32)
    order = np.lexsort((neuron, step))
    return step[order], neuron[order]


def run_chunks(program: Callable, compile_stats, n_steps: int, chunk: int, n_neurons: int,
               progress: Callable[[float, str], None] | None = None,
               blocks: int = 1) -> tuple[np.ndarray, np.ndarray, float]:
    """Call ``program(t0) -> packed spikes [chunk, bytes]`` until ``n_steps`` are covered (``blocks``: the
    packed spikes are that many blocks of neurons, :func:`block_events`).

    Returns (steps, neurons, run seconds). The next chunk is dispatched before the previous one is
    decoded, so decoding overlaps the device's work.
    """
    import jax.numpy as jnp

    steps, neurons = [], []
    start = time.perf_counter()
    pending = None
    t0 = 0
    while t0 < n_steps or pending is not None:
        current = (t0, program(jnp.asarray(t0, dtype=jnp.int32))) if t0 < n_steps else None
        t0 += chunk
        if pending is not None:
            first, out = pending
            s, n = block_events(np.asarray(out), first, n_neurons, n_steps, blocks)
            steps.append(s)
            neurons.append(n)
            if progress is not None:
                progress(min(1.0, (first + chunk) / n_steps), f"step {min(first + chunk, n_steps)}/{n_steps}")
        pending = current
    seconds = time.perf_counter() - start
    cat = lambda parts: np.concatenate(parts) if parts else np.zeros(0, np.int32)
    return cat(steps), cat(neurons), seconds


# -- statistics of a record ----------------------------------------------------------------------------


def firing_rates(rec: SimulationRecord) -> np.ndarray:
    """Mean rate per neuron (Hz) over the whole run."""
    return (np.bincount(rec.spike_neuron, minlength=rec.n_neurons) / rec.duration_s).astype(np.float32)


def cv_isi(rec: SimulationRecord, min_spikes: int = 3) -> np.ndarray:
    """Coefficient of variation of each neuron's inter-spike intervals (NaN under ``min_spikes`` spikes)."""
    order = np.lexsort((rec.spike_step, rec.spike_neuron))
    neuron, step = rec.spike_neuron[order], rec.spike_step[order].astype(np.float64)
    same = neuron[1:] == neuron[:-1]
    isi, owner = np.diff(step)[same], neuron[1:][same]
    count = np.bincount(owner, minlength=rec.n_neurons)
    total = np.bincount(owner, weights=isi, minlength=rec.n_neurons)
    total_sq = np.bincount(owner, weights=isi**2, minlength=rec.n_neurons)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = total / count
        var = total_sq / count - mean**2
        cv = np.sqrt(np.maximum(var, 0.0)) / mean
    cv[count < min_spikes - 1] = np.nan
    return cv.astype(np.float32)


def population_rate(rec: SimulationRecord, bin_ms: float) -> tuple[np.ndarray, np.ndarray]:
    """(bin start times in ms, population rate in Hz per neuron) in bins of ``bin_ms``."""
    per_bin = max(1, int(round(bin_ms / rec.dt)))
    bins = math.ceil(rec.n_steps / per_bin)
    counts = np.bincount(rec.spike_step // per_bin, minlength=bins)[:bins]
    width_s = per_bin * rec.dt / 1000.0
    return ((np.arange(bins) * per_bin * rec.dt).astype(np.float32),
            (counts / (rec.n_neurons * width_s)).astype(np.float32))


# -- the paper's E/I GIF network, simulated without a task ---------------------------------------------


@dataclass(frozen=True)
class GifDrive:
    """Background drive of the GIF network: ``n_input`` independent Poisson neurons at ``rate`` Hz."""

    n_input: int = 100
    rate: float = 20.0  # Hz


def gif_memory_estimate(cfg, n_input: int) -> MemoryEstimate:
    """Bytes of the E/I GIF network before it is built (expected synapse count)."""
    from diffbrain.network.memory import network_estimate

    return network_estimate(cfg, n_input, 2, "simulation")


def simulate_gif(cfg, drive: GifDrive, seed: int, duration_ms: float, max_chunk: int = 1000,
                 progress=None, native: bool | None = None) -> SimulationRecord:
    """Simulate :class:`~diffbrain.network.model.EINetwork` (``method="simulation"``: the forward-only event
    path) driven by Poisson input, one trial, for ``duration_ms``."""
    import brainstate
    import jax
    import jax.numpy as jnp

    from diffbrain.network.model import EINetwork
    from diffbrain.network.training import CompiledProgram

    n_steps = max(1, int(round(duration_ms / cfg.dt)))
    _, chunk = chunking(n_steps, max_chunk)
    start = time.perf_counter()
    model = EINetwork(cfg, drive.n_input, 2, seed=seed, method="simulation")
    build_seconds = time.perf_counter() - start
    brainstate.nn.init_all_states(model)
    p_spike = drive.rate * cfg.dt / 1000.0
    key = jax.random.fold_in(jax.random.PRNGKey(seed), 3)

    def run(t0):
        def body(t):
            x = (jax.random.uniform(jax.random.fold_in(key, t), (drive.n_input,)) < p_spike).astype(jnp.float32)
            model(x)
            return jnp.packbits(model.spikes() > 0)

        return brainstate.transform.for_loop(body, t0 + jnp.arange(chunk, dtype=jnp.int32))

    from diffbrain.network.events import kernel_choice, native_available

    program = CompiledProgram(run)
    with kernel_choice(native):
        stats = program.compile(jnp.asarray(0, dtype=jnp.int32))
    uses_native = native if native is not None else native_available()
    steps, neurons, seconds = run_chunks(program, stats, n_steps, chunk, cfg.n_rec, progress)
    exc, inh = model.exc.structure, model.inh.structure
    return SimulationRecord(
        spike_step=steps, spike_neuron=neurons, is_excitatory=model.is_excitatory(), n_steps=n_steps, dt=cfg.dt,
        n_synapses=exc.nnz + inh.nnz, build_seconds=build_seconds, compile_seconds=stats.seconds,
        run_seconds=seconds, memory=gif_memory_estimate(cfg, drive.n_input), structure_bytes=exc.nbytes + inh.nbytes,
        state_bytes=5 * cfg.n_rec * 4, temp_bytes=stats.temp_bytes, argument_bytes=stats.argument_bytes,
        output_bytes=stats.output_bytes,
        event_kernel=("native" if uses_native else "brainevent") if model.exc.impl == "event" else model.exc.impl,
        info={"sparse_impl": model.sparse_impl},
    )
