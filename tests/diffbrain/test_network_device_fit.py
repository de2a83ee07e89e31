"""The run-time memory check (diffbrain.network.device_fit): a run checks its layout with the memory planner's
cached fit of its family when ``sweep plan`` left one (nothing compiled), else with the analytic estimate, and
``DIFFBRAIN_MEMORY_PLAN=off`` keeps to the analytic one; the point records which."""

import json
import math

import pytest

from diffbrain.experiments import get
from diffbrain.network import device_fit, planner
from diffbrain.network.config import NetworkConfig, TaskConfig
from diffbrain.network.run import plan_run

PARAMS = {"method": "bptt", "conn_method": "rand", "conn_prob": 0.1, "n_rec": 200, "batch_size": 8,
          "iterations": 1}
FIT = {part: {"trial_neurons": 300.0, "stored_steps": 90.0, "synapses": 12.0} for part in planner.PARTS}
DEVICES = ("d0", "d1")  # stand-ins: the layout choice only counts and slices them


@pytest.fixture
def params(tmp_path, monkeypatch):
    monkeypatch.setenv("DIFFBRAIN_PLAN_CACHE", str(tmp_path / "plans"))
    monkeypatch.setenv("DIFFBRAIN_MEMORY_PLAN", "on")
    monkeypatch.setattr(device_fit, "accelerator_free_bytes", lambda devices: 80e9)  # GPUs of 80 GB
    return get("train-network").validate(PARAMS)


def seed(params) -> planner.Footprint:
    shape = get("train-network").memory(params)
    folder = planner.cache_dir()
    folder.mkdir(parents=True, exist_ok=True)
    fit = planner.Fit(planner.proxy_design(shape), FIT, ())
    (folder / f"{planner.key_of(shape)}.json").write_text(json.dumps(fit.to_json()))
    return planner.Footprint(shape, fit)


def analytic(params):
    net, task = NetworkConfig.from_params(params), TaskConfig.from_params(params)
    return device_fit.analytic_need(net, task.n_in, "bptt", 8, task.n_steps(net.dt), params["test_batch"])


def test_the_run_checks_the_cached_planner_fit(params):
    fp = seed(params)
    plan = plan_run(params, DEVICES)
    assert (plan.layout.kind, plan.layout.n_devices, plan.fit.source) == ("data", 2, "planner")
    assert plan.record() == {"checked_device_bytes": pytest.approx(planner.layout_bytes(fp, "data", 2)),
                             "device_limit_bytes": 80e9}
    assert plan.record()["checked_device_bytes"] != pytest.approx(analytic(params)("data", 2), rel=0.05)


def test_without_a_cached_fit_or_with_the_plan_off_the_run_checks_the_analytic_estimate(params, monkeypatch):
    plan = plan_run(params, DEVICES)  # nothing cached
    assert plan.fit.source == "analytic"
    assert plan.record()["checked_device_bytes"] == pytest.approx(analytic(params)("data", 2))
    seed(params)
    monkeypatch.setenv("DIFFBRAIN_MEMORY_PLAN", "off")
    assert plan_run(params, DEVICES).fit.source == "analytic"


def test_on_the_cpu_the_devices_share_the_hosts_memory(params, monkeypatch):
    monkeypatch.setattr(device_fit, "accelerator_free_bytes", lambda devices: None)
    limit, where = device_fit.device_limit(DEVICES)
    assert limit(2) == pytest.approx(limit(1) / 2) and "shared" in where
    assert math.isfinite(plan_run(params, DEVICES).record()["device_limit_bytes"])
