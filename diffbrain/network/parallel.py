"""Several devices for one training step: the data-parallel layout (the batch of trials split across devices).

A :class:`Layout` says how a step uses the devices this process sees: ``none`` (one device), ``data`` (the
trials of each batch split evenly across ``n`` devices; every device holds the whole network, advances its
own trials and computes their gradient; the gradients, the per-step losses and the recall outputs are
combined across devices before the optimiser step, which every device then applies identically) or
``neurons`` (the recurrent neurons split evenly across ``n`` devices, each holding its neurons' states and
incoming synapses: :mod:`diffbrain.network.neuron_parallel`).
:func:`choose_layout` resolves the ``parallel`` and ``devices`` parameters, given a :class:`MemoryFit` (bytes per
device of each layout, and a device's limit) checks that the layout fits, and is the one rule both ``sweep plan``
and the run apply; :func:`data_parallel` wraps a per-shard gradient function in brainstate's ``shard_map``.

Why ``check_vma=False``: JAX 0.12's shard_map checks that a loop's carry keeps its "varying across devices"
type; brainstate's ``for_loop`` (BPTT), braintrace's ES-D-RTRL loop and the project's D-RTRL scan start their
carries from constants (replicated) that become per-device values after one step, and the check refuses them
("scan body function carry input and carry output must have equal types ... manual axis types do not
match"). Nothing in the per-shard function communicates except the final ``pmean``, so the check has
nothing to protect here. No JAX is imported at module level (``sweep plan`` resolves layouts without it).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from diffbrain.network.memory import MemoryEstimate, readable_bytes
from diffbrain.params import ParamError

PARALLEL = ("auto", "none", "data", "neurons")
AXIS = "data"  # the mesh axis the batch is split along


@dataclass(frozen=True)
class Layout:
    """How one training step uses devices: ``kind`` none, data or neurons, on ``devices`` (JAX devices or names)."""

    kind: str
    devices: tuple

    @property
    def n_devices(self) -> int:
        return len(self.devices)

    def local_batch(self, batch: int) -> int:
        """Trials per device."""
        return batch // self.n_devices if self.kind == "data" else batch

    def describe(self) -> str:
        return "none" if self.kind == "none" else f"{self.kind} x{self.n_devices}"


@dataclass(frozen=True)
class MemoryFit:
    """What :func:`choose_layout` checks a layout against: ``need(kind, n)``, bytes one device holds for the
    training step under layout ``kind`` on ``n`` devices; ``limit(n)``, bytes a device may hold when ``n`` are
    used (None: unknown, never refused); ``source`` of ``need`` (``planner``: the memory planner's fit, or
    ``analytic``); ``where``: the limit in words, for the refusal."""

    need: Callable[[str, int], float]
    limit: Callable[[int], float | None]
    source: str = "analytic"
    where: str = "a device"

    def fits(self, layout: Layout) -> bool:
        limit = self.limit(layout.n_devices)
        return limit is None or self.need(layout.kind, layout.n_devices) <= limit


def auto_layouts(devices: int, available: Sequence, batch: int, n_rec: int | None = None, method: str | None = None,
                 generated: bool = True) -> list[Layout]:
    """The layouts ``auto`` tries, in order, on at most ``devices`` of ``available`` (0: all): the batch split
    over the most of them that divide it (one device when only one does), then, where the neuron layout can
    take the network (``n_rec`` splits evenly over at least two of them, bptt or expsm_diag, generated
    wiring), the neurons split over the most of them that divide ``n_rec``."""
    want = min(devices or len(available), len(available))
    n = max(d for d in range(1, want + 1) if batch % d == 0)
    out = [Layout("data" if n > 1 else "none", tuple(available[:n]))]
    if generated and n_rec and method in ("bptt", "expsm_diag"):
        m = max((d for d in range(2, want + 1) if n_rec % d == 0), default=0)
        if m:
            out.append(Layout("neurons", tuple(available[:m])))
    return out


def choose_layout(parallel: str, devices: int, available: Sequence, batch: int, n_rec: int | None = None,
                  method: str | None = None, *, memory: MemoryFit | None = None, generated: bool = True) -> Layout:
    """The layout for ``parallel`` (auto, none, data, neurons) on at most ``devices`` of ``available`` (0: all).

    ``data`` splits the batch across exactly that many devices (it must divide ``batch_size``); ``neurons``
    splits the ``n_rec`` recurrent neurons across them (they must divide evenly: padding would add neurons to
    the readout's standardisation; ``method`` bptt or expsm_diag); ``auto`` (:func:`auto_layouts`) uses every
    device it may whose count divides the batch (a user who asks the scheduler for 4 GPUs gets all 4 used)
    when a device's share fits ``memory``, else the neuron layout over those devices when that fits. With
    ``memory``, a layout that does not fit is refused (:class:`DoesNotFit`); without it nothing is checked.
    ``sweep plan`` (:mod:`diffbrain.network.planner`) and the run both call this: one rule. Raises
    :class:`ParamError`.
    """
    if parallel not in PARALLEL:
        raise ParamError("parallel", f"{parallel!r} is not a layout", f"use one of: {', '.join(PARALLEL)}")
    seen = len(available)
    if devices > seen:
        raise ParamError("devices", f"{devices} devices asked for but this process sees {seen}",
                         f"give devices between 1 and {seen}, or 0 for all of them")
    want = devices or seen
    if parallel == "auto":
        tried = auto_layouts(devices, available, batch, n_rec, method, generated)
        for layout in tried:
            if memory is None or memory.fits(layout):
                return layout
        raise DoesNotFit("n_rec", _too_large(memory, tried),
                         "use more devices (gpus_per_node, nodes, devices) or larger ones (gpu_memory_gb), or lower "
                         "n_rec, batch_size or the trial length")
    if parallel == "none" or want == 1:
        layout = Layout("none", tuple(available[:1]))
    elif parallel == "neurons":
        if method not in (None, "bptt", "expsm_diag"):
            raise ParamError("method", f"the neuron layout trains by bptt or expsm_diag, not {method}",
                             "use method bptt or expsm_diag, or parallel data or none")
        if n_rec is None or n_rec % want:
            raise ParamError("n_rec", f"{n_rec} neurons do not split evenly across {want} devices",
                             f"give an n_rec that is a multiple of {want}, or set devices")
        layout = Layout("neurons", tuple(available[:want]))
    else:
        if batch % want:
            raise ParamError("batch_size", f"{batch} trials do not split evenly across {want} devices",
                             f"give a batch_size that is a multiple of {want}, or set devices")
        layout = Layout("data", tuple(available[:want]))
    if memory is not None and not memory.fits(layout):
        try:
            other = choose_layout("auto", devices, available, batch, n_rec, method, memory=memory, generated=generated)
            fix = (f"parallel auto would use {other.describe()} "
                   f"({readable_bytes(memory.need(other.kind, other.n_devices))} per device)")
        except DoesNotFit:
            fix = "use more or larger devices, or lower n_rec, batch_size or the trial length"
        raise DoesNotFit("parallel", _too_large(memory, [layout]), fix)
    return layout


class DoesNotFit(ParamError):
    """No layout the point may take fits the devices' memory (field ``n_rec``, or ``parallel`` for the point's
    own layout)."""


def _too_large(memory: MemoryFit, tried: Sequence[Layout]) -> str:
    needs = ", ".join(f"{t.describe()} {readable_bytes(memory.need(t.kind, t.n_devices))}" for t in tried)
    return (f"the training step needs more memory per device than a device may hold ({needs} per device, "
            f"{memory.source} figure; {memory.where})")


def slots_per_neuron(n_synapses: float, n_rec: int) -> int:
    """The slots a neuron's incoming synapses get under the neuron layout's ES-D-RTRL (the largest in-degree),
    estimated before the wiring is drawn: the mean in-degree ``m`` plus five of its Poisson deviations
    ``sqrt(m)`` (for ``rand`` wiring the largest of 10^6 binomial in-degrees lies within that), at most
    ``n_rec``."""
    mean = max(1.0, float(n_synapses) / max(1, n_rec))
    return int(min(n_rec, math.ceil(mean + 5.0 * math.sqrt(mean))))


def slot_blocks(method: str, n_rec: int, n_synapses: float, sparse_impl: str = "auto") -> bool:
    """Whether the neuron layout holds a sparse projection as slots (ES-D-RTRL on the event-driven operator)
    rather than as dense columns with a mask (ES-D-RTRL on masked dense); BPTT always holds CSR blocks."""
    from diffbrain.network.crossover import choose_impl

    if sparse_impl == "auto":
        sparse_impl = choose_impl(method, n_rec, float(n_synapses) / max(1, n_rec) ** 2)
    return method != "bptt" and sparse_impl == "event"


def neurons_device_estimate(n_rec: int, n_in: int, n_out: int, n_devices: int, method: str, batch: int,
                            n_steps: int = 0, sparse: bool = True, states_per_neuron: int = 5,
                            n_synapses: float | None = None, max_in_degree: int | None = None,
                            sparse_impl: str = "auto") -> MemoryEstimate:
    """Bytes one device holds for a training step under the neuron layout (float32), the counterpart of
    :func:`diffbrain.network.memory.estimate` for a device's share: the dense column blocks of the projections
    (``n_rec (n_rec + n_in) / D``), or for sparse wiring (``n_synapses`` given) the device's CSR block under BPTT
    (``n_synapses / D`` weights, indices and mask, and the row pointers) or, under ES-D-RTRL where the one-device
    model runs the event-driven operator (``sparse_impl``; auto: the measured crossover), its neurons' slots
    (``n_rec / D x max_in_degree`` weights, presynaptic indices and mask; ``max_in_degree`` estimated by
    :func:`slots_per_neuron` when not given), else dense columns and their pattern; the readout (replicated); its
    neurons' states and the all-gathered spikes and standardised potentials (``2 B n_rec``, not divided); gradients
    and Adam's moments of its blocks; BPTT's per-step states of its neurons plus the gathered vectors every step
    keeps for the backward pass; ES-D-RTRL's presynaptic traces (the input's ``B n_in``, and ``B n_rec`` for dense
    columns or one per slot, ``B x slots``, with the step's gathered slot inputs as large again) and postsynaptic
    traces of its neurons. No JAX (planning uses it)."""
    f32 = 4
    local, b, s = n_rec // n_devices, max(1, batch), states_per_neuron
    recurrent = n_rec * local  # dense columns
    structure = 0
    presynaptic_traces = b * (n_rec + n_in) * f32
    if sparse and n_synapses is not None and method == "bptt":  # CSR blocks
        recurrent = int(n_synapses) // n_devices
        structure = recurrent * (f32 + f32) + 2 * (n_rec + 1) * f32
    elif sparse and n_synapses is not None and slot_blocks(method, n_rec, n_synapses, sparse_impl):
        recurrent = local * (max_in_degree or slots_per_neuron(n_synapses, n_rec))
        structure = recurrent * (f32 + f32)
        presynaptic_traces = 2 * b * recurrent * f32 + b * n_in * f32
    elif sparse:  # the pattern of dense columns
        structure = recurrent * f32
    params = (recurrent + n_in * local + n_rec * n_out) * f32
    gathered = 2 * b * n_rec * f32
    states = 2 * b * local * s * f32 + gathered
    training = 3 * params
    if method == "bptt":
        training += max(1, n_steps) * (b * local * (s + 3) * f32 + gathered)
    elif method == "expsm_diag":
        training += presynaptic_traces + 3 * b * local * s * f32
    return MemoryEstimate(structure, 2 * params, states, training)


def mesh_of(layout: Layout, axis: str = AXIS, explicit: bool = True):
    """The one-axis device mesh of a layout, its axis named ``axis`` (axis types given explicitly:
    ``jax.make_mesh`` and ``jax.sharding.Mesh`` default to different ones in JAX 0.12)."""
    import jax
    import numpy as np

    kind = jax.sharding.AxisType.Explicit if explicit else jax.sharding.AxisType.Auto
    return jax.sharding.Mesh(np.asarray(layout.devices), (axis,), axis_types=(kind,))


def data_parallel(local: Callable, layout: Layout, n_args: int) -> Callable:
    """``local(*per_device_args) -> (grads, losses, recall [T, b, ...])`` run on every device of ``layout``
    on its share of the ``n_args`` batch-leading arguments; returns the mean gradient and losses over
    devices (each device's are means over its own trials, and the shares are equal, so this is the mean
    over the whole batch: one device's result) and the recall outputs of the whole batch ``[T, B, ...]``.
    Call it inside a brainstate ``jit`` (brainstate's shard_map traces again on every call)."""
    import brainstate
    import jax
    from jax.sharding import PartitionSpec as P

    def combined(*args):
        grads, losses, recall = local(*args)
        mean = lambda a: jax.lax.pmean(a, AXIS)  # noqa: E731
        return jax.tree.map(mean, grads), mean(losses), recall

    return brainstate.transform.shard_map(combined, mesh_of(layout), in_specs=(P(AXIS),) * n_args,
                                          out_specs=(P(), P(), P(None, AXIS)), check_vma=False)


def device_record(layout: Layout) -> dict:
    """What a point records of its layout: the layout, the device count and kind."""
    first = layout.devices[0] if layout.devices else None
    kind = getattr(first, "device_kind", None) or getattr(first, "platform", None) or str(first)
    return {"parallel_layout": layout.kind, "n_devices": layout.n_devices, "device_kind": str(kind)}


def device_peak_bytes(devices: Sequence) -> float:
    """The largest peak bytes in use among ``devices`` of this process, where they report memory statistics; NaN
    otherwise (the CPU reports none)."""
    import jax

    peaks = []
    here = jax.process_index()
    for d in devices:
        if getattr(d, "process_index", here) != here:  # another process's device (jax.distributed): not ours to ask
            continue
        stats = d.memory_stats() if hasattr(d, "memory_stats") else None
        if stats and "peak_bytes_in_use" in stats:
            peaks.append(float(stats["peak_bytes_in_use"]))
    return max(peaks) if peaks else float("nan")
