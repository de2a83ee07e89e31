"""Fit statistics against hand-computed values: recovery error, loss vs time, per-method table."""

import numpy as np
import pytest
import xarray as xr

from analysis.fits import (
    best_point,
    fit_table,
    has_fits,
    loss_vs_time,
    loss_vs_time_by_group,
    point_traces,
    recovery_by_group,
    recovery_error,
    time_grid,
)
from analysis.points import group_labels

N = np.nan


def fit_sweep() -> xr.Dataset:
    """Four points: adam (p1, p2) and nevergrad (p3, p4, whose truth is unknown); param c has no truth."""
    truth = [1.0, 2.5, N]
    return xr.Dataset(
        {
            "fitted": (("point", "param"), [[1.1, 2.0, 5], [0.7, 2.5, 4], [1.5, 4.0, 1], [1.0, 2.5, 0]]),
            "true_value": (("point", "param"), [truth, truth, truth, [N, N, N]]),
            "lower": (("point", "param"), np.zeros((4, 3))),
            "upper": (("point", "param"), np.tile([2.0, 5.0, 10.0], (4, 1))),
            "loss": ("point", [0.5, 0.3, 1.0, 2.0], {"units": "mV"}),
            "seconds": ("point", [10.0, 20.0, 5.0, 7.0], {"units": "s"}),
            "evaluations": ("point", [100, 200, 300, 400]),
            "progress_seconds": (("point", "progress"), [[0.5, 1, 4], [1, 2, N], [0.25, 5, N], [2, 8, N]]),
            "progress_loss": (("point", "progress"), [[3, 2, 0.5], [1.0, 0.3, N], [4, 1.0, N], [2.5, 2.7, N]],
                              {"units": "mV"}),
            "target_spike_count": (("point", "trace"), [[3, 4]] * 4),
            "fitted_spike_count": (("point", "trace"), [[3, 6], [2, 4], [0, 0], [3, 4]]),
        },
        coords={
            "point": ["p1", "p2", "p3", "p4"],
            "param": ["a", "b", "c"],
            "method": ("point", ["adam", "adam", "nevergrad", "nevergrad"]),
            "model": ("point", ["gif"] * 4),
        },
    )


def test_recovery_error_per_point():
    err = recovery_error(fit_sweep())
    np.testing.assert_allclose(err["abs_error"].values, [[0.1, 0.5, N], [0.3, 0, N], [0.5, 1.5, N], [N, N, N]])
    np.testing.assert_allclose(err["rel_error"].values, [[0.1, 0.2, N], [0.3, 0, N], [0.5, 0.6, N], [N, N, N]])
    np.testing.assert_allclose(err["range_error"].values,
                               [[0.05, 0.1, N], [0.15, 0, N], [0.25, 0.3, N], [N, N, N]])


@pytest.mark.parametrize("chunked", [False, True])
def test_recovery_by_method(chunked):
    ds = fit_sweep().chunk({"point": 2}) if chunked else fit_sweep()
    table = recovery_by_group(ds).compute()
    assert list(table["group"].values) == ["adam", "nevergrad"]  # model is not swept: not in the label
    np.testing.assert_allclose(table["rel_error"].values, [[0.2, 0.1, N], [0.5, 0.6, N]])
    np.testing.assert_array_equal(table["n_known"].values, [[2, 2, 0], [1, 1, 0]])


@pytest.mark.parametrize("chunked", [False, True])
def test_fit_table(chunked):
    ds = fit_sweep().chunk({"point": 1}) if chunked else fit_sweep()
    table = fit_table(ds)
    np.testing.assert_allclose(table["loss"].values, [0.4, 1.5])
    np.testing.assert_allclose(table["seconds"].values, [15.0, 6.0])
    np.testing.assert_allclose(table["evaluations"].values, [150, 350])
    np.testing.assert_allclose(table["rel_error"].values, [0.15, 0.55])
    np.testing.assert_allclose(table["spike_count_error"].values, [0.75, 1.75])
    np.testing.assert_array_equal(table["n_points"].values, [2, 2])
    assert table["loss"].attrs["units"] == "mV"


GRID = np.array([0.5, 1, 2, 4, 8])


@pytest.mark.parametrize("chunked", [False, True])
def test_best_loss_so_far_on_a_time_grid(chunked):
    ds = fit_sweep().chunk({"point": 1}) if chunked else fit_sweep()
    curves = loss_vs_time(ds, GRID).compute()
    np.testing.assert_allclose(curves.values, [
        [3, 2, 2, 0.5, 0.5],
        [N, 1.0, 0.3, 0.3, 0.3],
        [4, 4, 4, 4, 1.0],
        [N, N, 2.5, 2.5, 2.5],  # 2.7 is worse than 2.5: the best so far stays
    ])
    assert curves.attrs["units"] == "mV"
    by_method = loss_vs_time_by_group(ds, GRID).compute()
    # before a point's first record its best loss is infinite: no median until both points have one
    np.testing.assert_allclose(by_method["median"].values, [[N, 1.5, 1.15, 0.4, 0.4], [N, N, 3.25, 3.25, 1.75]])
    np.testing.assert_allclose(by_method["q75"].sel(group="nevergrad").values, [N, N, 3.625, 3.625, 2.125])
    np.testing.assert_allclose(by_method["q25"].sel(group="adam").values, [N, 1.25, 0.725, 0.35, 0.35])


def test_time_grid_spans_the_records():
    grid = time_grid(fit_sweep(), n=11)
    assert grid[0] == pytest.approx(0.25) and grid[-1] == pytest.approx(8.0)
    assert np.all(np.diff(np.log(grid)) == pytest.approx(np.log(32) / 10))


def test_group_labels_join_swept_keys_and_best_point():
    ds = fit_sweep().assign_coords(model=("point", ["gif", "gif", "hh", "hh"]))
    assert list(group_labels(ds, ("model", "target", "method"))) == [
        "gif/adam", "gif/adam", "hh/nevergrad", "hh/nevergrad"]
    assert has_fits(ds)
    assert best_point(ds) == "p2"


def test_point_traces_drop_the_union_of_other_points_labels():
    """Two points on interleaved time grids and with 1 and 2 traces, outer-joined as open_sweep does."""
    a = xr.Dataset({"target_voltage": (("trace", "time"), [[1.0, 2.0, 3.0]]),
                    "fitted_voltage": (("trace", "time"), [[1.5, 2.5, 3.5]]),
                    "current": (("trace", "time"), [[0.1, 0.2, 0.3]])},
                   coords={"trace": [0], "time": [0.0, 1.0, 2.0]})
    b = xr.Dataset({"target_voltage": (("trace", "time"), [[7.0, 8.0], [9.0, 10.0]]),
                    "fitted_voltage": (("trace", "time"), [[7.5, 8.5], [9.5, 10.5]]),
                    "current": (("trace", "time"), [[1.0, 1.0], [2.0, 2.0]])},
                   coords={"trace": [0, 1], "time": [0.5, 1.5]})
    ds = xr.concat([a, b], dim="point", join="outer").assign_coords(point=["a", "b"])
    assert ds.sizes["time"] == 5  # interleaved union
    traces = point_traces(ds.chunk({"point": 1}), "a")
    np.testing.assert_allclose(traces["time"], [0.0, 1.0, 2.0])
    np.testing.assert_allclose(traces["target"], [[1.0, 2.0, 3.0]])
    np.testing.assert_allclose(traces["fitted"], [[1.5, 2.5, 3.5]])
    traces = point_traces(ds, "b")
    np.testing.assert_allclose(traces["time"], [0.5, 1.5])
    np.testing.assert_allclose(traces["current"], [[1.0, 1.0], [2.0, 2.0]])
