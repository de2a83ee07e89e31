"""Weight statistics against hand-computed histograms of known weights (three points, two methods)."""

import numpy as np
import pytest
import xarray as xr

from analysis.weights import common_bin_edges, has_weights, per_method, weight_statistics

EDGES = np.array([0.0, 0.1, 0.2, 0.4])
NAN3 = [np.nan] * 3

# known weights (uS) per point and snapshot; the stored histograms are their counts in EDGES
KNOWN_EXC = {
    "a": {0: [0.05, 0.15, 0.15, 0.3], 10: [0.0, 0.05, 0.25, 0.35]},
    "b": {0: [0.11, 0.12, 0.13, 0.19], 10: [0.05, 0.15, 0.15, 0.3], 20: [0.15, 0.15, 0.3, 0.3]},
    "c": {0: [0.01, 0.02, 0.03, 0.04], 10: [0.0, 0.01, 0.02, 0.09]},
}
HAND_COUNTS_EXC = {
    "a": {0: [1, 2, 1], 10: [2, 0, 2]},
    "b": {0: [0, 4, 0], 10: [1, 2, 1], 20: [0, 2, 2]},
    "c": {0: [4, 0, 0], 10: [4, 0, 0]},
}
INH = {
    "a": {0: [2, 2, 0], 10: [2, 2, 0]},
    "b": {0: [0, 0, 4], 10: [1, 1, 2], 20: [4, 0, 0]},
    "c": {0: [1, 1, 2], 10: [2, 1, 1]},
}
MEAN_EXC = {"a": [0.16, 0.15, np.nan], "b": [0.15, 0.14, 0.13], "c": [0.02, 0.03, np.nan]}


def stacked(table):
    """(point, snapshot, w_bin) counts, NaN where a point has no such snapshot (open_sweep's outer join)."""
    return np.array([[table[p].get(s, NAN3) for s in (0, 10, 20)] for p in "abc"], dtype=np.float64)


def sweep() -> xr.Dataset:
    exc = {p: {s: np.histogram(w, EDGES)[0].tolist() for s, w in snaps.items()} for p, snaps in KNOWN_EXC.items()}
    assert exc == HAND_COUNTS_EXC  # known weights give known histograms
    return xr.Dataset(
        {
            "weight_bin_edges": (("point", "w_edge"), np.tile(EDGES, (3, 1)), {"units": "uS"}),
            "w_hist_exc": (("point", "snapshot", "w_bin"), stacked(exc), {"units": "1"}),
            "w_hist_inh": (("point", "snapshot", "w_bin"), stacked(INH), {"units": "1"}),
            "w_mean_exc": (("point", "snapshot"), np.array([MEAN_EXC[p] for p in "abc"]), {"units": "uS"}),
        },
        coords={"point": ["a", "b", "c"], "snapshot": [0, 10, 20], "method": ("point", ["bptt", "bptt", "diag"])},
    )


def check_points(stats):
    np.testing.assert_allclose(stats["hist_before_exc"].values, [[1, 2, 1], [0, 4, 0], [4, 0, 0]])
    np.testing.assert_allclose(stats["hist_after_exc"].values, [[2, 0, 2], [0, 2, 2], [4, 0, 0]])
    np.testing.assert_allclose(stats["density_change_exc"].values,
                               [[0.25, -0.5, 0.25], [0, -0.5, 0.5], [0, 0, 0]])
    np.testing.assert_allclose(stats["tv_distance_exc"].values, [0.5, 0.5, 0.0])
    np.testing.assert_allclose(stats["tv_distance_inh"].values, [0.0, 1.0, 0.25])
    np.testing.assert_allclose(stats["mean_before_exc"].values, [0.16, 0.15, 0.02])
    np.testing.assert_allclose(stats["mean_after_exc"].values, [0.15, 0.13, 0.03])
    np.testing.assert_allclose(stats["snapshot_after"].values, [10, 20, 10])
    np.testing.assert_allclose(stats["snapshot_before"].values, [0, 0, 0])
    assert "mean_before_inh" not in stats  # not stored, not invented


def test_per_point_before_after_in_memory_and_lazy():
    ds = sweep()
    assert has_weights(ds)
    check_points(weight_statistics(ds).compute())
    lazy = weight_statistics(ds.chunk({"point": 1}))
    assert lazy["tv_distance_exc"].chunks is not None
    check_points(lazy.compute())


@pytest.mark.parametrize("chunked", [False, True])
def test_per_method_pools_histograms(chunked):
    ds = sweep().chunk({"point": 2}) if chunked else sweep()
    table = per_method(weight_statistics(ds), ds).compute()
    assert list(table["method"].values) == ["bptt", "diag"]
    np.testing.assert_array_equal(table["n_points"].values, [2, 1])
    np.testing.assert_allclose(table["hist_before_exc"].sel({"method": "bptt"}).values, [1, 6, 1])
    np.testing.assert_allclose(table["hist_after_exc"].sel({"method": "bptt"}).values, [2, 2, 4])
    np.testing.assert_allclose(table["density_change_exc"].sel({"method": "bptt"}).values, [0.125, -0.5, 0.375])
    np.testing.assert_allclose(table["tv_distance_pooled_exc"].values, [0.5, 0.0])
    np.testing.assert_allclose(table["tv_distance_exc"].values, [0.5, 0.0])  # mean of the points' distances
    np.testing.assert_allclose(table["mean_before_exc"].values, [0.155, 0.02])
    np.testing.assert_allclose(table["mean_after_exc"].values, [0.14, 0.03])


def test_common_edges_and_differing_edges():
    ds = sweep()
    np.testing.assert_allclose(common_bin_edges(ds), EDGES)
    ds["weight_bin_edges"][2, 3] = 0.5
    assert common_bin_edges(ds) is None


def test_counts_filled_with_minus_one_at_absent_snapshots_mean_absent():
    """open_sweep may fill integer counts at absent labels with -1 instead of NaN: same statistics."""
    ds = sweep()
    for var in ("w_hist_exc", "w_hist_inh"):
        ds[var] = ds[var].fillna(-1).astype(np.int64)
    check_points(weight_statistics(ds).compute())
