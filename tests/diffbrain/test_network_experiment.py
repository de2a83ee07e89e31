"""The ``train-network`` experiment: the dataset contract, resume after a real kill, checkpoint checks, sim mode."""

import json
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import xarray as xr

from diffbrain.errors import BadInput
from diffbrain.experiments import RunContext, get

PARAMS = dict(
    n_rec=20, tau_neu=30.0, tau_a=100.0, tau_syn=5.0, ff_scale=6.0, rec_scale=2.0, conn_method="rand",
    conn_prob=0.4, t_interval=5.0, t_cue=10.0, t_delay=10.0, t_recall=10.0, num_cue=3, n_per_group=6,
    cue_rate=80.0, noise_rate=20.0, method="bptt", lr=0.01, iterations=9, batch_size=4, checkpoint_every=3,
    snapshot_every=3, test_batch=6, record_trials=3, record_neurons=4, hist_bins=10, seed=4,
)

CHILD = textwrap.dedent("""
    import json, os, signal, sys
    import numpy as np
    from diffbrain.experiments import RunContext, get
    params, ckpt_dir, out, kill_at = json.loads(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4])
    total = params["iterations"]

    def progress(fraction, message):
        if kill_at and round(fraction * total) >= kill_at:
            os.kill(os.getpid(), signal.SIGKILL)  # a real, abrupt kill mid-run

    ds = get("train-network")(params, RunContext(seed=params["seed"], checkpoint_dir=ckpt_dir, progress=progress))
    np.save(out, ds["loss"].values)
    print(json.dumps({"resumed_from": ds.attrs["resumed_from_iteration"]}))
""")


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    ckpt = tmp_path_factory.mktemp("uninterrupted")
    ds = get("train-network")(PARAMS, RunContext(seed=PARAMS["seed"], checkpoint_dir=ckpt))
    return ds, ckpt


def test_dataset_follows_the_store_contract(uninterrupted, tmp_path):
    ds, _ = uninterrupted
    for name in ("loss", "accuracy", "step_seconds"):
        assert ds[name].dims == ("iteration",) and ds[name].size == 9
    for name in ("test_accuracy", "test_loss", "compile_seconds", "temp_bytes", "argument_bytes", "output_bytes",
                 "peak_rss_bytes", "dt", "n_steps"):
        assert ds[name].dims == (), name
    assert ds["temp_bytes"] > 0 and ds["peak_rss_bytes"] > 100e6 and ds["compile_seconds"] > 0
    assert int(ds["n_steps"]) == 65 and float(ds["dt"]) == 1.0
    assert np.isfinite(ds["loss"]).all() and 0 <= float(ds["test_accuracy"]) <= 1
    assert list(ds["snapshot"].values) == [0, 3, 6, 9]
    assert ds["weight_bin_edges"].dims == ("w_edge",) and ds["weight_bin_edges"].size == 11
    assert ds["w_hist_exc"].dims == ("snapshot", "w_bin") and ds["w_hist_exc"].shape == (4, 10)
    # every recurrent synapse is counted in every snapshot; E:I split 16:4
    n_exc_syn, n_inh_syn = ds["w_hist_exc"].sum("w_bin").values, ds["w_hist_inh"].sum("w_bin").values
    assert len(set(n_exc_syn)) == 1 and len(set(n_inh_syn)) == 1 and n_exc_syn[0] > 4 * n_inh_syn[0] * 0.5
    assert (ds["w_mean_exc"] > 0).all() and ((ds["w_frac_small_inh"] >= 0) & (ds["w_frac_small_inh"] <= 1)).all()
    assert not np.array_equal(ds["w_hist_exc"][0], ds["w_hist_exc"][-1]) or not np.isclose(
        ds["w_mean_exc"][0], ds["w_mean_exc"][-1])  # training changed the distribution
    # spikes as events
    times, neurons, offsets = (ds[k].values for k in ("spike_time", "spike_neuron", "spike_trial_offsets"))
    assert times.dtype == np.int32 and neurons.dtype == np.int32 and offsets.dtype == np.int64
    assert offsets.size == 4 and offsets[0] == 0 and offsets[-1] == times.size and (np.diff(offsets) >= 0).all()
    assert times.size > 0 and times.max() < 65 and neurons.max() < 20
    counts = np.bincount(neurons, minlength=20)
    np.testing.assert_allclose(ds["firing_rate"].values, counts / (3 * 65 * 1.0) * 1000.0, rtol=1e-5)
    assert ds["is_excitatory"].values.sum() == 16 and ds["is_excitatory"].dtype == bool
    assert ds["v_trace"].dims == ("v_time", "v_neuron") and ds["v_trace"].shape == (65, 4)
    assert ds["v_trace"].attrs["units"] == "mV" and ds["firing_rate"].attrs["units"] == "Hz"
    assert ds.attrs["method"] == "bptt" and ds.attrs["conn_method"] == "rand" and ds.attrs["n_rec"] == 20
    json.dumps(ds.attrs)  # JSON-serialisable
    ds.to_zarr(tmp_path / "run.zarr", consolidated=False)
    back = xr.open_zarr(tmp_path / "run.zarr", consolidated=False)
    np.testing.assert_array_equal(back["loss"].values, ds["loss"].values)


def run_child(tmp_path, ckpt_dir, kill_at: int, name: str):
    out = tmp_path / f"{name}.npy"
    proc = subprocess.run([sys.executable, "-c", CHILD, json.dumps(PARAMS), str(ckpt_dir), str(out), str(kill_at)],
                          capture_output=True, text=True, timeout=300)
    return proc, out


def test_resume_after_kill_equals_uninterrupted(uninterrupted, tmp_path):
    ds, _ = uninterrupted
    ckpt_dir = tmp_path / "ckpt"
    killed, out = run_child(tmp_path, ckpt_dir, kill_at=8, name="killed")
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    assert not out.exists() and (ckpt_dir / "train-network.npz").exists()  # killed after iteration 8 ...
    restarted, out = run_child(tmp_path, ckpt_dir, kill_at=0, name="restarted")
    assert restarted.returncode == 0, restarted.stderr[-2000:]
    assert json.loads(restarted.stdout.strip().splitlines()[-1]) == {"resumed_from": 6}  # ... resumed at 6
    np.testing.assert_array_equal(np.load(out), ds["loss"].values)


def test_checkpoint_from_another_configuration_is_refused_untouched(uninterrupted):
    _, ckpt = uninterrupted
    path = ckpt / "train-network.npz"
    before = path.read_bytes()
    with pytest.raises(BadInput) as info:
        get("train-network")({**PARAMS, "lr": 0.02}, RunContext(seed=PARAMS["seed"], checkpoint_dir=ckpt))
    assert info.value.field == "checkpoint" and "lr" in info.value.message
    assert path.read_bytes() == before


def test_sim_mode_with_a_trained_checkpoint(uninterrupted):
    ds, ckpt = uninterrupted
    sim_params = {**PARAMS, "mode": "sim", "load_checkpoint": str(ckpt / "train-network.npz"), "lr": 0.5}
    sim = get("train-network")(sim_params, RunContext(seed=PARAMS["seed"]))
    assert sim.sizes["iteration"] == 0 and sim.attrs["mode"] == "sim"
    # the same trained weights on the same test trials give the same test loss
    assert float(sim["test_loss"]) == pytest.approx(float(ds["test_loss"]), rel=1e-5)
    assert np.array_equal(sim["spike_time"].values, ds["spike_time"].values)
    with pytest.raises(BadInput) as info:
        get("train-network")({**sim_params, "n_rec": 25}, RunContext(seed=PARAMS["seed"]))
    assert info.value.field == "load_checkpoint" and "n_rec" in info.value.message
