"""Simulate a neuron model on a batch of current traces: the unit-checked public entry point.

Compiled programs are cached by model and shapes only: parameters, constants, currents and ``dt`` are
traced arguments, so new values never recompile.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np

from diffbrain.errors import BadInput
from diffbrain.neuron.base import NeuronModel, to_number


def get_model(name: str) -> NeuronModel:
    """The model registered as ``name`` (``gif`` or ``hh``); BadInput naming ``model`` otherwise."""
    from diffbrain.neuron import MODELS

    if name not in MODELS:
        raise BadInput("model", f"unknown model {name!r}", f"use one of: {', '.join(sorted(MODELS))}")
    return MODELS[name]


@cache
def _compiled(model_name: str):
    import jax

    model = get_model(model_name)
    return jax.jit(model.simulate)


def run(model: NeuronModel, theta, constants, current_tb, dt):
    """The jitted simulator on arrays: ``current_tb`` [T, B] nA -> (V, spikes, lag) [T, B]."""
    return _compiled(model.name)(theta, constants, current_tb, dt)


@dataclass
class Simulation:
    """Result of :func:`simulate`: arrays [B, T] (NumPy), ``dt`` in ms."""

    voltage: np.ndarray  # mV
    spikes: np.ndarray  # 0/1
    current: np.ndarray  # nA
    dt: float  # ms

    def spike_counts(self) -> np.ndarray:
        return self.spikes.sum(axis=1).astype(np.int64)


def simulate(model: str | NeuronModel, current: Any, dt: Any, params: Mapping[str, Any] | None = None) -> Simulation:
    """Simulate ``model`` on ``current`` [B, T] (nA, or a brainunit quantity) with step ``dt`` (ms).

    ``params`` sets fitted or fixed parameters by name (numbers in the model's units, or quantities);
    missing ones take the model's defaults. Returns voltage (mV) and spikes, both [B, T].
    """
    import jax.numpy as jnp

    model = get_model(model) if isinstance(model, str) else model
    units = model.units()
    values = {}
    for name, value in dict(params or {}).items():
        if name not in units:
            raise BadInput(f"param.{name}", f"model {model.name!r} has no parameter {name!r}",
                           f"use one of: {', '.join(units)}")
        values[name] = float(to_number(value, units[name], f"param.{name}"))
    current = np.asarray(to_number(current, "nA", "current"), dtype=np.float64)
    if current.ndim == 1:
        current = current[None, :]
    if current.ndim != 2 or current.shape[1] < 2:
        raise BadInput("current", f"shape {current.shape} is not [traces, time]", "give a 2-d array [B, T]")
    if not np.isfinite(current).all():
        raise BadInput("current", "contains NaN or infinite values", "remove or fill them")
    dt = float(to_number(dt, "ms", "dt"))
    if not dt > 0:
        raise BadInput("dt", f"{dt!r} is not a positive time step", "give dt in ms, e.g. 0.1")
    dtype = jnp.result_type(float)
    theta = jnp.asarray(model.theta(values), dtype)
    constants = jnp.asarray(model.constants(values), dtype)
    v, s, _ = run(model, theta, constants, jnp.asarray(current.T, dtype), jnp.asarray(dt, dtype))
    return Simulation(voltage=np.asarray(v).T, spikes=np.asarray(s).T, current=current, dt=dt)
