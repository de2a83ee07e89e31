"""The memory planner as the sweeps see it: per-device bytes and the smallest layout of experiments' points.

An experiment that trains a network declares ``memory`` (its points' shapes, no JAX);
:func:`plan_shapes` measures each distinct shape once (XLA's memory analysis of small proxies, compiled in a
subprocess and cached on disk: :mod:`diffbrain.network.planner`) and places it within a
:class:`DeviceBudget`. ``sweeps`` calls this before anything is submitted.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from diffbrain.network.planner import GPU_USABLE, DeviceBudget, Footprint, Placement, footprints, place

__all__ = ["GPU_USABLE", "DeviceBudget", "Footprint", "Placement", "plan_shapes"]


def plan_shapes(shapes: Sequence[Mapping], budget: DeviceBudget) -> list[tuple[Footprint, Placement]]:
    """For each shape (an experiment's ``memory(params)``): its footprint and the layout the planner picks
    within ``budget`` (the point's own ``parallel``/``devices`` request respected). RuntimeError when the
    proxies cannot be compiled."""
    prints = footprints(shapes)
    return [(fp, place(fp, budget, s.get("parallel", "auto"), int(s.get("devices", 0) or 0)))
            for fp, s in zip(prints, shapes, strict=True)]
