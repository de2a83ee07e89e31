"""A fitting problem as one JAX pytree: model, target, traces, fixed constants and search bounds.

Every method searches the unit box u in [0, 1]^P, mapped linearly onto the bounds, so one
parameterisation serves the gradient method and the gradient-free baselines alike. The model name,
target kind, number of sampled points, the coincidence window (in steps), the room for data spikes
per trace (a power of two) and whether the model has a spike-forced warm start are static; everything
else (traces, targets, constants, bounds, dt, delta) is a traced array, so fits of new data with the
same shapes reuse the compiled programs.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from diffbrain import assignments, losses
from diffbrain.errors import BadInput
from diffbrain.neuron import get_model
from diffbrain.traces import Traces

TARGETS = ("potential", "spike")


@partial(jax.tree_util.register_dataclass,
         data_fields=["current", "dt", "target_voltage", "target_spikes", "forced", "constants", "lower", "upper",
                      "delta"],
         meta_fields=["model", "target", "points", "window", "capacity", "warm"])
@dataclasses.dataclass(frozen=True)
class FitProblem:
    """What to fit: arrays [T, B] (time first), ``lower``/``upper`` [P] in the model's units.

    ``forced`` holds the data's spike samples (given, or read off the target voltage) for the spike-forced
    warm start of threshold models (``warm``).
    """

    model: str
    target: str
    points: int
    window: int
    capacity: int
    warm: bool
    current: jax.Array
    dt: jax.Array
    target_voltage: jax.Array
    target_spikes: jax.Array
    forced: jax.Array
    constants: jax.Array
    lower: jax.Array
    upper: jax.Array
    delta: jax.Array

    @property
    def names(self) -> tuple[str, ...]:
        return get_model(self.model).fitted_names

    def to_params(self, u) -> jax.Array:
        """Unit-box coordinates -> model parameters (works on [..., P])."""
        return self.lower + jnp.asarray(u) * (self.upper - self.lower)

    def to_unit(self, theta) -> jax.Array:
        return (jnp.asarray(theta) - self.lower) / (self.upper - self.lower)


def parse_bounds(model: str, bounds: Mapping[str, tuple[float, float]] | None, field: str = "bounds") -> dict:
    """The model's default bounds overridden by ``bounds`` {name: (low, high)}, checked (BadInput)."""
    given = {}
    for name, pair in dict(bounds or {}).items():
        try:
            given[name] = tuple(float(x) for x in pair)
            low, high = given[name]
        except (TypeError, ValueError) as exc:
            raise BadInput(f"{field}.{name}", f"{pair!r} is not two numbers", "give LOW:HIGH") from exc
    return assignments.check_bounds(get_model(model).bounds(), given, model, field)


def parse_bounds_text(model: str, text: str, field: str = "bounds") -> dict:
    """Bounds from ``"NAME=LO:HI,NAME=LO:HI"`` (empty: the model's defaults)."""
    return assignments.bounds(text, get_model(model).bounds(), model, field)


def make_problem(model: str, target: str, traces: Traces, bounds: Mapping | None = None,
                 fixed: Mapping[str, float] | None = None, points: int = 0,
                 delta_ms: float | None = None) -> FitProblem:
    """Build a :class:`FitProblem` from loaded or synthetic traces (checks that they serve ``target``)."""
    neuron = get_model(model)
    if target not in TARGETS:
        raise BadInput("target", f"unknown target {target!r}", f"use one of: {', '.join(TARGETS)}")
    traces.require(target)
    if points < 0:
        raise BadInput("points", f"{points} sampled points", "give 0 (whole trace) or a positive number")
    delta = float(neuron.gamma_delta_ms if delta_ms is None or delta_ms == 0 else delta_ms)
    if delta <= 0:
        raise BadInput("delta_ms", f"{delta} ms", "give a positive coincidence window")
    if target == "spike":
        losses.check_gamma_window(traces.spikes.T, traces.dt, delta)
    box = parse_bounds(model, bounds)
    dtype = jnp.result_type(float)
    zeros = np.zeros_like(traces.current.T)
    constants = neuron.constants(fixed)
    warm = neuron.simulate_forced is not None
    if not warm:
        forced = zeros
    elif target == "spike":
        forced = traces.spikes.T
    else:  # a potential target: only what the voltage shows
        forced = neuron.spikes_from_voltage(traces.voltage, constants).T
    return FitProblem(
        model=model,
        target=target,
        points=int(points),
        window=losses.window_steps(delta, traces.dt) if target == "spike" else 0,
        capacity=losses.spike_capacity(traces.spikes.T) if target == "spike" else 0,
        warm=warm,
        current=jnp.asarray(traces.current.T, dtype),
        dt=jnp.asarray(traces.dt, dtype),
        target_voltage=jnp.asarray(zeros if traces.voltage is None else traces.voltage.T, dtype),
        target_spikes=jnp.asarray(zeros if traces.spikes is None else traces.spikes.T, dtype),
        forced=jnp.asarray(forced, dtype),
        constants=jnp.asarray(constants, dtype),
        lower=jnp.asarray([box[n][0] for n in neuron.fitted_names], dtype),
        upper=jnp.asarray([box[n][1] for n in neuron.fitted_names], dtype),
        delta=jnp.asarray(delta, dtype),
    )


def simulate_params(problem: FitProblem, theta):
    """(V, spikes, lag) [T, B] of the problem's model at parameters ``theta`` [P]."""
    model = get_model(problem.model)
    return model.simulate(theta, problem.constants, problem.current, problem.dt)


def objective(problem: FitProblem, u):
    """The minimised objective at unit-box point ``u`` [P]: voltage MSE (mV^2) or the smooth gamma loss."""
    v, s, lag = simulate_params(problem, problem.to_params(u))
    if problem.target == "potential":
        return losses.voltage_mse(v, problem.target_voltage, problem.points)
    per_trace = losses.gamma_factor_loss(s, lag, problem.target_spikes, problem.dt, problem.delta, problem.window,
                                         problem.capacity)
    return jnp.mean(per_trace)


def _voltage_residuals(problem: FitProblem, v):
    index = losses.sample_indices(v.shape[0], problem.points)
    if len(index) < v.shape[0]:
        v, target = v[index], problem.target_voltage[index]
    else:
        target = problem.target_voltage
    return (v - target).ravel() / jnp.sqrt(float(target.size))


def residuals(problem: FitProblem, u, forcing=None):
    """Residuals [M] at unit-box point ``u`` [P], scaled so that ``sum(r**2)`` is the objective.

    Potential targets: voltage errors / sqrt(M) (``objective``). With ``forcing`` (a traced 0/1; threshold
    models) also the spike-forced terms of :func:`warm_objective`: 1 gives that objective as a sum of squares
    (imposed spikes, threshold penalty), 0 the free-running objective (the penalty's residuals are zero), in
    one program. Spike targets (with ``forcing``): the threshold penalty's residuals, ``warm_objective``.
    """
    model = get_model(problem.model)
    theta = problem.to_params(u)
    if forcing is None or model.simulate_forced is None:
        v, _, _ = model.simulate(theta, problem.constants, problem.current, problem.dt)
        return _voltage_residuals(problem, v)
    v, x, x_before = model.simulate_forced(theta, problem.constants, problem.current, problem.dt, problem.forced,
                                           forcing)
    scale = forcing / jnp.sqrt(jnp.maximum(jnp.sum(problem.forced), 1.0))  # losses.threshold_penalty, squared
    crossing = problem.forced * 0.5 * (x + x_before)
    above = (1.0 - problem.forced) * jax.nn.relu(x)
    penalty = [scale * crossing.ravel(), scale * above.ravel()]
    if problem.target == "spike":  # the spike-forced objective of a spike target is the penalty alone
        return jnp.concatenate(penalty)
    return jnp.concatenate([_voltage_residuals(problem, v), *penalty])


def warm_objective(problem: FitProblem, u):
    """The spike-forced objective of threshold models: with the data's spikes imposed, the voltage MSE (potential
    targets) plus :func:`losses.threshold_penalty` (mV^2). Smooth where the free-running objective jumps
    whenever a spike appears or vanishes; its minimum lies close to the free-running one."""
    model = get_model(problem.model)
    v, x, x_before = model.simulate_forced(problem.to_params(u), problem.constants, problem.current, problem.dt,
                                           problem.forced)
    penalty = losses.threshold_penalty(x, x_before, problem.forced)
    if problem.target == "potential":
        return losses.voltage_mse(v, problem.target_voltage, problem.points) + penalty
    return penalty


def reported_loss(problem: FitProblem, u):
    """The loss reported to users: voltage RMSE (mV) or the exact gamma-factor loss (brian2modelfitting's)."""
    v, s, _ = simulate_params(problem, problem.to_params(u))
    if problem.target == "potential":
        return losses.voltage_rmse(v, problem.target_voltage, problem.points)
    per_trace = losses.gamma_factor_exact(s, problem.target_spikes, problem.dt, problem.delta, problem.window,
                                          problem.capacity)
    return jnp.mean(per_trace)


def losses_at(problem: FitProblem, u):
    """(objective, reported loss) at ``u`` [P] from one simulation (RMSE is the objective's square root)."""
    v, s, lag = simulate_params(problem, problem.to_params(u))
    if problem.target == "potential":
        mse = losses.voltage_mse(v, problem.target_voltage, problem.points)
        return mse, jnp.sqrt(mse)
    smooth = losses.gamma_factor_loss(s, lag, problem.target_spikes, problem.dt, problem.delta, problem.window,
                                      problem.capacity)
    exact = losses.gamma_factor_exact(s, problem.target_spikes, problem.dt, problem.delta, problem.window,
                                      problem.capacity)
    return jnp.mean(smooth), jnp.mean(exact)


# Compiled once per (static fields, shapes); the problem is an argument, never a closure constant.
batch_losses = jax.jit(jax.vmap(losses_at, in_axes=(None, 0)))  # what the screen and the baselines evaluate
batch_objective = jax.jit(jax.vmap(objective, in_axes=(None, 0)))
batch_reported_loss = jax.jit(jax.vmap(reported_loss, in_axes=(None, 0)))


@jax.jit
def batch_spike_counts(problem: FitProblem, u):
    """Spike counts per trace [S, B] at unit-box points ``u`` [S, P]."""
    return jax.vmap(lambda x: jnp.sum(simulate_params(problem, problem.to_params(x))[1], axis=0))(u)


@jax.jit
def traces_at(problem: FitProblem, u):
    """(V, spikes) [T, B] at one unit-box point ``u`` [P]."""
    v, s, _ = simulate_params(problem, problem.to_params(u))
    return v, s
