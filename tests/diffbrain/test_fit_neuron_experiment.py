"""The ``fit-neuron`` experiment: the store contract, compiled-program reuse, determinism, NaN and bad input."""

import json

import numpy as np
import pytest

from diffbrain.errors import BadInput
from diffbrain.experiments import ParamError, RunContext, get

TINY_HH = {"model": "hh", "duration_ms": 6.0, "starts": 3, "budget": 30}
REQUIRED = {
    "fitted": ("param",), "true_value": ("param",), "lower": ("param",), "upper": ("param",), "loss": (),
    "start_loss": ("start",), "evaluations": (), "seconds": (), "progress_seconds": ("progress",),
    "progress_loss": ("progress",), "current": ("trace", "time"), "target_voltage": ("trace", "time"),
    "fitted_voltage": ("trace", "time"), "target_spike_count": ("trace",), "fitted_spike_count": ("trace",),
}


def _run(params, seed=0, reports=None):
    ctx = RunContext(seed=seed, progress=(lambda f, m: reports.append(f)) if reports is not None else None)
    return get("fit-neuron")({**params, "seed": seed}, ctx)


def _cache_sizes():
    import importlib

    from diffbrain.fitting import lbfgsb, lm
    from diffbrain.fitting import problem as fp

    sim = importlib.import_module("diffbrain.neuron.simulate")

    jitted = [fp.batch_losses, fp.batch_objective, fp.batch_reported_loss, fp.traces_at, lm.iterate, lbfgsb.iterate,
              sim._compiled("hh")]
    return [f._cache_size() for f in jitted]


def test_tiny_point_follows_the_store_contract_and_reuses_compiled_programs():
    reports = []
    ds = _run(TINY_HH, seed=1, reports=reports)
    for name, dims in REQUIRED.items():
        assert ds[name].dims == dims, name
    assert list(ds["param"].values) == ["gL", "gNa", "gK", "VT"]
    assert ds.attrs["model"] == "hh" and ds.attrs["target"] == "potential" and ds.attrs["method"] == "gradient"
    json.dumps(ds.attrs)
    assert ds["loss"].attrs["units"] == "mV" and ds["current"].attrs["units"] == "nA"
    np.testing.assert_allclose(ds["true_value"], [0.008363657, 24.6977377, 5.8148950, -55.3109446], rtol=1e-6)
    assert (ds["fitted"] >= ds["lower"]).all() and (ds["fitted"] <= ds["upper"]).all()
    assert np.isfinite(float(ds["loss"])) and float(ds["loss"]) == pytest.approx(float(ds["start_loss"].min()))
    assert 3 <= int(ds["evaluations"]) <= 30 and ds.sizes["start"] == 3
    progress = ds["progress_loss"].values
    assert (np.diff(progress) <= 0).all() and progress[-1] == pytest.approx(float(ds["loss"]), rel=1e-4)
    assert reports and all(0.0 <= f <= 1.0 for f in reports) and reports[-1] == 1.0
    assert ds.sizes["time"] == 300 and float(ds["time"][1] - ds["time"][0]) == pytest.approx(0.02, rel=1e-4)

    # another point with other ground truth, bounds and seed but the same shapes: no new compilation
    before = _cache_sizes()
    other = _run({**TINY_HH, "true_gNa": 30.0, "bounds": "gK=1:10"}, seed=2)
    assert _cache_sizes() == before
    assert float(other["upper"][2]) == 10.0 and float(other["true_value"][1]) == 30.0
    # same seed, same result
    again = _run(TINY_HH, seed=1)
    np.testing.assert_array_equal(again["fitted"].values, ds["fitted"].values)
    assert float(again["loss"]) == float(ds["loss"])


def test_baseline_point_reports_one_start_per_population():
    ds = _run({"model": "gif", "duration_ms": 200.0, "protocol": "ramps", "method": "de", "starts": 4, "budget": 12})
    assert ds.sizes["start"] == 3 and int(ds["evaluations"]) == 12 and np.isfinite(float(ds["loss"]))
    assert ds.attrs["method"] == "de" and list(ds["param"].values) == ["a", "b", "k1", "k2"]


def test_nan_loss_comes_back_as_nan(tmp_path):
    from diffbrain.neuron import simulate
    from diffbrain.traces import protocol

    current = protocol("ramps", "gif", 100.0, 0.1, n_traces=2)
    sim = simulate("gif", current, 0.1)
    path = tmp_path / "gif.npz"
    np.savez(path, current=current, dt=0.1, voltage=sim.voltage)
    # a negative membrane time constant makes every candidate diverge while the target is finite
    ds = _run({"model": "gif", "traces": str(path), "fixed": "tau=-1", "starts": 2, "budget": 4})
    assert np.isnan(float(ds["loss"]))


def _npz_without_spikes(tmp_path):
    path = tmp_path / "v.npz"
    np.savez(path, current=np.ones((2, 50)), dt=0.1, voltage=np.full((2, 50), -65.0))
    return str(path)


@pytest.mark.parametrize("params, error, field", [
    ({"target": "spike", "traces": "NPZ"}, BadInput, "target"),
    ({"fixed": "bogus=1"}, ParamError, "fixed"),
    ({"fixed": "A1"}, ParamError, "fixed"),
    ({"bounds": "a=0.1:0.05"}, ParamError, "bounds.a"),
    ({"bounds": "gNa=0:1"}, ParamError, "bounds.gNa"),
    ({"method": "de", "starts": 1}, ParamError, "starts"),
    ({"voltage_traces": "x.csv"}, ParamError, "voltage_traces"),
    ({"traces": "/work/shared/data/hh/input_traces_hh.csv"}, BadInput, "dt_ms"),
    ({"method": "newton"}, ParamError, "method"),
    ({"model": "lif"}, ParamError, "model"),
])
def test_bad_combinations_name_the_field(tmp_path, params, error, field):
    if params.get("traces") == "NPZ":
        params = {**params, "traces": _npz_without_spikes(tmp_path)}
    with pytest.raises(error) as info:
        _run({"model": "gif", "duration_ms": 20.0, "starts": 2, "budget": 4, **params})
    assert info.value.field == field
