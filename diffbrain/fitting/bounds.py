"""Search bounds: the model's defaults overridden by the user's, checked; no JAX (``sweep plan`` uses it).

One parser for every caller: the ``fit`` command (``--bounds``), the ``fit-neuron`` experiment (its ``bounds``
parameter, checked at plan) and :func:`diffbrain.fitting.make_problem` (a mapping).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from diffbrain.errors import BadInput


def parse_bounds(model: str, bounds: Mapping[str, tuple[float, float]] | None = None,
                 field: str = "bounds") -> dict[str, tuple[float, float]]:
    """The model's default bounds overridden by ``bounds`` {name: (low, high)}, checked (BadInput naming ``field``)."""
    from diffbrain.neuron import get_model

    out = get_model(model).bounds()
    for name, pair in dict(bounds or {}).items():
        if name not in out:
            raise BadInput(f"{field}.{name}", f"{name!r} is not a fitted parameter of {model!r}",
                           f"bound one of: {', '.join(out)}")
        try:
            low, high = (float(x) for x in pair)
        except (TypeError, ValueError):
            raise BadInput(f"{field}.{name}", f"{pair!r} is not LO:HI numbers", "write e.g. a=0:0.1") from None
        if not (math.isfinite(low) and math.isfinite(high)):
            raise BadInput(f"{field}.{name}", f"bounds {low:g}:{high:g} are not finite", "give finite LO:HI")
        if low >= high:
            raise BadInput(f"{field}.{name}", f"low {low:g} is not below high {high:g}", "give LO:HI with LO < HI")
        out[name] = (low, high)
    return out


def parse_bounds_text(model: str, text: str, field: str = "bounds") -> dict[str, tuple[float, float]]:
    """Bounds from ``"NAME=LO:HI,NAME=LO:HI"`` (``;`` also separates; empty: the model's defaults)."""
    pairs: dict[str, tuple[str, str]] = {}
    for item in (part.strip() for part in text.replace(";", ",").split(",")):
        if not item:
            continue
        name, sep, rest = item.partition("=")
        low, colon, high = rest.partition(":")
        if not sep or not colon or not name.strip():
            raise BadInput(field, f"{item!r} is not NAME=LO:HI", "write bounds like a=0:0.1,k1=0.1:1")
        pairs[name.strip()] = (low, high)
    return parse_bounds(model, pairs, field)
