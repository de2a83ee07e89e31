"""The one parser of ``NAME=VALUE`` assignments: command-line ``--param a=0.005``, a sweep file's
``fixed = "A1=0.5,A2=-0.1"`` and bounds ``"a=0:0.1,k1=0.1:1"``. JAX-free, so a sweep file is checked at plan.

Each function raises ``error`` (a :class:`diffbrain.errors.UserError` class: :class:`BadInput` on the command
line, :class:`diffbrain.params.ParamError` for an experiment's parameter) naming ``field``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

from diffbrain.errors import BadInput, UserError


def split_text(text: str) -> list[str]:
    """``"a=1, b=2; c=3"`` -> ``["a=1", "b=2", "c=3"]`` (commas or semicolons; empty items dropped)."""
    return [part.strip() for part in text.replace(";", ",").split(",") if part.strip()]


def pairs(items: Iterable[str], field: str, fix: str, error: type[UserError] = BadInput) -> dict[str, str]:
    """``("NAME=VALUE", ...)`` -> {name: value text}, both stripped and non-empty."""
    out = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name.strip() or not value.strip():
            raise error(field, f"{item!r} is not NAME=VALUE", fix)
        out[name.strip()] = value.strip()
    return out


def numbers(items: Iterable[str], field: str, fix: str, error: type[UserError] = BadInput) -> dict[str, float]:
    """``("NAME=NUMBER", ...)`` -> {name: finite float}."""
    out = {}
    for item in items:
        ((name, text),) = pairs([item], field, fix, error).items()
        try:
            number = float(text)
        except ValueError:
            number = math.nan
        if not math.isfinite(number):
            raise error(field, f"{item!r} is not NAME=NUMBER", fix)
        out[name] = number
    return out


def check_bounds(defaults: Mapping[str, tuple[float, float]], given: Mapping[str, tuple[float, float]],
                 owner: str, field: str, error: type[UserError] = BadInput) -> dict[str, tuple[float, float]]:
    """``defaults`` (every fitted parameter's (low, high)) with ``given`` applied, each checked: a known name,
    finite, low below high."""
    out = dict(defaults)
    for name, (low, high) in given.items():
        if name not in out:
            raise error(f"{field}.{name}", f"{name!r} is not a fitted parameter of {owner!r}",
                        f"bound one of: {', '.join(out)}")
        if not (math.isfinite(low) and math.isfinite(high)):
            raise error(f"{field}.{name}", f"bounds {low:g}:{high:g} are not finite", "give finite LO:HI")
        if low >= high:
            raise error(f"{field}.{name}", f"low {low:g} is not below high {high:g}", "give LO:HI with LO < HI")
        out[name] = (low, high)
    return out


def bounds(text: str, defaults: Mapping[str, tuple[float, float]], owner: str, field: str = "bounds",
           error: type[UserError] = BadInput) -> dict[str, tuple[float, float]]:
    """``defaults`` with ``"NAME=LO:HI,..."`` applied (:func:`check_bounds`)."""
    given = {}
    for name, rest in pairs(split_text(text), field, "write bounds like a=0:0.1,k1=0.1:1", error).items():
        low_text, colon, high_text = rest.partition(":")
        if not colon:
            raise error(field, f"'{name}={rest}' is not NAME=LO:HI", "write bounds like a=0:0.1,k1=0.1:1")
        try:
            given[name] = (float(low_text), float(high_text))
        except ValueError:
            raise error(f"{field}.{name}", f"{rest!r} is not LO:HI numbers", "write e.g. a=0:0.1") from None
    return check_bounds(defaults, given, owner, field, error)
