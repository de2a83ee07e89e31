"""Data-parallel training (diffbrain.network.parallel): the layout choice, and on 4 forced host devices the
same loss and gradients as one device (max relative difference <= 1e-5 in float32) and the same loss
history. The multi-device runs happen in a subprocess (the device count is fixed before JAX is imported)."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from diffbrain.network.parallel import DoesNotFit, Layout, MemoryFit, choose_layout
from diffbrain.params import ParamError

WORKER = Path(__file__).with_name("multidevice_worker.py")
TOLERANCE = 1e-5
DEVICES = ("d0", "d1", "d2", "d3")  # stand-ins: choose_layout only counts and slices them


def run_worker(*jobs: str, devices: int = 4) -> dict:
    done = subprocess.run([sys.executable, str(WORKER), str(devices), *jobs], capture_output=True, text=True,
                          timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_choose_layout():
    assert choose_layout("auto", 0, DEVICES, 32) == Layout("data", DEVICES)
    assert choose_layout("auto", 0, DEVICES, 6) == Layout("data", DEVICES[:3])  # the most that divide the batch
    assert choose_layout("auto", 0, DEVICES, 7) == Layout("none", DEVICES[:1])
    assert choose_layout("auto", 2, DEVICES, 32) == Layout("data", DEVICES[:2])
    assert choose_layout("none", 0, DEVICES, 32) == Layout("none", DEVICES[:1])
    assert choose_layout("data", 4, DEVICES, 8).local_batch(8) == 2
    assert choose_layout("data", 0, DEVICES[:1], 8).kind == "none"


@pytest.mark.parametrize(("parallel", "devices", "batch", "field"), [
    ("data", 0, 6, "batch_size"),  # 6 trials on 4 devices
    ("data", 8, 8, "devices"),  # more devices than the process sees
    ("auto", 5, 8, "devices"),
    ("neurons", 0, 8, "n_rec"),  # 42 neurons on 4 devices
    ("spread", 0, 8, "parallel"),
])
def test_choose_layout_refuses(parallel, devices, batch, field):
    with pytest.raises(ParamError) as err:
        choose_layout(parallel, devices, DEVICES, batch, n_rec=42)
    assert err.value.field == field


def memory(**need: float) -> MemoryFit:
    """GB per device by layout (``data4``, ``neurons4``, ``none1``...) against a device of 100 GB."""
    return MemoryFit(lambda kind, n: need[f"{kind}{n}"] * 1e9, lambda n: 100e9, "planner",
                     "each device may hold 100 GB")


def test_auto_takes_data_when_it_fits_else_neurons_else_refuses():
    fits_both, data_too_big = memory(data4=90, neurons4=50), memory(data4=150, neurons4=50)
    assert choose_layout("auto", 0, DEVICES, 8, 40, "expsm_diag", memory=fits_both) == Layout("data", DEVICES)
    assert choose_layout("auto", 0, DEVICES, 8, 40, "bptt", memory=data_too_big) == Layout("neurons", DEVICES)
    # data on the 3 devices that divide 6 trials, neurons on the 2 that divide 22 neurons
    split = memory(data3=150, neurons2=99)
    assert choose_layout("auto", 0, DEVICES, 6, 22, "expsm_diag", memory=split) == Layout("neurons", DEVICES[:2])
    for args, kwargs in [((40, "diag"), {}), ((40, "expsm_diag"), {"generated": False}), ((41, "bptt"), {})]:
        with pytest.raises(DoesNotFit) as err:  # the neuron layout cannot take it: nothing else fits
            choose_layout("auto", 0, DEVICES, 8, *args, memory=memory(data4=150, neurons4=50, neurons2=50), **kwargs)
        assert err.value.field == "n_rec"
    with pytest.raises(DoesNotFit) as err:
        choose_layout("auto", 0, DEVICES, 8, 40, "expsm_diag", memory=memory(data4=150, neurons4=120))
    assert err.value.field == "n_rec" and "100 GB" in err.value.message and "neurons x4 120 GB" in err.value.message
    assert "gpus_per_node" in err.value.fix
    assert choose_layout("auto", 0, DEVICES, 8, 40, "expsm_diag", memory=MemoryFit(
        lambda kind, n: 1e30, lambda n: None)) == Layout("data", DEVICES)  # a limit unknown: never refused


def test_an_explicit_layout_that_does_not_fit_is_refused_naming_what_would():
    with pytest.raises(DoesNotFit) as err:
        choose_layout("data", 0, DEVICES, 8, 40, "expsm_diag", memory=memory(data4=150, neurons4=50))
    assert err.value.field == "parallel" and "parallel auto would use neurons x4" in err.value.fix
    assert choose_layout("neurons", 2, DEVICES, 8, 40, "bptt", memory=memory(neurons2=99)).n_devices == 2


def check_gradients(result: dict) -> None:
    assert result["n_devices"] == 4
    assert all(norm > 0 for norm in result["norm"].values()), result["norm"]  # every weight learns something
    assert max(result["relative"].values()) <= TOLERANCE, result
    assert result["loss"] <= TOLERANCE and result["recall"] <= TOLERANCE, result


def test_data_parallel_gradients_equal_one_device():
    results = run_worker("gradients:bptt:rand", "gradients:expsm_diag:rand", "experiment:expsm_diag:rand")
    run = results.pop("experiment:expsm_diag:rand")
    assert results["gradients:bptt:rand"]["impl"] == "event"  # brainevent's kernels on each device's block
    for result in results.values():
        check_gradients(result)
    # the experiment uses every device by default and records it
    assert (run["parallel_layout"], run["n_devices"], run["device_kind"]) == ("data", 4, "cpu")
    assert 0 < run["estimated_device_bytes"] < run["estimated_bytes"]
    assert run["temp_bytes"] > 0 and all(np.isfinite(run["loss"])) and run["checks"] == 2


def test_more_devices_than_seen_is_refused():
    from diffbrain.experiments import get

    with pytest.raises(ParamError) as err:  # this process sees one CPU device
        get("train-network")({"devices": 2, "n_rec": 10, "iterations": 1})
    assert err.value.field == "devices" and "sees 1" in err.value.problem


@pytest.mark.slow
def test_data_parallel_dense_diag_and_training_history():
    results = run_worker("gradients:bptt:dense", "gradients:expsm_diag:dense", "gradients:diag:rand",
                         "gradients:diag:dense", "training:bptt:rand", "training:expsm_diag:dense")
    for job, result in results.items():
        if job.startswith("gradients"):
            check_gradients(result)
        else:
            assert result["loss_one"] == pytest.approx(result["loss_many"], rel=TOLERANCE), result
            assert result["weights"] <= 1e-4, result  # three Adam steps apart, float32
            assert result["temp_bytes"][1] < result["temp_bytes"][0], result  # each device holds a quarter batch
