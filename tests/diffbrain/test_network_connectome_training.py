"""A connectome network trains on evidence accumulation (BPTT and ES-D-RTRL) through the event-driven CSR
path, its wiring stays the source's non-zero pattern and every synapse keeps its transmitter's sign; gap
junctions couple by hand; the experiment records neurons, classes and transmitters."""

import brainunit as u
import jax.numpy as jnp
import numpy as np
import pytest

from diffbrain.experiments import RunContext, get
from diffbrain.network.config import NetworkConfig, TaskConfig, TrainConfig
from diffbrain.network.connectivity import Structure
from diffbrain.network.connectome import excitatory_mask, load_connectome
from diffbrain.network.model import GapJunctions
from diffbrain.network.training import Trainer

TASK = TaskConfig(t_interval=5.0, t_cue=10.0, t_delay=10.0, t_recall=10.0, num_cue=3, n_per_group=6,
                  cue_rate=80.0, noise_rate=20.0)
# Witvliet1 (the L1 larva): 161 neurons, 675 synapses among them; sensory in, inter/motor out
NET = NetworkConfig(conn_method="connectome", connectome="Witvliet1", tau_neu=30.0, tau_a=100.0, ff_scale=6.0,
                    rec_scale=2.0, sparse_impl="event")


def signed_source_order(model) -> np.ndarray:
    """The model's signed effective recurrent matrix (+|w| excitatory, -|w| inhibitory presynaptic neuron)
    in the source's node order (rows presynaptic)."""
    w = model.wiring
    exc, inh = model.effective_recurrent()
    rec, _ = w.recurrent()
    signed = np.concatenate([exc, -inh])
    pre, post = rec.pre_post()
    source = load_connectome(NET.connectome)
    out = np.zeros((source.n, source.n))
    out[w.order[pre], w.order[post]] = signed
    return out


def source_pattern(model) -> np.ndarray:
    source = load_connectome(NET.connectome)
    keep = np.zeros(source.n, dtype=bool)
    keep[model.wiring.order] = True
    dense = source.chemical.to_dense(source.counts) > 0
    return dense & keep[:, None] & keep[None, :]


def transmitter_sign_rows(model) -> np.ndarray:
    source = load_connectome(NET.connectome)
    sign = np.zeros(source.n)
    sign[model.wiring.order] = np.where(excitatory_mask(model.wiring.transmitters, NET.transmitter_signs), 1, -1)
    return sign


def check_wiring_and_signs(model) -> None:
    signed = signed_source_order(model)
    pattern = source_pattern(model)
    assert np.array_equal(signed != 0, pattern)  # exactly the source's non-zeros, none added or lost
    rows = np.broadcast_to(transmitter_sign_rows(model)[:, None], signed.shape)
    assert np.array_equal(np.sign(signed[pattern]), rows[pattern])  # every synapse: its transmitter's sign
    # and the model applies it: excitatory presynaptic neurons open the excitatory reversal, the others the
    # inhibitory one
    reversal = model.presynaptic_reversal()
    assert np.array_equal(reversal > 0, model.is_excitatory())
    assert np.array_equal(model.is_excitatory(), excitatory_mask(model.wiring.transmitters, ""))


@pytest.mark.parametrize("method, gap_scale", [("bptt", 0.05), ("expsm_diag", 0.0)])
def test_connectome_network_trains_and_keeps_its_wiring_and_signs(method, gap_scale):
    cfg = NetworkConfig(**{**NET.__dict__, "gap_scale": gap_scale, "exc_count": None})
    trainer = Trainer(cfg, TASK, TrainConfig(method=method, lr=0.01, clip_norm=1.0, batch_size=4), seed=0)
    model = trainer.model
    assert model.n_rec == 161 and model.wiring.nnz == 675
    assert model.exc.impl == model.inh.impl == "event"  # the event-driven CSR path, as rand
    assert (model.gap is not None) == (gap_scale > 0)
    check_wiring_and_signs(model)
    before = np.concatenate(model.effective_recurrent())
    losses = [trainer.step(0)[0] for _ in range(10)]  # the same batch every time
    assert np.isfinite(losses).all()
    assert np.mean(losses[-3:]) < 0.75 * losses[0], losses
    after = np.concatenate(model.effective_recurrent())
    assert np.abs(after - before).max() > 1e-3  # the synaptic strengths trained
    check_wiring_and_signs(model)


def test_gap_junctions_couple_by_hand():
    # 0 <-> 1 with g = 0.2, 1 <-> 2 with g = 0.5 (symmetric, CSR rows presynaptic)
    s = Structure(3, 3, np.array([0, 1, 3, 4]), np.array([1, 0, 2, 1], dtype=np.int32))
    gap = GapJunctions(s, np.array([0.2, 0.2, 0.5, 0.5], dtype=np.float32), online=False)
    v = jnp.asarray([[1.0, 3.0, -2.0]]) * u.mV
    g_total, current = gap(v)
    leak = u.get_magnitude(g_total / u.siemens)
    i = u.get_magnitude(current / u.mA)
    np.testing.assert_allclose(leak, [0.2, 0.7, 0.5])
    # the coupling current sum_j g_ij (V_j - V_i) = current - leak * V
    np.testing.assert_allclose((i - leak * np.array([1.0, 3.0, -2.0]))[0],
                               [0.2 * 2.0, 0.2 * -2.0 + 0.5 * -5.0, 0.5 * 5.0], rtol=1e-6)


def test_experiment_records_neurons_classes_and_transmitters():
    params = dict(conn_method="connectome", connectome="witvliet1", tau_neu=30.0, tau_a=100.0, ff_scale=6.0,
                  rec_scale=2.0, t_interval=5.0, t_cue=10.0, t_delay=10.0, t_recall=10.0, num_cue=3,
                  n_per_group=6, cue_rate=80.0, noise_rate=20.0, method="bptt", lr=0.01, iterations=2,
                  batch_size=4, snapshot_every=2, test_batch=4, record_trials=2, record_neurons=2, hist_bins=8)
    ds = get("train-network")(params, RunContext(seed=0))
    assert ds.attrs["n_rec"] == 161 and ds.attrs["connectome"] == "Witvliet1" and ds.attrs["n_synapses"] == 675
    assert "majority" in ds.attrs["transmitter_rule"] and "Wang2024Herm" in ds.attrs["transmitter_source"]
    assert ds["neuron_name"].sizes["neuron"] == 161 and set(ds["cell_class"].values) == {"sensory", "inter", "motor"}
    exc = ds["is_excitatory"].values
    transmitters = ds["neuron_transmitter"].values
    assert (transmitters[~exc] == "gaba").all() and not (transmitters[exc] == "gaba").any()
    assert set(ds["neuron_class"].values[ds["is_input"].values]) == {"sensory"}
    for grouping in ("class", "transmitter"):
        hist = ds[f"w_hist_{grouping}"]
        assert hist.dims[0] == "stage" and list(ds["stage"].values) == ["initial", "final"]
        # every synapse is counted once per stage, in its presynaptic neuron's group
        np.testing.assert_array_equal(hist.sum("wg_bin").values, np.stack([ds[f"synapses_{grouping}"].values] * 2))
        assert int(ds[f"synapses_{grouping}"].sum()) == 675 and int(ds[f"neurons_{grouping}"].sum()) == 161
        assert (ds[f"rate_{grouping}"] >= 0).all()
    assert ds["w_mean_transmitter"].sel(stage="initial").notnull().any()
    # the per-neuron rates averaged per class are the class rates
    rates = ds["firing_rate"].groupby(ds["neuron_class"].rename("cell_class")).mean()
    np.testing.assert_allclose(rates.sel(cell_class=ds["cell_class"]).values, ds["rate_class"].values, rtol=1e-5)
