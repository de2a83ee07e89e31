"""Neuron-parallel training (diffbrain.network.neuron_parallel): the layout choice, the per-device estimate and the
slots, and, on 4 forced host devices in one subprocess (multidevice_worker.py), the same loss and gradients as one
device (max relative difference <= 1e-5 in float32) for bptt and expsm_diag, dense and ``rand`` wiring (each device
holding its own dense columns, masked dense columns, CSR block or slots), and the same loss history over three
training iterations. (The train-network experiment under ``parallel = neurons``, with its records and a gradient
check each iteration, is the worker's job ``experiment:expsm_diag:rand:neurons``: left out of the suite for time,
run by hand.)"""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from diffbrain.network.parallel import Layout, choose_layout, neurons_device_estimate, slots_per_neuron
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


def test_sparse_expsm_diag_share_grows_with_synapses_not_neurons_squared():
    """10^6 neurons x 100 synapses on 8 devices: each device's slots (150 per neuron: 100 + 5 sqrt(100)) and
    their traces, a few GB, where dense columns would be n_rec^2 / 8 floats (4 TB)."""
    assert slots_per_neuron(1e8, 10**6) == 150
    eight = neurons_device_estimate(10**6, 100, 2, 8, "expsm_diag", 16, n_synapses=1e8)
    assert eight.structure == 10**6 // 8 * 150 * 8  # presynaptic index and mask per slot
    assert 2e9 < eight.total < 5e9
    one = neurons_device_estimate(10**6, 100, 2, 1, "expsm_diag", 16, n_synapses=1e8)
    assert eight.structure == one.structure / 8 and eight.total < 0.15 * one.total
    assert neurons_device_estimate(10**6, 100, 2, 8, "expsm_diag", 16).total > 1e12  # dense columns


@pytest.mark.slow
def test_neuron_parallel_equals_one_device():
    jobs = [f"gradients:{m}:{c}:neurons" for m in ("bptt", "expsm_diag") for c in ("dense", "rand")]
    jobs += ["gradients:expsm_diag:rand-masked:neurons"]  # expsm_diag's sparse wiring as masked dense columns
    jobs += ["gradients:bptt:rand:neurons:brainevent"]  # CSR blocks through brainevent's kernels (as on a GPU)
    jobs += ["training:bptt:rand:neurons", "training:expsm_diag:rand:neurons"]  # CSR blocks; slots
    done = subprocess.run([sys.executable, str(WORKER), "4", *jobs], capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads(done.stdout.strip().splitlines()[-1])
    assert results["gradients:bptt:rand:neurons"]["impl"] == "event"  # the one-device model runs CSR
    # each device holds its own blocks: dense columns, CSR blocks (bptt) or its neurons' slots (expsm_diag)
    assert results["gradients:bptt:dense:neurons"]["exc_block"] == ["BlockProjection", [32, 10]]
    assert results["gradients:bptt:rand:neurons"]["exc_block"][0] == "CSRBlockProjection"
    assert results["gradients:bptt:rand:neurons:brainevent"]["exc_block"][0] == "CSRBlockProjection"
    kind, (rows, slots) = results["gradients:expsm_diag:rand:neurons"]["exc_block"]
    assert kind == "SlotProjection" and rows == 10 and slots < 32, results["gradients:expsm_diag:rand:neurons"]
    assert results["gradients:expsm_diag:rand-masked:neurons"]["exc_block"] == ["BlockProjection", [32, 10]]
    for job in jobs[:6]:
        result = results[job]
        assert result["n_devices"] == 4
        assert all(norm > 0 for norm in result["norm"].values()), result["norm"]  # every weight learns something
        assert max(result["relative"].values()) <= TOLERANCE, (job, result)
        assert result["loss"] <= TOLERANCE and result["recall"] <= TOLERANCE, (job, result)
    for job in jobs[6:]:
        history = results[job]
        assert history["loss_one"] == pytest.approx(history["loss_many"], rel=TOLERANCE), history
        assert history["weights"] <= 1e-4, history  # three Adam steps apart, float32
        assert history["temp_bytes"][1] < history["temp_bytes"][0], history  # each device holds a quarter


def test_slot_blocks_hold_the_csr_structure():
    """Each postsynaptic neuron's synapses in k slots: the non-zeros go there and back unchanged, the slots read
    out with the presynaptic indices give x @ W of the whole matrix, and k is the largest in-degree."""
    import jax
    import numpy as np

    from diffbrain.network.connectivity import random_structure
    from diffbrain.network.neuron_parallel import AXIS, SlotBlocks
    from diffbrain.network.parallel import mesh_of

    rng = np.random.default_rng(3)
    structure = random_structure(30, 0.2, rng)
    blocks = SlotBlocks(structure, mesh_of(Layout("neurons", tuple(jax.devices()[:1])), AXIS, explicit=False))
    values = rng.normal(size=structure.nnz).astype(np.float32)
    slots = np.asarray(blocks.split(values))
    in_degree = np.bincount(structure.pre_post()[1], minlength=30)
    assert slots.shape == (30, in_degree.max()) == (30, blocks.k)
    assert blocks.k <= slots_per_neuron(structure.nnz, 30)  # what planning assumes before the wiring is drawn
    assert np.array_equal(blocks.join(slots), values)
    assert np.asarray(blocks.mask).sum() == structure.nnz
    assert np.array_equal(np.asarray(blocks.mask).sum(axis=1), in_degree)
    x = rng.random((4, 30)).astype(np.float32)
    through_slots = np.einsum("bjk,jk->bj", x[:, np.asarray(blocks.pre)], slots)
    np.testing.assert_allclose(through_slots, x @ structure.to_dense(values), rtol=1e-5, atol=1e-6)
