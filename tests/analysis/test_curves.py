"""Loss and accuracy curves per method against hand-computed medians (one point stopped early)."""

import numpy as np
import pytest
import xarray as xr

from analysis.curves import curves_by_group, final_values, has_curve

N = np.nan


def training_sweep() -> xr.Dataset:
    return xr.Dataset(
        {"accuracy": (("point", "iteration"), [[0.5, 0.6, 0.7, 0.8], [0.5, 0.7, N, N], [0.4, 0.4, 0.5, 0.6]],
                      {"units": "1"})},
        coords={"point": ["p1", "p2", "p3"], "method": ("point", ["bptt", "bptt", "diag"])},
    )


@pytest.mark.parametrize("chunked", [False, True])
def test_median_and_quartiles_per_method(chunked):
    ds = training_sweep().chunk({"point": 1}) if chunked else training_sweep()
    assert has_curve(ds, "accuracy") and not has_curve(ds, "loss")
    curves = curves_by_group(ds, "accuracy").compute()
    np.testing.assert_allclose(curves["median"].sel(group="bptt").values, [0.5, 0.65, 0.7, 0.8])
    np.testing.assert_allclose(curves["median"].sel(group="diag").values, [0.4, 0.4, 0.5, 0.6])
    np.testing.assert_allclose(curves["q25"].sel(group="bptt").values, [0.5, 0.625, 0.7, 0.8])
    np.testing.assert_array_equal(curves["n_points"].sel(group="bptt").values, [2, 2, 1, 1])
    np.testing.assert_array_equal(curves["iteration"].values, [0, 1, 2, 3])


def test_final_values_skip_the_padding():
    np.testing.assert_allclose(final_values(training_sweep(), "accuracy").values, [0.8, 0.7, 0.6])


def test_no_iterations_means_no_curve():
    assert not has_curve(training_sweep().isel(iteration=slice(0, 0)), "accuracy")
