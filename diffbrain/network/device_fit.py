"""The run-time memory check of a training step: which layout fits this process's devices, by which figure.

A run chooses its layout with :func:`diffbrain.network.parallel.choose_layout`, the rule ``sweep plan`` applies
too, given a :class:`~diffbrain.network.parallel.MemoryFit` built here: the bytes one device holds under each
layout come from the memory planner's fit of the point's family where ``sweep plan`` cached one
(:func:`diffbrain.network.planner.cached`: XLA's memory analysis of compiled proxies, extrapolated; nothing is
compiled here), else from the analytic estimate (:func:`diffbrain.network.memory.network_estimate`, and
:func:`~diffbrain.network.parallel.neurons_device_estimate` for the neuron layout), and
``DIFFBRAIN_MEMORY_PLAN=off`` keeps to the analytic one. The limit is what an accelerator of this process
reports it may hold (``bytes_limit`` less what is in use), or on the CPU the host's available memory, shared
by the devices a layout uses (forced host devices share one memory).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from diffbrain.network.memory import MemoryEstimate, network_estimate, readable_bytes
from diffbrain.network.parallel import MemoryFit, neurons_device_estimate


def layout_estimate(net_cfg, n_in: int, method: str, batch: int, n_steps: int, test_batch: int, kind: str,
                    n: int) -> MemoryEstimate:
    """The analytic estimate of a training run as one device holds it under layout ``kind`` on ``n`` devices:
    data, its share of the trials (or the final test's ``test_batch`` on one device if more); neurons, that
    layout's own count (:func:`~diffbrain.network.parallel.neurons_device_estimate`); else the whole run."""
    if kind == "neurons" and n > 1:
        from diffbrain.network.connectivity import expected_synapses

        return neurons_device_estimate(net_cfg.n_rec, n_in, 2, n, method, batch, n_steps,
                                       sparse=net_cfg.conn_method != "dense", n_synapses=expected_synapses(net_cfg),
                                       sparse_impl=net_cfg.sparse_impl)
    trials = batch // n if kind == "data" and n > 1 else batch
    return network_estimate(net_cfg, n_in, 2, method, max(trials, test_batch), n_steps)


def analytic_need(net_cfg, n_in: int, method: str, batch: int, n_steps: int, test_batch: int = 0
                  ) -> Callable[[str, int], float]:
    """Bytes one device holds per layout by the analytic estimate: the device's part of the whole run's estimate
    (without the host's copies of the weights and structure), scaled by the layout's share
    (:func:`layout_estimate`)."""
    whole = layout_estimate(net_cfg, n_in, method, batch, n_steps, test_batch, "none", 1)
    on_device = whole.total - whole.weights / 2 - whole.structure / 2

    def need(kind: str, n: int) -> float:
        share = layout_estimate(net_cfg, n_in, method, batch, n_steps, test_batch, kind, n)
        return float(on_device * share.total / whole.total)

    return need


def device_limit(devices: Sequence) -> tuple[Callable[[int], float | None], str]:
    """(``limit(n)``: bytes a device may hold when ``n`` are used, the limit in words) for this process's
    ``devices``: an accelerator's ``bytes_limit`` less its bytes in use (every device alike: the first of
    this process's), else the host's available memory split among the ``n`` devices."""
    free = accelerator_free_bytes(devices)
    if free is not None:
        return (lambda n: free), f"each device may hold {readable_bytes(free)}"
    import psutil

    host = float(psutil.virtual_memory().available)
    return (lambda n: host / max(1, n)), f"this host has {readable_bytes(host)} available, shared by the devices used"


def accelerator_free_bytes(devices: Sequence) -> float | None:
    """Free bytes of this process's first accelerator among ``devices`` (None on the CPU, or when it reports
    no limit). Another process's devices (jax.distributed) are not asked."""
    import jax

    here = jax.process_index()
    for d in devices:
        if getattr(d, "process_index", here) != here or getattr(d, "platform", "cpu") == "cpu":
            continue
        stats = d.memory_stats() if hasattr(d, "memory_stats") else None
        if stats and "bytes_limit" in stats:
            return float(stats["bytes_limit"]) - float(stats.get("bytes_in_use", 0))
        return None
    return None


def step_fit(shape: Mapping | None, analytic: Callable[[str, int], float], devices: Sequence) -> MemoryFit:
    """The :class:`MemoryFit` of a training point of planner ``shape`` (None: not planned) on ``devices``: the
    planner's cached figures when its family was planned and the planner is on, else ``analytic``."""
    from diffbrain.network import planner

    limit, where = device_limit(devices)
    fp = planner.cached(shape) if shape is not None and planner.enabled() else None
    return MemoryFit(analytic, limit, "analytic", where) if fp is None else planner.memory_fit(fp, limit, where)
