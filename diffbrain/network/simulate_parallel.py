"""``simulate-network`` on several devices: the neuron layout for its two presets (one trial, no gradients).

Device ``d`` of ``D`` holds the neurons ``[d n/D, (d+1) n/D)``: their states and their incoming synapses as its
own CSR block (:class:`~diffbrain.network.neuron_parallel.CSRBlocks`: every presynaptic row, its own columns,
padded to the largest block's count with zero-weight entries, built in ``O(synapses)``); the gif preset's input
projection as its columns ``[n_input, n/D]``. Each step a device advances its neurons with the one-device
model's own per-neuron code (``coba_step`` for coba, :meth:`EINetwork.advance` for gif), all-gathers the
step's spikes as booleans (``n`` bytes per device) and delivers every spike onto its own neurons with the
project's event-driven kernels on its block. Each device packs its own neurons' spikes per chunk
(``[chunk, ceil(n/8D)]``), and the host decodes the blocks side by side
(:func:`diffbrain.network.simulate.run_chunks` with ``blocks``): a whole raster on every device would be the
one part of a device's memory that does not shrink with ``D``.

Same spikes as one device: a block keeps the CSR order of the whole projection (presynaptic rows ascending), so
each postsynaptic neuron sums its inputs in the same order as the one-device kernel (the padding adds 0.0 after
them); the gif preset's Poisson input is drawn from the same per-step keys on every device (``[n_input]``, not
per neuron: no axis index is folded in), so a sharded run reproduces one device's spikes exactly when both run
the event-driven CSR operator (the one-device gif network may choose its masked dense operator at small sizes:
``sparse_impl``; then the float order differs).

The programs are plain JAX inside ``jax.shard_map`` (no brainstate state is read or written in them), over a
one-axis mesh of the layout's devices; ``check_vma=False`` because the scan's carry starts replicated (the
gathered spikes) and the kernels are FFI calls without sharding rules. The host still builds the whole
network (its structure and weights, on the CPU backend) and hands each device its block.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import numpy as np

from diffbrain.errors import UserError
from diffbrain.network.memory import F32, I32, MemoryEstimate, compiled_bytes
from diffbrain.network.parallel import Layout
from diffbrain.params import ParamError

AXIS = "neurons"  # the mesh axis the neurons are split along (as the training layout's)
SIMULATION_PARALLEL = ("auto", "none", "neurons")


def check_parallel(value: str) -> None:
    """Refuse a ``parallel`` value that simulation cannot use (ParamError naming ``parallel``)."""
    if value == "data":
        raise ParamError("parallel", "simulate-network runs one trial: the data layout has no batch to split",
                         "use parallel neurons (the neurons split across devices), auto or none")
    if value not in SIMULATION_PARALLEL:
        raise ParamError("parallel", f"{value!r} is not a simulation layout",
                         f"use one of: {', '.join(SIMULATION_PARALLEL)}")


def choose_simulation_layout(parallel: str, devices: int, available: Sequence, n: int,
                             check: Callable[[int], None]) -> Layout:
    """The layout of a simulation of ``n`` neurons on at most ``devices`` of ``available`` (0: all of them).

    ``none``: one device. ``neurons``: the neurons split evenly across exactly that many devices (``n`` must
    divide: refused naming ``n`` otherwise; no padding, so every device's block is a real share). ``auto``:
    one device when the network fits it, else the neuron layout on the fewest devices (dividing ``n``) whose
    share fits, else the refusal of the largest candidate. ``check(n_devices)`` raises :class:`UserError`
    (field ``n``) when that many devices cannot hold the network.
    """
    check_parallel(parallel)
    seen = len(available)
    if devices > seen:
        raise ParamError("devices", f"{devices} devices asked for but this process sees {seen}",
                         f"give devices between 1 and {seen}, or 0 for all of them")
    want = devices or seen
    if parallel == "none" or (parallel == "neurons" and want == 1):
        check(1)
        return Layout("none", tuple(available[:1]))
    if parallel == "neurons":
        if n % want:
            divisors = [d for d in range(2, want + 1) if n % d == 0]
            raise ParamError("n", f"{n} neurons do not split evenly across {want} devices",
                             f"give an n that is a multiple of {want}"
                             + (f", or devices {divisors[-1]}" if divisors else ""))
        check(want)
        return Layout("neurons", tuple(available[:want]))
    error: UserError | None = None
    for d in [1] + [d for d in range(2, want + 1) if n % d == 0]:
        try:
            check(d)
        except UserError as err:
            error = err
            continue
        return Layout("none" if d == 1 else "neurons", tuple(available[:d]))
    raise error


def simulation_device_estimate(n: int, n_synapses: float, n_devices: int, states_per_neuron: int,
                               n_input: int = 0, chunk: int = 1) -> MemoryEstimate:
    """Bytes one device holds for a simulation under the neuron layout (``n_devices`` 1: the same program on one
    device): its CSR block (``n_synapses / D`` weights and indices, every presynaptic row's pointer), the input
    projection's columns (gif), its neurons' states (current and next), the gathered spikes and the chunk's
    packed raster of its neurons. Device bytes only: the host's copy of the network is in the
    one-device estimate. No JAX."""
    d = max(1, int(n_devices))
    local, nnz = int(n) // d, float(n_synapses) / d
    structure = int(nnz * I32 + 2 * (n + 2) * I32)  # indices, and the row pointers of the E and I rows
    weights = int(nnz * F32 + n_input * local * F32)
    states = 2 * local * states_per_neuron * F32 + 2 * int(n)  # states, the gathered spikes (booleans)
    recording = int(chunk) * (local // 8 + 1)
    return MemoryEstimate(structure, weights, states, 0, recording)


def _sharding(mesh, spec):
    from jax.sharding import NamedSharding

    return NamedSharding(mesh, spec)


def block_product(blocks) -> Callable:
    """``product(spikes [n_pre], weights, indptr, indices, n_post, native) -> [n_post]`` for one device's block of
    ``blocks`` (:class:`CSRBlocks`), its structure passed as data: the project's native kernel, or brainevent's
    kernels with a workspace sized on the host for the largest block (``blocks.capacity``,
    :func:`events.traced_structure_product`)."""
    from diffbrain.network.events import propagate, traced_structure_product

    capacity = blocks.capacity

    def product(spikes, weights, indptr, indices, n_post: int, native: bool):
        if native:
            return propagate(spikes, indptr, indices, weights, n_post, True)
        return traced_structure_product(spikes != 0, indptr, indices, weights, n_post, capacity)

    return product


def _gather(spikes):
    import jax

    return jax.lax.all_gather(spikes, AXIS, axis=spikes.ndim - 1, tiled=True)


class _ShardedProgram:
    """A compiled sharded chunk program: ``program(t0)`` advances ``chunk`` steps and returns the packed spikes,
    one block per device side by side; the states stay on their devices between calls (donated)."""

    def _compile(self, per_shard, in_specs, out_specs, args, layout: Layout, mesh):
        import jax

        self.layout, self.mesh = layout, mesh
        sharded = jax.shard_map(per_shard, mesh=mesh, in_specs=in_specs, out_specs=out_specs, check_vma=False)
        start = time.perf_counter()
        self.executable = jax.jit(sharded, donate_argnums=0).lower(*args).compile()
        self.compile_seconds = time.perf_counter() - start
        self.temp_bytes, self.argument_bytes, self.output_bytes = compiled_bytes(self.executable)


class ShardedCobaProgram(_ShardedProgram):
    """The COBA benchmark's chunk program under the neuron layout (:class:`diffbrain.network.coba.CobaProgram`'s
    counterpart). Native kernel: both row blocks as one CSR block per device, delivered in place in one call as on
    one device; brainevent: one block per projection."""

    def __init__(self, net, chunk: int, layout: Layout, native: bool | None = None):
        import jax
        import jax.numpy as jnp
        from jax.sharding import PartitionSpec as P

        from diffbrain.network.coba import coba_step
        from diffbrain.network.connectivity import Structure
        from diffbrain.network.events import deliver_split, native_available
        from diffbrain.network.neuron_parallel import CSRBlocks
        from diffbrain.network.parallel import mesh_of

        cfg = net.cfg
        self.native = native_available() if native is None else native
        self.chunk = chunk
        n, n_exc, d = cfg.n, cfg.n_exc, layout.n_devices
        local = n // d
        mesh = mesh_of(layout, AXIS, explicit=False)

        if self.native:
            whole = Structure(n, n, np.concatenate([net.exc.indptr, net.inh.indptr[1:] + net.exc.nnz]),
                              np.concatenate([net.exc.indices, net.inh.indices]))
            blocks = CSRBlocks(whole, d, mesh)
            values = np.concatenate([np.full(net.exc.nnz, cfg.w_exc, np.float32),
                                     np.full(net.inh.nnz, cfg.w_inh, np.float32)])
            synapses = (blocks.split(values), blocks.indptr, blocks.indices)
            self.block_bytes = blocks.device_bytes

            def deliver(every, syn, ge, gi):
                w, ptr, idx = syn
                return deliver_split(every, ptr, idx, w, n_exc, ge, gi)
        else:
            parts, products = [], []
            self.block_bytes = 0
            for s, w in ((net.exc, cfg.w_exc), (net.inh, cfg.w_inh)):
                blocks = CSRBlocks(s, d, mesh)
                parts.append((blocks.split(np.full(s.nnz, w, np.float32)), blocks.indptr, blocks.indices))
                products.append(block_product(blocks))
                self.block_bytes += blocks.device_bytes
            synapses = tuple(parts)

            def deliver(every, syn, ge, gi):
                (we, pe, ie), (wi, pi, ii) = syn
                return (ge + products[0](every[:n_exc], we, pe, ie, local, False),
                        gi + products[1](every[n_exc:], wi, pi, ii, local, False))

        step = coba_step(cfg, deliver, gather=_gather)

        def per_shard(state, syn, t0):
            return jax.lax.scan(lambda s, t: step(s, t, syn), state, t0 + jnp.arange(chunk, dtype=jnp.int32))

        split = _sharding(mesh, P(AXIS))
        put = lambda a: jax.device_put(np.asarray(a), split)  # noqa: E731
        self.state = (put(net.v0), put(np.zeros(n, np.float32)), put(np.zeros(n, np.float32)),
                      put(np.full(n, -(10**6), np.int32)))
        self.synapses = synapses
        self.state_bytes = 4 * local * 4
        t0 = jnp.asarray(0, dtype=jnp.int32)
        self._compile(per_shard, (P(AXIS), P(AXIS), P()), (P(AXIS), P(None, AXIS)), (self.state, synapses, t0),
                      layout, mesh)

    def __call__(self, t0):
        self.state, packed = self.executable(self.state, self.synapses, t0)
        return packed


def _gif_neurons(model, decay_adapt):
    """The per-neuron constants of an :class:`EINetwork` on one device's neurons (``decay_adapt``: the device's
    slice), with the model's own :meth:`EINetwork.spikes` and :meth:`EINetwork.advance`."""
    from diffbrain.network.model import EINetwork

    class Neurons:
        spikes = EINetwork.spikes
        advance = EINetwork.advance

    neurons = Neurons()
    for name in ("spike_fn", "decay_syn", "decay_out", "dt", "tau", "v_th", "e_exc", "e_inh", "beta", "resistance"):
        setattr(neurons, name, getattr(model, name))
    neurons.gap, neurons.decay_adapt = None, decay_adapt
    return neurons


class ShardedGifProgram(_ShardedProgram):
    """The gif preset's chunk program under the neuron layout: ``model`` (an :class:`EINetwork` built on the host,
    event-driven, no connectome) gives the structure, the weights and the constants; ``key`` the input's draws
    (``fold_in(key, t)`` per step, as :func:`diffbrain.network.simulate.simulate_gif`)."""

    def __init__(self, model, n_input: int, p_spike: float, key, chunk: int, layout: Layout,
                 native: bool | None = None):
        import braintrace
        import brainunit as u
        import jax
        import jax.numpy as jnp
        from jax.sharding import PartitionSpec as P

        from diffbrain.network.events import native_available
        from diffbrain.network.neuron_parallel import CSRBlocks, stored_values
        from diffbrain.network.parallel import mesh_of

        if model.gap is not None or model.readout_neurons is not None:
            raise ValueError("the neuron layout simulates generated networks (no connectome wiring)")
        n, n_exc, d = model.n_rec, model.n_exc, layout.n_devices
        local = n // d
        mesh = mesh_of(layout, AXIS, explicit=False)
        self.chunk = chunk
        self.native = native = native_available() if native is None else native
        projections, products, self.block_bytes = [], [], 0
        for name in ("exc", "inh"):
            blocks = CSRBlocks(getattr(model, name).structure, d, mesh)
            # the conductances |w| (Dale's law), not the stored weights: inside the loop abs(w) is loop-invariant and
            # XLA hoists it into a temporary copy of every weight (measured: half of the gif program's bytes)
            conductances = np.abs(stored_values(model, name))
            projections.append((blocks.split(conductances), blocks.indptr, blocks.indices))
            products.append(block_product(blocks))
            self.block_bytes += blocks.device_bytes
        columns = _sharding(mesh, P(None, AXIS))
        split = _sharding(mesh, P(AXIS))
        ff = jax.device_put(np.abs(np.asarray(model.ff.weight.value)), columns)
        decay_adapt = jax.device_put(np.asarray(model.decay_adapt), split)
        self.weights = (ff, tuple(projections), decay_adapt)
        self.state = jax.tree.map(lambda a: jax.device_put(np.asarray(a), split), model.state_values())
        self.state_bytes = len(model.STATES) * local * 4
        self.key = key

        def per_shard(state, weights, t0, key):
            w_ff, ((we, pe, ie), (wi, pi, ii)), decay = weights
            neurons = _gif_neurons(model, decay)

            def body(carry, t):
                states, every = carry
                x = (jax.random.uniform(jax.random.fold_in(key, t), (n_input,)) < p_spike).astype(jnp.float32)
                d_exc = (braintrace.matmul(x, w_ff) * u.siemens
                         + products[0](every[:n_exc], we, pe, ie, local, native) * u.siemens)
                d_inh = products[1](every[n_exc:], wi, pi, ii, local, native) * u.siemens
                states = neurons.advance(states, d_exc, d_inh)
                fired = neurons.spikes(states[0]) > 0
                return (states, _gather(fired)), jnp.packbits(fired)

            (state, _), packed = jax.lax.scan(body, (state, _gather(neurons.spikes(state[0]) > 0)),
                                              t0 + jnp.arange(chunk, dtype=jnp.int32))
            return state, packed

        t0 = jnp.asarray(0, dtype=jnp.int32)
        self._compile(per_shard, (P(AXIS), (P(None, AXIS), P(AXIS), P(AXIS)), P(), P()), (P(AXIS), P(None, AXIS)),
                      (self.state, self.weights, t0, key), layout, mesh)

    def __call__(self, t0):
        self.state, packed = self.executable(self.state, self.weights, t0, self.key)
        return packed


def simulate_coba_neurons(cfg, seed: int, duration_ms: float, layout: Layout, max_chunk: int = 1000,
                          native: bool | None = None, progress=None):
    """:func:`diffbrain.network.coba.simulate` under the neuron layout; a :class:`SimulationRecord` whose XLA
    figures are one device's."""
    from diffbrain.network import coba
    from diffbrain.network.simulate import SimulationRecord, chunking, run_chunks

    n_steps = max(1, int(round(duration_ms / cfg.dt)))
    net = coba.build(cfg, seed)
    _, chunk = chunking(n_steps, max_chunk)
    program = ShardedCobaProgram(net, chunk, layout, native)
    steps, neurons, seconds = run_chunks(program, None, n_steps, chunk, cfg.n, progress, layout.n_devices)
    return SimulationRecord(
        spike_step=steps, spike_neuron=neurons, is_excitatory=net.is_excitatory, n_steps=n_steps, dt=cfg.dt,
        n_synapses=net.n_synapses, build_seconds=net.build_seconds, compile_seconds=program.compile_seconds,
        run_seconds=seconds, memory=coba.memory_estimate(cfg), structure_bytes=net.exc.nbytes + net.inh.nbytes,
        state_bytes=program.state_bytes, temp_bytes=program.temp_bytes, argument_bytes=program.argument_bytes,
        output_bytes=program.output_bytes, event_kernel="native" if program.native else "brainevent",
        info={"device_block_bytes": program.block_bytes},
    )


def simulate_gif_neurons(cfg, drive, seed: int, duration_ms: float, layout: Layout, max_chunk: int = 1000,
                         progress=None, native: bool | None = None):
    """:func:`diffbrain.network.simulate.simulate_gif` under the neuron layout (the network drawn from the same
    seed, built on the host with the event-driven operator); a :class:`SimulationRecord` whose XLA figures are
    one device's."""
    from dataclasses import replace

    import brainstate
    import jax

    from diffbrain.network.model import EINetwork
    from diffbrain.network.simulate import SimulationRecord, chunking, gif_memory_estimate, run_chunks

    n_steps = max(1, int(round(duration_ms / cfg.dt)))
    _, chunk = chunking(n_steps, max_chunk)
    start = time.perf_counter()
    with jax.default_device(jax.devices("cpu")[0]):  # the whole network stays on the host
        model = EINetwork(replace(cfg, sparse_impl="event"), drive.n_input, 2, seed=seed, method="simulation")
        brainstate.nn.init_all_states(model)
    build_seconds = time.perf_counter() - start
    key = jax.random.fold_in(jax.random.PRNGKey(seed), 3)
    program = ShardedGifProgram(model, drive.n_input, drive.rate * cfg.dt / 1000.0, key, chunk, layout, native)
    steps, neurons, seconds = run_chunks(program, None, n_steps, chunk, cfg.n_rec, progress, layout.n_devices)
    exc, inh = model.exc.structure, model.inh.structure
    return SimulationRecord(
        spike_step=steps, spike_neuron=neurons, is_excitatory=model.is_excitatory(), n_steps=n_steps, dt=cfg.dt,
        n_synapses=exc.nnz + inh.nnz, build_seconds=build_seconds, compile_seconds=program.compile_seconds,
        run_seconds=seconds, memory=gif_memory_estimate(cfg, drive.n_input), structure_bytes=exc.nbytes + inh.nbytes,
        state_bytes=program.state_bytes, temp_bytes=program.temp_bytes, argument_bytes=program.argument_bytes,
        output_bytes=program.output_bytes, event_kernel="native" if program.native else "brainevent",
        info={"sparse_impl": "event", "device_block_bytes": program.block_bytes},
    )
