"""The registry of executor backends: name -> module defining ``BACKEND`` (a :class:`Backend`), imported on
first use. ``auto`` asks each backend with an ``auto_priority`` whether it can run here (SLURM when ``sbatch``
is on PATH and its controller answers, a short cached probe: :mod:`slurm.probe`; else this machine).

To add a backend: a module here with a :class:`Backend` subclass and ``BACKEND = ...``, and its name below.
"""

from __future__ import annotations

import importlib

from slurm.backends.base import ACTIVE, RUNNING_STATES, Backend, SubmitError

__all__ = ["ACTIVE", "AUTO", "RUNNING_STATES", "Backend", "SubmitError", "choices", "choose", "get", "names", "resolve"]

AUTO = "auto"
_MODULES: dict[str, str] = {
    "local": "slurm.backends.local",
    "slurm": "slurm.backends.slurm",
    "debug": "slurm.backends.debug",
}


def names() -> tuple[str, ...]:
    """The registered backends, in the order the help lists them."""
    return tuple(_MODULES)


def choices() -> tuple[str, ...]:
    """What ``executor`` may be: ``auto`` or a registered backend."""
    return (AUTO, *_MODULES)


def get(name: str) -> Backend:
    """The backend registered as ``name`` (ValueError if unknown: the sweep file's check names the choices)."""
    if name not in _MODULES:
        raise ValueError(f"unknown executor {name!r}; use one of: {', '.join(choices())}")
    backend = importlib.import_module(_MODULES[name]).BACKEND
    assert backend.name == name, (backend.name, name)
    return backend


def resolve(name: str) -> Backend:
    """The backend for ``executor = name``; ``auto``: the first backend, by priority, that can run here."""
    return choose(name)[0]


def choose(name: str) -> tuple[Backend, str]:
    """(the backend for ``executor = name``, why ``auto`` chose it: '' for a named one)."""
    if name != AUTO:
        return get(name), ""
    candidates = sorted((b for b in map(get, _MODULES) if b.auto_priority is not None), key=lambda b: b.auto_priority)
    passed = []
    for backend in candidates:
        ok, why = backend.availability()
        if ok:
            return backend, "; ".join([*passed, why] if why else passed)
        passed.append(f"not {backend.name}: {why}" if why else f"not {backend.name}")
    raise RuntimeError("no executor backend can run here")  # the local backend always can
