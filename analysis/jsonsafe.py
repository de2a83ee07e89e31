"""Strict JSON for everything the toolkit writes: ``null`` for a missing or non-finite number, never ``NaN``.

Python's ``json`` writes ``NaN`` and ``Infinity`` by default, which strict parsers (JavaScript, jq, most
other languages) reject.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any


def strict(value: Any) -> Any:
    """``value`` with every non-finite float (also NumPy scalars) replaced by None, recursively."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {k: strict(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [strict(v) for v in value]
    if hasattr(value, "dtype") and hasattr(value, "item") and getattr(value, "ndim", None) == 0:
        return strict(value.item())
    return value


def dumps(value: Any, **kwargs: Any) -> str:
    """``json.dumps`` of :func:`strict` ``value``, refusing anything that is still not strict JSON."""
    return json.dumps(strict(value), allow_nan=False, **kwargs)
