"""``scaling-probe``: its dataset, and the memory law it exists to show (BPTT grows with T, online does not)."""

import json
import math

import pytest

from diffbrain.experiments import ParamError, get
from diffbrain.experiments.scaling_probe import probe_task
from diffbrain.network import planner
from diffbrain.network.config import NetworkConfig, TaskConfig, TrainConfig
from diffbrain.network.training import Trainer


def test_probe_dataset(tmp_path, monkeypatch):
    exp = get("scaling-probe")
    assert exp.fresh_process
    params = dict(method="expsm_diag", n_steps=60, n_rec=20, batch_size=2, conn_method="rand", steps=3)
    # the planner's fit of the point's family, as `sweep plan` would have cached it: the point records its figure
    monkeypatch.setenv("DIFFBRAIN_PLAN_CACHE", str(tmp_path))
    monkeypatch.setenv("DIFFBRAIN_MEMORY_PLAN", "on")  # the run's fit check reads the cached fit too
    shape = exp.memory(exp.validate(params))
    fit = planner.Fit(planner.proxy_design(shape), {part: {"trial_neurons": 300.0, "synapses": 12.0}
                                                    for part in planner.PARTS}, ())
    (tmp_path / f"{planner.key_of(shape)}.json").write_text(json.dumps(fit.to_json()))
    ds = exp(params)
    planned = planner.layout_bytes(planner.Footprint(shape, fit), "none", 1)
    assert float(ds["planned_device_bytes"]) == pytest.approx(planned) and planned > 0
    assert ds.attrs["device_bytes_source"] == "planner" and float(ds["checked_device_bytes"]) == pytest.approx(planned)
    assert float(ds["device_limit_bytes"]) > planned  # the host's available memory (the CPU)
    assert ds["step_seconds"].dims == ("step",) and ds["step_seconds"].size == 3
    assert float(ds["step_seconds_median"]) == pytest.approx(float(ds["step_seconds"].median()))
    assert (ds["step_seconds"] > 0).all() and float(ds["compile_seconds"]) > 0
    for name in ("temp_bytes", "argument_bytes", "output_bytes", "peak_rss_bytes"):
        assert int(ds[name]) > 0 and ds[name].attrs["units"] == "bytes", name
    assert math.isnan(float(ds["device_peak_bytes"]))  # the CPU reports no device memory
    assert math.isfinite(float(ds["loss"])) and int(ds["n_steps"]) == 60
    assert ds.attrs["method"] == "expsm_diag" and ds.attrs["conn_method"] == "rand"


@pytest.mark.parametrize("n_steps", [30, 61, 1000, 2000])
def test_probe_task_fills_n_steps(n_steps):
    assert TaskConfig(**probe_task(n_steps, 1.0)).n_steps(1.0) == n_steps
    with pytest.raises(ParamError):
        get("scaling-probe").validate({"n_steps": 10})


def test_bptt_memory_grows_with_t_online_memory_does_not():
    net = NetworkConfig(n_rec=10, conn_method="dense")
    temp = {}
    for method in ("bptt", "expsm_diag"):
        for n_steps in (100, 300):
            task = TaskConfig(**probe_task(n_steps, 1.0), n_per_group=5)
            temp[method, n_steps] = Trainer(net, task, TrainConfig(method=method, batch_size=2)).compile().temp_bytes
    bptt_growth = temp["bptt", 300] / temp["bptt", 100]
    online_growth = temp["expsm_diag", 300] / temp["expsm_diag", 100]
    assert bptt_growth > 2.0, temp  # residuals of every step are kept for the backward pass
    assert online_growth < 1.1, temp  # inputs are generated step by step; traces do not grow with T
