"""simulate-network on several devices (diffbrain.network.simulate_parallel): the layout rule, the per-device
estimate, and, on 4 forced host devices in one subprocess (multidevice_worker.py), the same spikes as one
device for both presets (rand and fixed_in/fixed_out, the native kernel and brainevent's, 200 steps), the
experiment's device records under parallel = neurons and auto, and its refusals (n, devices, parallel)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from diffbrain.errors import BadInput
from diffbrain.network.parallel import Layout
from diffbrain.network.simulate_parallel import choose_simulation_layout, simulation_device_estimate
from diffbrain.params import ParamError

WORKER = Path(__file__).with_name("multidevice_worker.py")
DEVICES = ("d0", "d1", "d2", "d3")  # stand-ins: the rule only counts and slices them


def fits_from(smallest: int):
    """A fit check that accepts ``smallest`` devices or more (BadInput naming n below)."""
    def check(d: int) -> None:
        if d < smallest:
            raise BadInput("n", f"does not fit on {d}", "fewer neurons")
    return check


def test_simulation_layout_rule():
    anything = fits_from(1)
    assert choose_simulation_layout("auto", 0, DEVICES, 200, anything) == Layout("none", DEVICES[:1])
    assert choose_simulation_layout("none", 0, DEVICES, 201, anything) == Layout("none", DEVICES[:1])
    assert choose_simulation_layout("neurons", 0, DEVICES, 200, anything) == Layout("neurons", DEVICES)
    assert choose_simulation_layout("neurons", 2, DEVICES, 202, anything) == Layout("neurons", DEVICES[:2])
    assert choose_simulation_layout("neurons", 1, DEVICES, 201, anything) == Layout("none", DEVICES[:1])
    # auto: the fewest devices dividing n whose share fits
    assert choose_simulation_layout("auto", 0, DEVICES, 300, fits_from(3)) == Layout("neurons", DEVICES[:3])
    assert choose_simulation_layout("auto", 0, DEVICES, 200, fits_from(3)) == Layout("neurons", DEVICES)
    for parallel, devices, n, check, field in (("neurons", 0, 202, anything, "n"), ("neurons", 5, 200, anything,
                                               "devices"), ("data", 0, 200, anything, "parallel"),
                                              ("rows", 0, 200, anything, "parallel"),
                                              ("auto", 0, 201, fits_from(4), "n"),  # 201 = 3 x 67: 4 does not divide it
                                              ("auto", 0, 200, fits_from(5), "n")):
        with pytest.raises((ParamError, BadInput)) as err:
            choose_simulation_layout(parallel, devices, DEVICES, n, check)
        assert err.value.field == field, (parallel, devices, n)
    with pytest.raises(ParamError) as err:
        choose_simulation_layout("data", 0, DEVICES, 200, anything)
    assert "one trial" in str(err.value) and "neurons" in err.value.fix


def test_simulation_device_estimate_shrinks_with_devices():
    one, four = (simulation_device_estimate(20_000, 1.6e6, d, 5, n_input=100, chunk=1000) for d in (1, 4))
    # the row pointers are whole on every device
    assert four.structure + four.weights == pytest.approx((one.structure + one.weights) / 4, rel=0.05)
    assert four.total < 0.3 * one.total


@pytest.mark.slow
def test_sharded_simulation_gives_one_devices_spikes():
    sims = ["simulate:coba:rand", "simulate:coba:fixed_in:brainevent", "simulate:gif:rand",
            "simulate:gif:fixed_out:brainevent"]
    jobs = sims + ["simulate-experiment:gif:rand"]
    done = subprocess.run([sys.executable, str(WORKER), "4", *jobs], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads(done.stdout.strip().splitlines()[-1])
    for job in sims:
        result = results[job]
        assert result["n_devices"] == 4 and result["kernel"][0] == result["kernel"][1], (job, result)
        assert result["spikes"][0] > 50, (job, result)  # a network that fires, recurrently
        # the same summation order per postsynaptic neuron (CSR order kept in every block): identical spikes
        assert result["identical"] and result["first_difference"] == -1, (job, result)
        assert result["argument_bytes"][1] < result["argument_bytes"][0], (job, result)
    assert results["simulate:coba:fixed_in:brainevent"]["kernel"] == ["brainevent", "brainevent"]
    records = results["simulate-experiment:gif:rand"]
    neurons, auto = records["neurons"], records["auto"]
    assert (neurons["parallel_layout"], neurons["n_devices"], neurons["device_kind"]) == ("neurons", 4, "cpu")
    assert neurons["estimated_device_bytes"] < neurons["estimated_bytes"] / 4
    assert neurons["temp_bytes"] > 0 and neurons["argument_bytes"] > 0 and neurons["spikes"] > 0
    assert (auto["parallel_layout"], auto["n_devices"]) == ("none", 1)  # it fits one device
    assert auto["spikes"] == neurons["spikes"] or auto["mean_rate"] == pytest.approx(neurons["mean_rate"], rel=0.2)
    assert records["refused"] == {"n": "n", "devices": "devices", "data": "parallel"}
