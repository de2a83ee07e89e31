"""Spike statistics from stored spike events: rate per neuron, CV of ISIs, Fano factor, population rate.

Events are ``spike_time`` (time-step index), ``spike_neuron`` and ``spike_trial_offsets`` (trial k owns
events ``[offsets[k], offsets[k+1])``); in an ``open_sweep`` Dataset they are padded with -1 at the end.
Each point's events are reduced by a NumPy kernel mapped over ``point`` with ``xarray.apply_ufunc``
(``dask="parallelized"``), so the statistics stay lazy on a dask-backed store and run on any dask
scheduler. Conventions (as in the usual spike-train literature, population statistics, ddof = 0):

- rate (Hz) = spikes of the neuron / (trials * n_steps * dt);
- CV = std / mean of the neuron's inter-spike intervals, pooled over trials (an interval never spans two
  trials); NaN with fewer than 2 intervals;
- Fano factor = variance / mean over trials of the neuron's spike count; NaN with fewer than 2 trials or
  no spikes;
- population rate (Hz) = spikes of all neurons in a time bin / (trials * neurons * bin duration).
"""

from __future__ import annotations

import math

import dask
import numpy as np
import xarray as xr

from analysis.points import POINT, has_value, point_value

SPIKE_VARS = ("spike_time", "spike_neuron", "spike_trial_offsets")


def has_spikes(ds: xr.Dataset) -> bool:
    """Whether the Dataset holds spike events and the ``dt``/``n_steps`` needed to turn them into rates."""
    return all(v in ds.data_vars for v in SPIKE_VARS) and has_value(ds, "dt") and has_value(ds, "n_steps")


def neuron_counts(ds: xr.Dataset) -> xr.DataArray:
    """Neurons per point: finite entries of ``firing_rate``, else ``n_neurons``/``n_rec``, else max index + 1."""
    if "firing_rate" in ds.data_vars and "neuron" in ds["firing_rate"].dims:
        return ds["firing_rate"].notnull().sum("neuron").astype(np.int64)
    for name in ("n_neurons", "n_rec"):
        if has_value(ds, name):
            return point_value(ds, name).astype(np.int64)
    return (ds["spike_neuron"].max("spike") + 1).clip(min=0).astype(np.int64)


def trial_events(times: np.ndarray, neurons: np.ndarray, offsets: np.ndarray):
    """One point's valid events and the trial of each: ``(times, neurons, trial, n_trials)`` (padding dropped)."""
    offsets = np.asarray(offsets)
    offsets = offsets[offsets >= 0].astype(np.int64)
    if offsets.size < 2:
        empty = np.zeros(0, np.int64)
        return empty, empty, empty, 0
    n_events = int(offsets[-1])
    if n_events > np.asarray(times).size or np.any(np.diff(offsets) < 0):
        raise ValueError("spike_trial_offsets do not match spike_time (corrupt spike events)")
    times = np.asarray(times)[:n_events].astype(np.int64)
    neurons = np.asarray(neurons)[:n_events].astype(np.int64)
    trial = np.repeat(np.arange(offsets.size - 1), np.diff(offsets))
    return times, neurons, trial, offsets.size - 1


def _nonempty(events: xr.DataArray) -> xr.DataArray:
    """Events with at least one (padding) entry per point: dask cannot map over a zero-length core dim."""
    if events.shape[1] > 0:
        return events
    return xr.DataArray(np.full((events.shape[0], 1), -1, dtype=events.dtype), dims=events.dims,
                        coords={POINT: events[POINT].values})


def _point_kernel(times, neurons, offsets, n_steps, dt_ms, n_neurons, *, width: int, bin_ms: float, n_bins: int):
    """Rate, CV and Fano factor per neuron, population rate per bin, trials: one point, NumPy only."""
    rate = np.full(width, np.nan)
    cv = np.full(width, np.nan)
    fano = np.full(width, np.nan)
    pop = np.full(n_bins, np.nan)
    times, neurons, trial, n_trials = trial_events(times, neurons, offsets)
    n = int(n_neurons) if np.isfinite(n_neurons) else 0
    if n_trials == 0 or n <= 0 or not (np.isfinite(dt_ms) and np.isfinite(n_steps) and n_steps > 0):
        return rate, cv, fano, pop, n_trials
    if neurons.size and (neurons.max() >= n or neurons.min() < 0):
        raise ValueError(f"spike_neuron index {neurons.max()} outside the {n} recorded neurons")
    duration_ms = float(n_steps) * float(dt_ms)
    counts = np.bincount(trial * n + neurons, minlength=n_trials * n).reshape(n_trials, n).astype(np.float64)
    rate[:n] = counts.sum(0) / (n_trials * duration_ms / 1000.0)
    if n_trials >= 2:
        mean = counts.mean(0)
        with np.errstate(invalid="ignore", divide="ignore"):
            fano[:n] = np.where(mean > 0, counts.var(0) / mean, np.nan)
    order = np.lexsort((times, neurons, trial))
    t, nr, tr = times[order], neurons[order], trial[order]
    same = (nr[1:] == nr[:-1]) & (tr[1:] == tr[:-1])
    isi = np.diff(t)[same] * float(dt_ms)
    owner = nr[1:][same]
    k = np.bincount(owner, minlength=n)
    with np.errstate(invalid="ignore", divide="ignore"):
        isi_mean = np.bincount(owner, isi, minlength=n) / k
        isi_var = np.bincount(owner, (isi - isi_mean[owner]) ** 2, minlength=n) / k
        cv[:n] = np.where(k >= 2, np.sqrt(isi_var) / isi_mean, np.nan)
    bins_here = math.ceil(duration_ms / bin_ms - 1e-9)
    per_bin = np.bincount((times * float(dt_ms) // bin_ms).astype(np.int64), minlength=bins_here)[:bins_here]
    starts = np.arange(bins_here) * bin_ms
    span_s = (np.minimum(starts + bin_ms, duration_ms) - starts) / 1000.0
    pop[:bins_here] = per_bin / (n_trials * n * span_s)
    return rate, cv, fano, pop, n_trials


def spike_statistics(ds: xr.Dataset, bin_ms: float = 10.0) -> xr.Dataset:
    """Lazy per-point spike statistics: ``rate``, ``isi_cv``, ``fano`` (point, neuron), ``population_rate``
    (point, time_bin; coord = bin start in ms) and ``n_trials`` (point).

    Only the per-point scalars ``dt``, ``n_steps`` and the neuron count are computed eagerly (to size the
    outputs); the events themselves are reduced when the result is computed.
    """
    if not has_spikes(ds):
        raise KeyError("the Dataset has no spike events with dt and n_steps")
    if not bin_ms > 0:
        raise ValueError("bin_ms must be > 0")
    n_steps = point_value(ds, "n_steps")
    dt = point_value(ds, "dt").astype(np.float64)
    n_neurons = neuron_counts(ds)
    steps_np, dt_np, neurons_np = (np.asarray(a.values, dtype=np.float64)
                                   for a in dask.compute(n_steps, dt, n_neurons))
    width = int(ds.sizes["neuron"]) if "neuron" in ds.sizes else max(int(np.nanmax(neurons_np, initial=0)), 1)
    width = max(width, int(np.nanmax(neurons_np, initial=0)))
    duration = np.nan_to_num(steps_np * dt_np)
    n_bins = max(1, math.ceil(float(duration.max(initial=0.0)) / bin_ms - 1e-9))

    events = [_nonempty(ds[v]) for v in SPIKE_VARS]
    events = [e.chunk({e.dims[1]: -1}) if e.chunks is not None else e for e in events]
    rate, cv, fano, pop, trials = xr.apply_ufunc(
        _point_kernel,
        *events,
        n_steps.reset_coords(drop=True),
        dt.reset_coords(drop=True),
        n_neurons.reset_coords(drop=True),
        input_core_dims=[["spike"], ["spike"], ["trial_edge"], [], [], []],
        output_core_dims=[["neuron"], ["neuron"], ["neuron"], ["time_bin"], []],
        kwargs={"width": width, "bin_ms": float(bin_ms), "n_bins": n_bins},
        vectorize=True,
        dask="parallelized",
        output_dtypes=[np.float64, np.float64, np.float64, np.float64, np.int64],
        dask_gufunc_kwargs={"output_sizes": {"neuron": width, "time_bin": n_bins}},
    )
    point_coords = {c: ds[c] for c in ds.coords if ds[c].dims == (POINT,)}
    out = xr.Dataset(
        {
            "rate": rate.assign_attrs(units="Hz", long_name="firing rate per neuron"),
            "isi_cv": cv.assign_attrs(units="1", long_name="CV of inter-spike intervals"),
            "fano": fano.assign_attrs(units="1", long_name="Fano factor of spike counts over trials"),
            "population_rate": pop.assign_attrs(units="Hz", long_name=f"population rate in {bin_ms:g} ms bins"),
            "n_trials": trials.assign_attrs(units="1", long_name="recorded trials"),
        },
        coords={**point_coords, "time_bin": ("time_bin", np.arange(n_bins) * float(bin_ms), {"units": "ms"})},
    )
    if "is_excitatory" in ds.data_vars and ds["is_excitatory"].dims == (POINT, "neuron"):
        out = out.assign(is_excitatory=ds["is_excitatory"].reset_coords(drop=True))
    return out


def population_summary(stats: xr.Dataset) -> xr.Dataset:
    """Per point: mean rate, median CV and mean Fano factor over neurons (E and I separately when known)."""
    out = {}
    groups = {"all": None}
    if "is_excitatory" in stats:
        exc = stats["is_excitatory"].astype(bool)
        groups.update({"exc": exc, "inh": ~exc})
    for label, mask in groups.items():
        def pick(var, mask=mask):
            return stats[var] if mask is None else stats[var].where(mask)
        out[f"rate_mean_{label}"] = pick("rate").mean("neuron").assign_attrs(units="Hz")
        out[f"isi_cv_median_{label}"] = pick("isi_cv").median("neuron").assign_attrs(units="1")
        out[f"fano_mean_{label}"] = pick("fano").mean("neuron").assign_attrs(units="1")
    return xr.Dataset(out)


def trial_raster(ds: xr.Dataset, point: str, trial: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Spike times (ms) and neuron indices of one trial of one point (eager; for a raster plot)."""
    one = ds.sel({POINT: point})
    times, neurons, trials, n_trials = trial_events(
        one["spike_time"].values, one["spike_neuron"].values, one["spike_trial_offsets"].values)
    if not 0 <= trial < n_trials:
        raise IndexError(f"point {point} has {n_trials} recorded trials, not trial {trial}")
    keep = trials == trial
    dt = float(point_value(ds, "dt").sel({POINT: point}).values)
    return times[keep] * dt, neurons[keep]
