"""Benchmark: statistics and `diffbrain report` on a synthetic train-network store; prints JSON.

Writes P points (seeded random spike trains, weight histograms, training curves) with analysis.store,
then times open_sweep, the lazy spike statistics and the whole report on dask's threads and on a
LocalCluster. Usage: python bench/report_statistics.py [--points 100] [--neurons 200] [--workers 2]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import xarray as xr

os.environ.setdefault("DIFFBRAIN_NO_PROGRESS", "1")


def point_dataset(rng: np.random.Generator, neurons: int, n_steps: int, trials: int, iterations: int):
    dt = 1.0
    events_t, events_n, offsets = [], [], [0]
    rates = rng.uniform(2, 40, neurons)  # Hz
    for _ in range(trials):
        spikes = rng.random((n_steps, neurons)) < rates * dt / 1000
        t, n = np.nonzero(spikes)
        events_t.append(t)
        events_n.append(n)
        offsets.append(offsets[-1] + t.size)
    t, n = np.concatenate(events_t).astype(np.int32), np.concatenate(events_n).astype(np.int32)
    edges = np.linspace(0, 1, 41)
    before = np.histogram(rng.gamma(2, 0.1, neurons * neurons // 5), edges)[0]
    after = np.histogram(rng.gamma(1.5, 0.12, neurons * neurons // 5), edges)[0]
    counts = np.bincount(n, minlength=neurons)
    return xr.Dataset({
        "loss": ("iteration", np.exp(-np.arange(iterations) / 30.0)),
        "accuracy": ("iteration", 1 - 0.5 * np.exp(-np.arange(iterations) / 30.0)),
        "weight_bin_edges": ("w_edge", edges),
        "w_hist_exc": (("snapshot", "w_bin"), np.stack([before, after])),
        "w_hist_inh": (("snapshot", "w_bin"), np.stack([after, before])),
        "spike_time": ("spike", t), "spike_neuron": ("spike", n),
        "spike_trial_offsets": ("trial_edge", np.array(offsets, np.int64)),
        "firing_rate": ("neuron", counts / (trials * n_steps * dt / 1000)),
        "is_excitatory": ("neuron", np.arange(neurons) < int(0.8 * neurons)),
        "dt": ((), dt), "n_steps": ((), n_steps),
    }, coords={"snapshot": [0, iterations]})


def timed(fn):
    start = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--points", type=int, default=100)
    parser.add_argument("--neurons", type=int, default=200)
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()

    from analysis.collect import open_sweep
    from analysis.report import build_report
    from analysis.scheduler import SchedulerOptions
    from analysis.spikes import spike_statistics
    from analysis.store import create_store, write_point

    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        store = Path(tmp) / "bench.zarr"
        create_store(store, {"name": "bench", "experiment": "train-network", "spec": {}, "source": ""},
                     {"created": "", "toolkit_version": "bench", "git_commit": None, "packages": {}})
        start = time.perf_counter()
        n_spikes = 0
        for i in range(args.points):
            ds = point_dataset(rng, args.neurons, args.steps, trials=2, iterations=100)
            n_spikes += ds.sizes["spike"]
            write_point(store, f"p{i:05d}", ds, {
                "point_id": f"p{i:05d}", "experiment": "train-network",
                "params": {"method": ["bptt", "diag", "expsm_diag"][i % 3], "seed": i}, "seed": i,
                "status": "complete", "error": None})
        write_s = time.perf_counter() - start
        ds, open_s = timed(lambda: open_sweep(store))
        _, spikes_s = timed(lambda: spike_statistics(ds).compute())
        _, report_threads_s = timed(lambda: build_report(store, Path(tmp) / "threads"))
        _, report_local_s = timed(lambda: build_report(store, Path(tmp) / "local", scheduler="local",
                                                        options=SchedulerOptions(workers=args.workers)))
    print(json.dumps({
        "benchmark": "report_statistics", "points": args.points, "neurons": args.neurons, "steps": args.steps,
        "spike_events": int(n_spikes), "write_store_s": round(write_s, 3), "open_sweep_s": round(open_s, 3),
        "spike_statistics_threads_s": round(spikes_s, 3), "report_threads_s": round(report_threads_s, 3),
        "report_local_cluster_s": round(report_local_s, 3), "local_workers": args.workers,
        "note": "wall seconds; the local-cluster time includes starting and stopping the cluster",
    }))


if __name__ == "__main__":
    main()
