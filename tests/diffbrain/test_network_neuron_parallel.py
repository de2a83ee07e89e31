"""Neuron-parallel training (diffbrain.network.neuron_parallel): the layout choice and, on 4 forced host devices
in one subprocess (multidevice_worker.py), the same loss and gradients as one device (max relative difference
<= 1e-5 in float32) for bptt and expsm_diag, dense and ``rand`` wiring, and the same loss history over three
training iterations. (The train-network experiment under ``parallel = neurons``, with its records and a gradient
check each iteration, is the worker's job ``experiment:expsm_diag:rand:neurons``: left out of the suite for
time, run by hand.)"""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from diffbrain.network.parallel import Layout, choose_layout, neurons_device_estimate
from diffbrain.params import ParamError

WORKER = Path(__file__).with_name("multidevice_worker.py")
TOLERANCE = 1e-5
DEVICES = ("d0", "d1", "d2", "d3")  # stand-ins: choose_layout only counts and slices them


def test_choose_neuron_layout():
    assert choose_layout("neurons", 0, DEVICES, 7, n_rec=40, method="bptt") == Layout("neurons", DEVICES)
    assert choose_layout("neurons", 2, DEVICES, 7, n_rec=42).local_batch(7) == 7  # every device runs every trial
    with pytest.raises(ParamError) as err:
        choose_layout("neurons", 0, DEVICES, 8, n_rec=42)
    assert err.value.field == "n_rec" and "multiple of 4" in err.value.fix
    with pytest.raises(ParamError) as err:
        choose_layout("neurons", 0, DEVICES, 8, n_rec=40, method="diag")
    assert err.value.field == "method"


def test_neurons_device_estimate_shrinks_with_devices():
    one, four = (neurons_device_estimate(4000, 100, 2, d, "expsm_diag", 16) for d in (1, 4))
    assert four.weights == pytest.approx(one.weights / 4, rel=0.01)  # the blocks (the readout is replicated)
    assert four.total < 0.3 * one.total


@pytest.mark.slow
def test_neuron_parallel_equals_one_device():
    jobs = [f"gradients:{m}:{c}:neurons" for m in ("bptt", "expsm_diag") for c in ("dense", "rand")]
    jobs += ["training:bptt:rand:neurons"]
    done = subprocess.run([sys.executable, str(WORKER), "4", *jobs], capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads(done.stdout.strip().splitlines()[-1])
    assert results["gradients:bptt:rand:neurons"]["impl"] == "event"  # the one-device model runs CSR
    for job in jobs[:4]:
        result = results[job]
        assert result["n_devices"] == 4
        assert all(norm > 0 for norm in result["norm"].values()), result["norm"]  # every weight learns something
        assert max(result["relative"].values()) <= TOLERANCE, (job, result)
        assert result["loss"] <= TOLERANCE and result["recall"] <= TOLERANCE, (job, result)
    history = results["training:bptt:rand:neurons"]
    assert history["loss_one"] == pytest.approx(history["loss_many"], rel=TOLERANCE), history
    assert history["weights"] <= 1e-4, history  # three Adam steps apart, float32
    assert history["temp_bytes"][1] < history["temp_bytes"][0], history  # each device holds a quarter
