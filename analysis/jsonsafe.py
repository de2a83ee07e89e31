"""Strict JSON for everything the toolkit writes: ``null`` for a missing or non-finite number, never ``NaN``;
and the one reader of the JSON files it keeps (metadata, indexes, lock owners).

Python's ``json`` writes ``NaN`` and ``Infinity`` by default, which strict parsers (JavaScript, jq, most
other languages) reject.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
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


def load_json(path: Path) -> tuple[Any, str | None]:
    """(document, None); (None, None) when the file is absent; (None, why) when it is there but unreadable."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except (FileNotFoundError, NotADirectoryError):
        return None, None
    except OSError as err:
        return None, f"cannot be read ({err.strerror})"
    try:
        return json.loads(data), None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        return None, f"does not parse ({type(err).__name__}: {err})"


def read_json(path: Path) -> dict | None:
    """The JSON object in ``path``, or None when it is absent, unreadable or not an object."""
    doc, _ = load_json(path)
    return doc if isinstance(doc, dict) else None
