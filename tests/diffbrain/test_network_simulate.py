"""Simulation only: the event kernels against dense arithmetic, the COBA benchmark's published rates, the
simulate-network experiment, and memory (building 10^5 neurons within a bound; refusing what cannot fit)."""

import json
import subprocess
import sys

import brainstate
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from diffbrain.errors import BadInput
from diffbrain.experiments import get
from diffbrain.network.coba import CobaConfig, simulate
from diffbrain.network.config import NetworkConfig
from diffbrain.network.connectivity import fixed_in_structure, random_structure
from diffbrain.network.events import deliver_split, differentiable_propagate, native_available, propagate
from diffbrain.network.memory import MemoryEstimate, ensure_fits
from diffbrain.network.model import EINetwork
from diffbrain.network.simulate import SimulationRecord, cv_isi, firing_rates, packed_events, population_rate

needs_native = pytest.mark.skipif(not native_available(), reason="no C++ compiler for the native event kernel")


@pytest.mark.parametrize("native", [pytest.param(True, marks=needs_native), False])
def test_event_propagation_equals_dense_product(native):
    s = fixed_in_structure(300, 17, np.random.default_rng(0))
    w = np.random.default_rng(1).random(s.nnz).astype(np.float32)
    spikes = np.random.default_rng(2).random((3, 300)) < 0.1
    args = (jnp.asarray(s.indptr, jnp.int32), jnp.asarray(s.indices), jnp.asarray(w))
    out = jax.jit(lambda x: propagate(x, *args, 300, native=native))(jnp.asarray(spikes))
    np.testing.assert_allclose(np.asarray(out), spikes.astype(np.float32) @ s.to_dense(w), rtol=1e-6, atol=1e-6)


@needs_native
def test_in_place_split_delivery_adds_each_row_block_onto_its_own_target():
    """COBA's one-call delivery: rows before the split onto the first target, the rest onto the second,
    whether XLA aliases the targets (inside jit, computed buffers) or not (eager, the inputs are kept)."""
    s = random_structure(200, 0.1, np.random.default_rng(0))
    w = np.random.default_rng(1).random(s.nnz).astype(np.float32)
    spikes = np.random.default_rng(2).random(200) < 0.2
    first, second = (np.random.default_rng(k).random(200).astype(np.float32) for k in (3, 4))
    dense = s.to_dense(w)
    want = (first + spikes[:150] @ dense[:150], second + spikes[150:] @ dense[150:])
    args = (jnp.asarray(s.indptr, jnp.int32), jnp.asarray(s.indices), jnp.asarray(w), 150)
    eager = deliver_split(jnp.asarray(spikes), *args, jnp.asarray(first), jnp.asarray(second))
    jitted = jax.jit(lambda x, a, b: deliver_split(x, *args, a * 1.0, b * 1.0))(spikes, first, second)
    for got in (eager, jitted):
        for g, expected in zip(got, want, strict=True):
            np.testing.assert_allclose(np.asarray(g), expected, rtol=1e-5, atol=1e-5)


@needs_native
def test_differentiable_event_product_has_the_dense_gradients():
    """The native BPTT operator: value, activity gradient (W ct) and weight gradient equal the dense ones."""
    s = random_structure(60, 0.2, np.random.default_rng(0))
    w = np.random.default_rng(1).random(s.nnz).astype(np.float32)
    x = (np.random.default_rng(2).random((3, 60)) < 0.3).astype(np.float32)
    ct = np.random.default_rng(3).standard_normal((3, 60)).astype(np.float32)
    ptr, idx = jnp.asarray(s.indptr, jnp.int32), jnp.asarray(s.indices)
    pre, post = (jnp.asarray(a) for a in s.pre_post())
    sparse = lambda x, w: jnp.sum(differentiable_propagate(x, ptr, idx, w, 60) * ct)
    dense = lambda x, w: jnp.sum((x @ jnp.zeros((60, 60)).at[pre, post].set(w)) * ct)
    assert float(jax.jit(sparse)(x, w)) == pytest.approx(float(dense(x, w)), rel=1e-5)
    (gx, gw), (hx, hw) = jax.jit(jax.grad(sparse, (0, 1)))(x, w), jax.grad(dense, (0, 1))(x, w)
    np.testing.assert_allclose(gx, hx, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(gw, hw, rtol=1e-5, atol=1e-5)


def test_packed_events_round_trip():
    raster = np.random.default_rng(3).random((7, 21)) < 0.3
    packed = np.packbits(raster, axis=1)
    step, neuron = packed_events(packed, 100, 21, 105)
    expect_t, expect_n = np.nonzero(raster[:5])
    assert np.array_equal(step, expect_t + 100) and np.array_equal(neuron, expect_n)


def record(steps, neurons, n=3, n_steps=1000, dt=1.0) -> SimulationRecord:
    return SimulationRecord(np.asarray(steps, np.int32), np.asarray(neurons, np.int32), np.ones(n, bool), n_steps,
                            dt, 0, 0.0, 0.0, 1.0, MemoryEstimate(0, 0, 0), 0, 0, -1, -1, -1, "native")


def test_rates_cv_and_population_rate():
    regular = np.arange(0, 1000, 10)  # every 10 ms: CV 0
    irregular = np.array([0, 1, 50, 51, 100, 101])  # ISIs 1, 49, 1, 49, 1: CV = 48 / 2 / 20.6...
    rec = record(np.r_[regular, irregular], np.r_[np.zeros(regular.size), np.ones(irregular.size)])
    np.testing.assert_allclose(firing_rates(rec), [100.0, 6.0, 0.0])
    cv = cv_isi(rec)
    isi = np.diff(irregular)
    assert cv[0] == pytest.approx(0.0, abs=1e-6) and cv[1] == pytest.approx(isi.std() / isi.mean(), rel=1e-5)
    assert np.isnan(cv[2])
    t, pop = population_rate(rec, 100.0)
    assert t.size == 10 and pop.sum() * 0.1 * 3 == pytest.approx(rec.spike_step.size)


def test_coba_4000_fires_near_20_hz_with_close_e_and_i_rates():
    """The Vogels-Abbott benchmark at its published size for 1 s (Brian2 gives ~18.5 Hz on this network)."""
    rec = simulate(CobaConfig(n=4000).check(), seed=0, duration_ms=1000.0)
    rates = firing_rates(rec)
    exc = rec.is_excitatory
    assert rec.n_synapses == pytest.approx(4000 * 80, rel=0.01)
    assert 15.0 <= rates.mean() <= 25.0
    e, i = rates[exc].mean(), rates[~exc].mean()
    assert abs(e - i) / rates.mean() < 0.2, (e, i)
    assert np.nanmean(cv_isi(rec)) > 0.5  # irregular firing


@needs_native
def test_native_and_brainevent_kernels_give_the_same_coba_spikes():
    a = simulate(CobaConfig(n=500, syn_per_neuron=40).check(), 1, 100.0, native=True)
    b = simulate(CobaConfig(n=500, syn_per_neuron=40).check(), 1, 100.0, native=False)
    assert a.spike_step.size > 50
    assert np.array_equal(a.spike_step, b.spike_step) and np.array_equal(a.spike_neuron, b.spike_neuron)


def test_gif_simulation_sparse_equals_masked_dense():
    """The forward-only event path and the masked dense matrix give the same trajectory."""
    cfg = dict(n_rec=60, conn_method="rand", conn_prob=0.2, tau_neu=30.0, tau_a=100.0, ff_scale=6.0, rec_scale=2.0)
    out = {}
    for impl in ("event", "masked_dense"):
        model = EINetwork(NetworkConfig(**cfg, sparse_impl=impl), 10, 2, seed=4, method="simulation")
        brainstate.nn.init_all_states(model)
        xs = (jax.random.uniform(jax.random.PRNGKey(0), (80, 10)) < 0.2).astype(jnp.float32)

        def run(xs, m=model):
            return brainstate.transform.for_loop(lambda x: (m(x), m.V.value.mantissa)[1], xs)

        out[impl] = np.asarray(brainstate.transform.jit(run)(xs))
    assert model.exc.impl == "masked_dense"
    np.testing.assert_allclose(out["event"], out["masked_dense"], rtol=1e-5, atol=1e-5)
    assert np.ptp(out["event"]) > 0.5


def test_simulate_network_experiment_records_the_run():
    ds = get("simulate-network")({"preset": "gif", "n": 200, "syn_per_neuron": 20, "duration_ms": 200.0,
                                  "conn_method": "gaussian", "conn_width": 0.05, "ff_scale": 6.0})
    assert ds.sizes["neuron"] == 200 and ds.sizes["rate_time"] == 200
    assert ds["spike_time"].dtype == np.int32 and int(ds["n_steps"]) == 200
    assert int(ds["n_synapses"]) == pytest.approx(200 * 20, rel=0.15)
    rates = np.bincount(ds["spike_neuron"].values, minlength=200) / 0.2
    np.testing.assert_allclose(ds["firing_rate"].values, rates, rtol=1e-5)
    assert float(ds["seconds_per_sim_second"]) > 0 and int(ds["estimated_bytes"]) > int(ds["structure_bytes"]) > 0
    assert ds.attrs["preset"] == "gif"
    # parallel auto: the network fits one device (this process sees one)
    assert (ds.attrs["parallel_layout"], ds.attrs["n_devices"], ds.attrs["device_kind"]) == ("none", 1, "cpu")
    assert int(ds["estimated_device_bytes"]) == int(ds["estimated_bytes"]) and np.isnan(float(ds["device_peak_bytes"]))


BUILD_CHILD = """
import json, resource, sys
import numpy as np
from diffbrain.network import connectivity as C
from diffbrain.network.config import NetworkConfig
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
n = 100_000
cfg = NetworkConfig(n_rec=n, conn_method=sys.argv[1], conn_prob=80 / (n - 1), conn_num=80)
rng = np.random.default_rng(0)
exc, inh = C.recurrent_structures(cfg, rng)
w = C.initial_weights(cfg, 0, 2, exc, inh, rng)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
final = exc.nbytes + inh.nbytes + w.exc.nbytes + w.inh.nbytes
print(json.dumps({"nnz": exc.nnz + inh.nnz, "final": final, "growth": peak - before}))
"""


@pytest.mark.parametrize("method", ["rand", "fixed_in"])
def test_building_1e5_neurons_stays_within_twice_the_structure(method):
    """10^5 neurons, 80 synapses each (8 x 10^6): the peak RSS growth while drawing the structure and its
    weights stays within 2x their final bytes (measured ~1.25x for rand, ~1.9x for fixed_in)."""
    proc = subprocess.run([sys.executable, "-c", BUILD_CHILD, method], capture_output=True, text=True, check=True)
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["nnz"] == pytest.approx(8e6, rel=0.01)
    assert out["final"] < 70e6  # ~8 bytes per synapse: int32 target and float32 weight
    assert out["growth"] <= 2.0 * out["final"], out


def test_a_network_that_cannot_fit_is_refused_before_allocation():
    exp = get("simulate-network")
    with pytest.raises(BadInput) as info:
        exp({"preset": "coba", "n": 10**9, "syn_per_neuron": 80})  # ~1.6e11 synapses: terabytes
    assert info.value.field == "n" and "GB" in str(info.value) and "available" in str(info.value)
    with pytest.raises(BadInput) as info:
        exp({"preset": "coba", "n": 4000, "memory_limit_gb": 0.001})
    assert info.value.field == "n" and "limit is 0.00 GB" in str(info.value)
    with pytest.raises(BadInput):
        ensure_fits(MemoryEstimate(structure=10**6, weights=0, states=0), limit_bytes=10**5)
    ensure_fits(MemoryEstimate(structure=10**4, weights=0, states=0), limit_bytes=10**5)


@pytest.mark.parametrize("params, field", [
    ({"preset": "coba", "syn_per_neuron": 5000.0}, "syn_per_neuron"),
    ({"preset": "coba", "conn_method": "gaussian"}, "conn_method"),
    ({"preset": "gif", "n": 100, "syn_per_neuron": 99.5}, "syn_per_neuron"),
    ({"preset": "gif", "n": 100, "conn_method": "fixed_in", "syn_per_neuron": 150.0}, "conn_num"),
    ({"preset": "gif", "n": 400, "conn_method": "gaussian", "conn_width": 0.001, "syn_per_neuron": 30.0},
     "syn_per_neuron"),
])
def test_bad_connectivity_is_refused_with_the_field(params, field):
    with pytest.raises(BadInput) as info:
        get("simulate-network")(params)
    assert info.value.field == field


def test_rand_structure_is_deterministic_for_the_benchmark():
    a = random_structure(1000, 0.02, np.random.default_rng(9))
    b = random_structure(1000, 0.02, np.random.default_rng(9))
    assert np.array_equal(a.indices, b.indices)


def test_train_network_refuses_a_network_that_cannot_fit():
    with pytest.raises(BadInput) as info:
        get("train-network")({"n_rec": 2_000_000, "conn_method": "dense", "iterations": 1})
    assert info.value.field == "n_rec" and "GB" in str(info.value)
