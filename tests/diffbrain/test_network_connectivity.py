"""Connectivity structure (dense, rand, gaussian), CSR form, initial magnitudes and configuration checks."""

import numpy as np
import pytest

from diffbrain.experiments.base import ParamError
from diffbrain.network.config import NetworkConfig, TaskConfig
from diffbrain.network.connectivity import (
    initial_weights,
    recurrent_mask,
    recurrent_structures,
    ring_distance,
    ring_positions,
)


def test_dense_and_rand_masks():
    rng = np.random.default_rng(0)
    assert recurrent_mask(NetworkConfig(n_rec=10), rng).all()
    mask = recurrent_mask(NetworkConfig(n_rec=300, conn_method="rand", conn_prob=0.2), rng)
    assert mask.shape == (300, 300) and mask.mean() == pytest.approx(0.2, abs=0.01)


def test_gaussian_probability_falls_with_ring_distance():
    cfg = NetworkConfig(n_rec=400, conn_method="gaussian", conn_prob=0.8, conn_width=0.05)
    mask = recurrent_mask(cfg, np.random.default_rng(1))
    pos = ring_positions(400, np.random.default_rng(1))  # same draw order as recurrent_mask
    d = ring_distance(pos, pos)
    near, far = mask[d < 0.02].mean(), mask[d > 0.2].mean()
    assert near == pytest.approx(0.8 * np.exp(-((0.01 / 0.05) ** 2) / 2), abs=0.05)
    assert far < 1e-3
    expected = (0.8 * np.exp(-(d**2) / (2 * 0.05**2))).mean()
    assert mask.mean() == pytest.approx(expected, rel=0.05)
    assert ring_distance(np.array([0.05]), np.array([0.95]))[0, 0] == pytest.approx(0.1)


def test_csr_of_a_structure_matches_its_mask():
    exc, inh = recurrent_structures(NetworkConfig(n_rec=20, conn_method="rand", conn_prob=0.3),
                                    np.random.default_rng(2))
    assert exc.shape == (16, 20) and inh.shape == (4, 20) and exc.sparse
    rebuilt = np.zeros(exc.shape, dtype=bool)
    for row in range(exc.shape[0]):
        rebuilt[row, exc.indices[exc.indptr[row] : exc.indptr[row + 1]]] = True
    assert np.array_equal(rebuilt, exc.mask) and exc.indptr[-1] == exc.nnz
    data = np.arange(exc.nnz, dtype=np.float32) + 1
    dense = exc.to_dense(data)
    assert np.array_equal(dense[exc.mask], data) and np.all(dense[~exc.mask] == 0)


def test_initial_weights_are_kaiming_magnitudes():
    cfg = NetworkConfig(n_rec=200, ff_scale=2.0, rec_scale=0.5, w_ei_ratio=4.0, tau_a=1500.0)
    exc, inh = recurrent_structures(cfg, np.random.default_rng(0))
    w = initial_weights(cfg, 100, 2, exc, inh, np.random.default_rng(0))
    half_normal_mean = np.sqrt(2 / np.pi)
    assert w.ff.shape == (100, 200) and (w.ff >= 0).all()
    assert w.ff.mean() == pytest.approx(np.sqrt(2.0 / 100) * half_normal_mean, rel=0.03)
    assert w.exc.mean() == pytest.approx(np.sqrt(0.5 / 160) * half_normal_mean, rel=0.03)
    assert w.inh.mean() == pytest.approx(np.sqrt(2.0 / 40) * half_normal_mean, rel=0.05)
    assert w.tau_adapt.min() >= 100.0 and w.tau_adapt.max() <= 3000.0


def test_no_synapse_drawn_is_refused():
    with pytest.raises(ParamError) as info:
        recurrent_structures(NetworkConfig(n_rec=5, conn_method="rand", conn_prob=1e-9), np.random.default_rng(0))
    assert info.value.field == "conn_prob"


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"n_rec": 4}, "n_rec"),
        ({"e_exc": 0.5}, "e_exc"),
        ({"e_inh": 1.0}, "e_inh"),
        ({"tau_neu": -1.0}, "tau_neu"),
        ({"conn_method": "rand", "conn_prob": 1.5}, "conn_prob"),
    ],
)
def test_network_config_refuses_with_the_field(kwargs, field):
    with pytest.raises(ParamError) as info:
        NetworkConfig(**kwargs).check()
    assert info.value.field == field


def test_task_config_refuses_rates_above_one_spike_per_step():
    with pytest.raises(ParamError) as info:
        TaskConfig(cue_rate=2000.0).check(dt=1.0)
    assert info.value.field == "cue_rate"
