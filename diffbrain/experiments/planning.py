"""The memory planner as the sweeps see it: per-device bytes and the layouts of experiments' points.

An experiment that trains a network declares ``memory`` (its points' shapes, no JAX);
:func:`plan_shapes` measures each distinct shape once (XLA's memory analysis of small proxies, compiled in a
subprocess and cached on disk: :mod:`diffbrain.network.planner`) and places it within a
:class:`DeviceBudget`: the layout the run will take (the run's own rule) and the fewest devices that fit.
``sweeps`` calls this before anything is submitted.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from diffbrain.network.planner import (
    GPU_USABLE,
    DeviceBudget,
    Footprint,
    Placement,
    enabled,
    footprints,
    place,
    run_placement,
)

__all__ = ["GPU_USABLE", "DeviceBudget", "Footprint", "Placement", "enabled", "plan_shapes"]


def plan_shapes(shapes: Sequence[Mapping], budget: DeviceBudget) -> list[tuple[Footprint, Placement, Placement]]:
    """For each shape (an experiment's ``memory(params)``): its footprint, the layout the run will take on
    ``budget``'s devices (the rule the run applies, :func:`diffbrain.network.parallel.choose_layout`; its
    ``problem`` says why the run would refuse it) and the fewest devices that would fit (the point's own
    ``parallel``/``devices`` request respected in both). RuntimeError when the proxies cannot be compiled."""
    prints = footprints(shapes)
    out = []
    for fp, s in zip(prints, shapes, strict=True):
        parallel, devices = s.get("parallel", "auto"), int(s.get("devices", 0) or 0)
        out.append((fp, run_placement(fp, budget, parallel, devices), place(fp, budget, parallel, devices)))
    return out
