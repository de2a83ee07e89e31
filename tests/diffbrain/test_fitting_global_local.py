"""Issue 13: the gradient method as a screen then polishing: the progress record starts with the screen, budgets count
forward-equivalents for every method, and hidden parameters are recovered (GIF and HH, potential and spike
targets, and the recorded HH traces)."""

import math

import numpy as np
import pytest

from diffbrain.fitting import GRADIENT_BUDGET, costs, default_budget, fit, make_problem, screen
from diffbrain.fitting import problem as fp
from diffbrain.neuron import get_model, simulate
from diffbrain.traces import Traces, load_csv, protocol

HH_DATA = "/work/shared/data/hh/"


def _target(model, duration, target="potential", truth=None, n_traces=5):
    neuron = get_model(model)
    current = protocol("steps", model, duration, neuron.default_dt_ms, n_traces=n_traces)
    sim = simulate(model, current, neuron.default_dt_ms, truth)
    values = {**neuron.defaults(), **(truth or {})}
    return (make_problem(model, target, Traces(current, sim.dt, sim.voltage, sim.spikes)),
            np.asarray([values[name] for name in neuron.fitted_names]))


def test_the_first_recorded_loss_comes_from_the_first_screen_batch():
    import jax.numpy as jnp

    problem, _ = _target("hh", 6.0, truth={"gNa": 30.0, "VT": -58.0}, n_traces=3)
    messages = []
    result = fit(problem, "gradient", starts=2, budget=400, seed=3, report=lambda fraction, text: messages.append(text))
    size, batch = result.info["screen"], result.info["screen_batch"]
    assert size >= 2 * batch and messages[0].startswith(f"screen {batch}/{size}")
    first_batch = screen.design(len(problem.names), size, 3)[:batch]
    objective, reported = (np.asarray(x) for x in fp.batch_losses(problem, jnp.asarray(first_batch, jnp.float32)))
    assert result.progress_loss[0] == pytest.approx(math.sqrt(objective.min()), rel=1e-6)
    np.testing.assert_allclose(reported, np.sqrt(objective), rtol=1e-6)
    # the screen's records, then the polisher's; the best loss only falls, down to the result's
    polished = [m for m in messages if not m.startswith("screen")]
    assert len(messages) - len(polished) == size // batch and polished and "Levenberg-Marquardt" in polished[-1]
    assert all(m.startswith("screen") for m in messages[:size // batch])
    assert (np.diff(result.progress_loss) <= 0).all() and result.progress_loss[-1] == pytest.approx(result.loss)
    assert result.progress_seconds[0] <= result.info["screen_seconds"]


def test_budgets_count_forward_equivalents_for_every_method():
    problem, _ = _target("hh", 4.0, n_traces=2)
    by_method = {method: fit(problem, method, starts=4, budget=300, seed=1) for method in ("gradient", "de")}
    assert all(r.evaluations <= 300 for r in by_method.values())
    assert by_method["de"].evaluations == 300  # one forward per candidate
    info = by_method["gradient"].info
    counts, multiples = info["evaluations_by_kind"], info["forward_equivalents_per_evaluation"]
    assert counts["forward"] == info["screen"] and counts["jacobian"] == sum(s["evaluations"] for s in info["stages"])
    total = sum(counts[k] * multiples[k] for k in counts)
    assert total == pytest.approx(info["forward_equivalents"]) and by_method["gradient"].evaluations == math.ceil(total)
    assert multiples == {"forward": 1.0, **costs.MULTIPLES[("hh", "potential")]}
    assert min(costs.MULTIPLES[("hh", "potential")].values()) > 1.0
    assert default_budget("gradient", 4) == GRADIENT_BUDGET and default_budget("de", 20) == 100


def test_a_screened_exact_fit_ends_the_search():
    problem, _ = _target("hh", 8.0, target="spike", n_traces=3)
    result = fit(problem, "gradient", starts=2, budget=600, seed=0)
    assert result.loss == 0.0 and set(result.info["status"]) == {"exact fit"}
    assert result.evaluations == result.info["screen"] and result.info["evaluations_by_kind"]["jacobian"] == 0


@pytest.mark.slow
@pytest.mark.parametrize("model, duration, truth", [
    ("gif", 500.0, {"a": 0.01, "b": 0.02, "k1": 0.35, "k2": 0.04}),
    ("hh", 14.97, {"gL": 0.02, "gNa": 30.0, "gK": 8.0, "VT": -58.0}),
])
def test_hidden_parameters_are_recovered_from_a_potential_target(model, duration, truth):
    problem, hidden = _target(model, duration, truth=truth)
    result = fit(problem, "gradient", seed=0)
    np.testing.assert_allclose(result.best, hidden, rtol=0.05)
    assert result.loss < 0.01 and result.evaluations <= GRADIENT_BUDGET
    assert result.info["warm_start"] == (model == "gif")


@pytest.mark.slow
def test_hidden_gif_parameters_are_recovered_from_spike_times():
    problem, hidden = _target("gif", 1000.0, target="spike", truth={"a": 0.008, "b": 0.015, "k1": 0.3, "k2": 0.03})
    result = fit(problem, "gradient", seed=0)
    np.testing.assert_allclose(result.best, hidden, rtol=0.05)
    assert result.loss <= 0.05 and result.info["warm_start"]


@pytest.mark.slow
def test_recorded_hh_traces_reach_the_noise_floor():
    data = load_csv(HH_DATA + "input_traces_hh.csv", HH_DATA + "output_traces_hh.csv", 0.01)
    result = fit(make_problem("hh", "potential", data), "gradient", seed=0)
    # the generating values of brian2modelfitting's example (tests/diffbrain/test_neuron_models.py)
    error = {k: abs(v / truth - 1.0) for (k, v), truth in zip(result.params.items(), (0.01, 20.0, 6.0, -63.0),
                                                                strict=True)}
    assert result.loss <= 1.10
    assert error["gNa"] <= 0.05 and error["gK"] <= 0.05 and error["VT"] <= 0.05 and error["gL"] <= 0.20
