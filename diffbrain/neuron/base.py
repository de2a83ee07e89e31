"""What a neuron model is to the rest of the toolkit: named parameters with units, defaults and bounds,
and one pure JAX function that simulates a batch of current traces.

A model's ``step_scan`` works on plain ``jnp`` arrays in the documented units (mV, ms, nA, uS, nF,
MOhm) so that the fitted path is one fast ``lax.scan``; units are checked at the boundary
(:func:`to_number`). JAX is imported inside functions only.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

from diffbrain.errors import BadInput


@dataclass(frozen=True)
class ModelParam:
    """One model parameter: name, unit (``"1/ms"``, ``"mV"``, ...), default and, if fitted, search bounds."""

    name: str
    unit: str
    default: float
    help: str = ""
    lower: float | None = None
    upper: float | None = None


@dataclass(frozen=True)
class NeuronModel:
    """A neuron model: fitted and fixed parameters, defaults, and the batched simulator.

    ``simulate(theta, constants, current, dt) -> (V, spikes, lag)`` takes ``theta`` [P] (fitted
    parameters in ``fitted`` order), ``constants`` [C] (fixed parameters in ``fixed`` order),
    ``current`` [T, B] in nA and ``dt`` in ms, and returns arrays [T, B]: ``V`` in mV sampled at the
    start of every step (``V[0]`` is the initial state), ``spikes`` in {0, 1} (forward exact, surrogate
    gradient), 1 at sample t when the trace crossed threshold since sample t-1, and ``lag`` in [0, 1):
    how many steps before sample t the crossing happened (linear interpolation; differentiable).
    """

    name: str
    fitted: tuple[ModelParam, ...]
    fixed: tuple[ModelParam, ...]
    simulate: Callable[..., Any]
    default_dt_ms: float
    default_duration_ms: float
    current_scale_na: float  # a typical suprathreshold current, for synthetic protocols
    gamma_delta_ms: float  # default coincidence window of the gamma factor
    spikes_from_voltage: Callable[..., Any]  # (voltage [B, T] mV, constants [C]) -> spikes [B, T] of 0/1
    help: str = ""
    # Optional: (theta, constants, current, dt, forced [T, B], forcing) -> (V, x, x_before) with spikes imposed at
    # ``forced`` (``forcing`` 1; 0 runs free in the same program); models that have it can get a spike-forced
    # warm start in gradient fits (threshold models).
    simulate_forced: Callable[..., Any] | None = None

    @property
    def fitted_names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.fitted)

    @property
    def fixed_names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.fixed)

    def units(self) -> dict[str, str]:
        return {p.name: p.unit for p in self.fitted + self.fixed}

    def defaults(self) -> dict[str, float]:
        """Fitted parameters at their reference (paper) values."""
        return {p.name: p.default for p in self.fitted}

    def bounds(self) -> dict[str, tuple[float, float]]:
        """The paper's search bounds of every fitted parameter."""
        return {p.name: (p.lower, p.upper) for p in self.fitted}

    def theta(self, values: Mapping[str, float] | None = None, field: str = "param") -> list[float]:
        """Fitted parameters in order: defaults overridden by ``values`` (BadInput for unknown names)."""
        values = dict(values or {})
        unknown = sorted(set(values) - set(self.fitted_names) - set(self.fixed_names))
        if unknown:
            raise BadInput(f"{field}.{unknown[0]}", f"model {self.name!r} has no parameter {unknown[0]!r}",
                           f"use one of: {', '.join(self.fitted_names + self.fixed_names)}")
        return [float(values.get(p.name, p.default)) for p in self.fitted]

    def constants(self, values: Mapping[str, float] | None = None, field: str = "fixed") -> list[float]:
        """Fixed parameters in order: defaults overridden by ``values`` (fitted names are ignored)."""
        values = dict(values or {})
        unknown = sorted(set(values) - set(self.fitted_names) - set(self.fixed_names))
        if unknown:
            raise BadInput(f"{field}.{unknown[0]}", f"model {self.name!r} has no parameter {unknown[0]!r}",
                           f"use one of: {', '.join(self.fixed_names)}")
        return [float(values.get(p.name, p.default)) for p in self.fixed]


def exprel(z):
    """(exp(z) - 1) / z, finite and smooth at z = 0 (also under ``jax.grad``)."""
    import jax.numpy as jnp

    small = jnp.abs(z) < 1e-3
    safe = jnp.where(small, 1.0, z)
    return jnp.where(small, 1.0 + z / 2.0 + z * z / 6.0, jnp.expm1(safe) / safe)


def spike_function():
    """Heaviside forward, triangular (ReLU) surrogate gradient of unit half-width.

    The same function as ``braintools.surrogate.ReluGrad(alpha=1, width=1)`` (a test checks values, first and
    second derivatives against it), written as a ``jax.custom_jvp`` here because importing braintools takes
    seconds (it loads brainstate, scipy.signal and matplotlib), more than a whole neuron fit by gradient.
    """
    return _relu_grad_spike()


@cache
def _relu_grad_spike():
    import jax
    import jax.numpy as jnp

    @jax.custom_jvp
    def spike(x):
        return (x >= 0).astype(x.dtype)

    @spike.defjvp
    def _spike_jvp(primals, tangents):
        (x,), (dx,) = primals, tangents
        return spike(x), jax.nn.relu(1.0 - jnp.abs(x)) * dx

    return spike


def crossing_lag(x_before, x_after):
    """Fraction of a step before its end at which ``x`` crossed 0 upward (linear interpolation, in [0, 1))."""
    import jax.numpy as jnp

    rise = x_after - x_before
    safe = jnp.where(rise > 0, rise, 1.0)
    return jnp.clip(jnp.where(rise > 0, x_after / safe, 0.0), 0.0, 1.0 - 1e-6)


# Rematerialise a scan's step (jax.checkpoint: recompute it in the backward pass instead of storing it) for
# traces longer than this many neuron-steps (time steps x traces): all of them. Measured with
# bench/fit_eval_cost.py --no-remat on 2 CPU cores, 20 starts, where memory is no concern (a few MB): storing the
# per-step values made a value-and-gradient 1.0-2x slower for GIF and 2x slower for HH than recomputing them.
REMAT_ABOVE_NEURON_STEPS = 0


def scan_step(step, shape: tuple[int, int]):
    """``step`` for ``lax.scan`` over inputs [T, B]: rematerialised when T x B exceeds REMAT_ABOVE_NEURON_STEPS."""
    import jax

    return jax.checkpoint(step) if shape[0] * shape[1] > REMAT_ABOVE_NEURON_STEPS else step


def to_number(value: Any, unit: str, field: str) -> Any:
    """A plain float (array) in ``unit``: brainunit quantities are converted, numbers taken as given.

    ``unit`` is a brainunit attribute name such as ``"mV"``, ``"nA"``, ``"ms"``, ``"uS"``.
    """
    try:
        import brainunit as bu
    except ImportError:  # pragma: no cover - brainunit is a pinned dependency
        return value
    if isinstance(value, bu.Quantity):
        target = {"1/ms": "kHz", "1": None}.get(unit, unit)
        try:
            if target is None:
                return value.to_decimal()
            return value.to_decimal(getattr(bu, target))
        except Exception as exc:  # brainunit raises its own mismatch error
            raise BadInput(field, f"has units {value.unit}, expected {unit}", f"give a quantity in {unit}") from exc
    return value
