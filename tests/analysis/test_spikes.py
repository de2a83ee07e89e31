"""Spike statistics against hand-computed values on a two-point sweep in open_sweep's shape."""

import numpy as np
import pytest
import xarray as xr

from analysis.spikes import has_spikes, population_summary, spike_statistics, trial_raster

PAD = -1


def pad(values, size, fill=PAD):
    out = np.full(size, fill, dtype=np.int64)
    out[: len(values)] = values
    return out


def two_point_sweep() -> xr.Dataset:
    """Point a: dt 1 ms, 100 steps, 3 neurons, 2 trials. Point b: dt 0.5 ms, 60 steps, 2 neurons, 1 trial.

    Events within a trial are deliberately out of time order.
    """
    a_events = [(40, 0), (10, 0), (50, 1), (20, 0)] + [(30, 1), (5, 0), (90, 1), (15, 0), (60, 1)]
    a_offsets = [0, 4, 9]
    b_events = [(0, 1), (59, 0), (20, 1), (40, 1)]
    b_offsets = [0, 4]
    n_spike, n_edge = 9, 3
    spike_time = np.stack([pad([t for t, _ in a_events], n_spike), pad([t for t, _ in b_events], n_spike)])
    spike_neuron = np.stack([pad([n for _, n in a_events], n_spike), pad([n for _, n in b_events], n_spike)])
    offsets = np.stack([pad(a_offsets, n_edge), pad(b_offsets, n_edge)])
    firing_rate = np.array([[25.0, 20.0, 0.0], [100 / 3, 100.0, np.nan]], dtype=np.float32)
    is_exc = np.array([[True, True, False], [True, False, False]])
    return xr.Dataset(
        {
            "spike_time": (("point", "spike"), spike_time.astype(np.int32)),
            "spike_neuron": (("point", "spike"), spike_neuron.astype(np.int32)),
            "spike_trial_offsets": (("point", "trial_edge"), offsets),
            "firing_rate": (("point", "neuron"), firing_rate, {"units": "Hz"}),
            "is_excitatory": (("point", "neuron"), is_exc),
            "dt": ("point", np.array([1.0, 0.5], np.float32), {"units": "ms"}),
            "n_steps": ("point", np.array([100, 60])),
        },
        coords={"point": ["a", "b"], "method": ("point", ["bptt", "diag"]), "status": ("point", ["complete"] * 2)},
        attrs={"fixed_params": {"n_rec": 3}},
    )


EXPECTED_RATE = [[25.0, 20.0, 0.0], [100 / 3, 100.0, np.nan]]
EXPECTED_CV = [[1 / (2 * np.sqrt(2)), 0.0, np.nan], [np.nan, 0.0, np.nan]]
EXPECTED_FANO = [[0.1, 0.5, np.nan], [np.nan, np.nan, np.nan]]
# 20 ms bins: a has 5 full bins; b has 30 ms, so a full bin and a 10 ms bin, then nothing
EXPECTED_POP = [[25.0, 50 / 3, 50 / 3, 25 / 3, 25 / 3], [50.0, 100.0, np.nan, np.nan, np.nan]]


def check(stats: xr.Dataset):
    np.testing.assert_allclose(stats["rate"].values, EXPECTED_RATE, rtol=1e-9)
    np.testing.assert_allclose(stats["isi_cv"].values, EXPECTED_CV, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(stats["fano"].values, EXPECTED_FANO, rtol=1e-9)
    np.testing.assert_allclose(stats["population_rate"].values, EXPECTED_POP, rtol=1e-9)
    np.testing.assert_array_equal(stats["n_trials"].values, [2, 1])
    np.testing.assert_allclose(stats["time_bin"].values, [0, 20, 40, 60, 80])


def test_hand_computed_statistics_in_memory():
    ds = two_point_sweep()
    assert has_spikes(ds)
    stats = spike_statistics(ds, bin_ms=20.0)
    check(stats.compute())
    assert stats["rate"].attrs["units"] == "Hz"
    assert list(stats["method"].values) == ["bptt", "diag"]


def test_lazy_on_dask_chunks_gives_the_same_numbers():
    ds = two_point_sweep().chunk({"point": 1, "spike": 4})
    stats = spike_statistics(ds, bin_ms=20.0)
    assert stats["rate"].chunks is not None  # still lazy
    check(stats.compute())


def test_computed_rate_matches_the_stored_firing_rate():
    ds = two_point_sweep()
    stats = spike_statistics(ds, bin_ms=20.0).compute()
    np.testing.assert_allclose(stats["rate"].values, ds["firing_rate"].values, rtol=1e-6)


def test_population_summary_splits_e_and_i():
    summary = population_summary(spike_statistics(two_point_sweep(), bin_ms=20.0)).compute()
    np.testing.assert_allclose(summary["rate_mean_all"].values, [15.0, (100 / 3 + 100) / 2])
    np.testing.assert_allclose(summary["rate_mean_exc"].values, [22.5, 100 / 3])
    np.testing.assert_allclose(summary["rate_mean_inh"].values, [0.0, 100.0])
    np.testing.assert_allclose(summary["isi_cv_median_all"].values, [(1 / (2 * np.sqrt(2))) / 2, 0.0])


def test_raster_of_one_trial():
    times, neurons = trial_raster(two_point_sweep(), "a", trial=1)
    np.testing.assert_allclose(times, [30, 5, 90, 15, 60])
    np.testing.assert_array_equal(neurons, [1, 0, 1, 0, 1])
    with pytest.raises(IndexError):
        trial_raster(two_point_sweep(), "b", trial=1)


def test_neuron_count_falls_back_to_max_index_without_firing_rate():
    ds = two_point_sweep().drop_vars(["firing_rate", "is_excitatory"])
    ds.attrs = {}
    stats = spike_statistics(ds, bin_ms=50.0).compute()
    # b's highest neuron index is 1: two neurons, so the population rate of its 30 ms bin is 4 / (2 * 0.03)
    np.testing.assert_allclose(stats["population_rate"].values[1], [4 / 0.06, np.nan])
    np.testing.assert_allclose(stats["rate"].values[0], [25.0, 20.0])  # neuron 2 never fired: not seen


def test_corrupt_offsets_are_refused():
    ds = two_point_sweep()
    ds["spike_trial_offsets"][0, 2] = 99
    with pytest.raises(ValueError, match="corrupt"):
        spike_statistics(ds).compute()


@pytest.mark.parametrize("chunked", [False, True])
def test_a_silent_network_has_zero_rates_and_no_cv(chunked):
    ds = two_point_sweep().isel(spike=slice(0, 0))
    ds["spike_trial_offsets"][:] = [[0, 0, 0], [0, 0, -1]]
    ds = ds.chunk({"point": 1}) if chunked else ds
    stats = spike_statistics(ds, bin_ms=50.0).compute()
    np.testing.assert_allclose(stats["rate"].values, [[0, 0, 0], [0, 0, np.nan]])
    assert np.isnan(stats["isi_cv"].values).all() and np.isnan(stats["fano"].values).all()
    np.testing.assert_allclose(stats["population_rate"].values, [[0, 0], [0, np.nan]])
