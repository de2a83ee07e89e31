"""Connectivity generators in O(synapses): degree statistics, no duplicate or self synapses, the Gaussian's
distance profile, determinism, CSR / (pre, post) forms, initial magnitudes and configuration checks."""

import itertools

import numpy as np
import pytest

from diffbrain.experiments.base import ParamError
from diffbrain.network.config import NetworkConfig, TaskConfig
from diffbrain.network.connectivity import (
    Structure,
    choose_distinct,
    expected_synapses,
    fixed_in_structure,
    fixed_out_structure,
    gaussian_structure,
    initial_weights,
    random_structure,
    recurrent_structure,
    recurrent_structures,
)


def assert_simple(s: Structure, self_synapses: bool = False) -> None:
    """Rows ascending and strictly increasing (no duplicate synapse), targets in range, no self-synapse."""
    pre, post = s.pre_post()
    key = pre.astype(np.int64) * s.n_post + post
    assert np.all(np.diff(key) > 0)
    assert post.min(initial=0) >= 0 and post.max(initial=0) < s.n_post
    if not self_synapses:
        assert not np.any(pre == post)
    assert s.indptr[0] == 0 and s.indptr[-1] == s.nnz == s.indices.size


def test_rand_degrees_are_binomial_without_duplicates():
    n, p = 2000, 0.05
    s = random_structure(n, p, np.random.default_rng(0))
    assert_simple(s)
    deg = s.out_degrees
    assert deg.mean() == pytest.approx((n - 1) * p, rel=0.02)
    assert deg.var() == pytest.approx((n - 1) * p * (1 - p), rel=0.12)
    # in-degrees are binomial too (each pair independent)
    assert s.in_degrees().var() == pytest.approx((n - 1) * p * (1 - p), rel=0.12)


def test_rand_at_high_probability_samples_the_complement():
    n, p = 300, 0.9
    s = random_structure(n, p, np.random.default_rng(1))
    assert_simple(s)
    assert s.out_degrees.mean() == pytest.approx((n - 1) * p, rel=0.01)
    full = random_structure(50, 1.0, np.random.default_rng(2), self_synapses=True)
    assert full.nnz == 50 * 50 and full.mask().all()


def test_fixed_out_and_fixed_in_degrees():
    n, k = 1500, 40
    out = fixed_out_structure(n, k, np.random.default_rng(3))
    assert_simple(out)
    assert np.all(out.out_degrees == k)
    # in-degree of a neuron: each of the other n-1 rows picks it with probability k/(n-1)
    assert out.in_degrees().mean() == pytest.approx(k)
    assert out.in_degrees().var() == pytest.approx(k * (1 - k / (n - 1)), rel=0.12)
    inn = fixed_in_structure(n, k, np.random.default_rng(3))
    assert_simple(inn)
    assert np.all(inn.in_degrees() == k)
    assert inn.out_degrees.mean() == pytest.approx(k)
    assert inn.out_degrees.var() == pytest.approx(k * (1 - k / (n - 1)), rel=0.12)


def test_distinct_choice_is_uniform_over_subsets():
    """3 of 6 (the complement path) and 2 of 6 (the rejection path): every subset equally often."""
    rng = np.random.default_rng(4)
    for k in (2, 3, 4):
        rows = 6000
        values = choose_distinct(np.full(rows, k), 6, rng).reshape(rows, k)
        assert np.all(np.diff(values, axis=1) > 0)
        counts = {c: 0 for c in itertools.combinations(range(6), k)}
        for row in map(tuple, values):
            counts[row] += 1
        expected = rows / len(counts)
        chi2 = sum((c - expected) ** 2 / expected for c in counts.values())
        assert chi2 < 2.0 * len(counts) + 30, (k, chi2)  # ~ chi-square with len-1 dof


def test_gaussian_connection_probability_follows_ring_distance():
    n, p, width = 2000, 0.6, 0.03
    rng = np.random.default_rng(5)
    s = gaussian_structure(n, p, width, rng)
    assert_simple(s)
    pos = np.random.default_rng(5).permutation(n) / n  # the same first draw: neuron -> ring slot
    pre, post = s.pre_post()
    d = np.abs(pos[pre] - pos[post])
    d = np.minimum(d, 1 - d)
    # every neuron sees the same offsets: per-distance counts against n * 2 * P(d) pairs
    edges = np.arange(0, 0.12, 0.01)
    hist = np.histogram(d, bins=edges)[0]
    slots = np.arange(1, n // 2 + 1) / n
    pairs = np.histogram(slots, bins=edges)[0] * 2 * n
    expect = np.array([(p * np.exp(-(slots[(slots >= a) & (slots < b)] ** 2) / (2 * width**2))).mean()
                       for a, b in zip(edges[:-1], edges[1:], strict=True)])
    np.testing.assert_allclose(hist / pairs, expect, rtol=0.05, atol=2e-3)
    assert d.max() < 8 * width  # the tail is sampled, and falls off as a Gaussian does
    cfg = NetworkConfig(n_rec=n, conn_method="gaussian", conn_prob=p, conn_width=width)
    assert s.nnz == pytest.approx(expected_synapses(cfg), rel=0.02)


@pytest.mark.parametrize("method", ["rand", "fixed_in", "fixed_out", "gaussian", "dense"])
def test_same_seed_same_structure(method):
    cfg = NetworkConfig(n_rec=300, conn_method=method, conn_prob=0.1, conn_num=12, conn_width=0.05)
    a, b = recurrent_structure(cfg, np.random.default_rng(7)), recurrent_structure(cfg, np.random.default_rng(7))
    c = recurrent_structure(cfg, np.random.default_rng(8))
    if method == "dense":
        assert not a.sparse and a.nnz == 300 * 300
        return
    assert np.array_equal(a.indptr, b.indptr) and np.array_equal(a.indices, b.indices)
    assert not np.array_equal(a.indices, c.indices[: a.indices.size]) or a.nnz != c.nnz
    assert a.nnz == pytest.approx(expected_synapses(cfg), rel=0.1)


def test_rows_split_and_forms_agree():
    cfg = NetworkConfig(n_rec=20, conn_method="rand", conn_prob=0.3)
    exc, inh = recurrent_structures(cfg, np.random.default_rng(2))
    full = recurrent_structure(cfg, np.random.default_rng(2))
    assert exc.shape == (16, 20) and inh.shape == (4, 20) and exc.sparse
    assert np.array_equal(np.vstack([exc.mask(), inh.mask()]), full.mask())
    rebuilt = np.zeros(exc.shape, dtype=bool)
    for row in range(exc.n_pre):
        rebuilt[row, exc.indices[exc.indptr[row] : exc.indptr[row + 1]]] = True
    assert np.array_equal(rebuilt, exc.mask())
    data = np.arange(exc.nnz, dtype=np.float32) + 1
    dense = exc.to_dense(data)
    assert np.array_equal(dense[exc.mask()], data) and np.all(dense[~exc.mask()] == 0)
    assert np.array_equal(exc.dense_values(dense), data)


def test_initial_weights_are_kaiming_magnitudes_on_the_non_zeros():
    cfg = NetworkConfig(n_rec=200, ff_scale=2.0, rec_scale=0.5, w_ei_ratio=4.0, tau_a=1500.0)
    exc, inh = recurrent_structures(cfg, np.random.default_rng(0))
    w = initial_weights(cfg, 100, 2, exc, inh, np.random.default_rng(0))
    half_normal_mean = np.sqrt(2 / np.pi)
    assert w.ff.shape == (100, 200) and (w.ff >= 0).all()
    assert w.ff.mean() == pytest.approx(np.sqrt(2.0 / 100) * half_normal_mean, rel=0.03)
    assert w.exc.mean() == pytest.approx(np.sqrt(0.5 / 160) * half_normal_mean, rel=0.03)
    assert w.inh.mean() == pytest.approx(np.sqrt(2.0 / 40) * half_normal_mean, rel=0.05)
    assert w.tau_adapt.min() >= 100.0 and w.tau_adapt.max() <= 3000.0
    sparse = NetworkConfig(n_rec=500, conn_method="fixed_in", conn_num=25)
    exc, inh = recurrent_structures(sparse, np.random.default_rng(0))
    w = initial_weights(sparse, 10, 2, exc, inh, np.random.default_rng(0))
    assert w.exc.shape == (exc.nnz,) and w.inh.shape == (inh.nnz,)
    assert w.exc.mean() == pytest.approx(np.sqrt(0.5 / exc.mean_fan_in) * half_normal_mean, rel=0.05)


@pytest.mark.parametrize("kwargs, field", [
    ({"conn_method": "rand", "conn_prob": 1e-9}, "conn_prob"),
    ({"conn_method": "gaussian", "conn_prob": 1e-9, "conn_width": 0.01}, "conn_prob"),
])
def test_no_synapse_drawn_is_refused(kwargs, field):
    with pytest.raises(ParamError) as info:
        recurrent_structures(NetworkConfig(n_rec=5, **kwargs), np.random.default_rng(0))
    assert info.value.field == field and "drew no synapse" in str(info.value)


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"n_rec": 4}, "n_rec"),
        ({"e_exc": 0.5}, "e_exc"),
        ({"e_inh": 1.0}, "e_inh"),
        ({"tau_neu": -1.0}, "tau_neu"),
        ({"conn_method": "rand", "conn_prob": 1.5}, "conn_prob"),
        ({"conn_method": "gaussian", "conn_prob": 0.0}, "conn_prob"),
        ({"conn_method": "fixed_in", "n_rec": 10, "conn_num": 10}, "conn_num"),
        ({"conn_method": "fixed_out", "conn_num": 0}, "conn_num"),
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
