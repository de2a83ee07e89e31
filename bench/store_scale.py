"""Store benchmark (issue 4): many processes writing one store at once, and opening a large store.

1. ``--writers`` processes (default 64) start together and each writes ``--points-per-writer`` points
   into one store: points lost must be 0 (each point is its own group; no shared file is rewritten).
2. A store of ``--open-points`` small points (default 10 000): ``collect`` (consolidate), then
   ``open_sweep`` (goal < 30 s), a first computation, and ``open_sweep`` without the index. The points
   are clones (same arrays, their own ids, params and attrs) of 16 points written with ``write_point``,
   so building the store takes seconds; opening reads every point's metadata all the same.

Prints one JSON object. Usage: python bench/store_scale.py [--writers 64] [--open-points 10000]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import xarray as xr

from analysis.collect import consolidate, open_sweep
from analysis.store import create_store, point_states, write_point

SWEEP = {"name": "bench", "experiment": "fit-neuron", "spec": {}, "source": ""}


def dataset(i: int) -> xr.Dataset:
    rng = np.random.default_rng(i)
    n_spikes = 20 + 7 * (i % 5)
    return xr.Dataset(
        {
            "fitted": (("param",), rng.random(4).astype(np.float32), {"units": "1"}),
            "loss": ((), np.float32(rng.random()), {"units": "mV"}),
            "start_loss": (("start",), rng.random(4).astype(np.float32), {"units": "mV"}),
            "progress_loss": (("progress",), rng.random(50).astype(np.float32), {"units": "mV"}),
            "spike_time": (("spike",), np.sort(rng.integers(0, 1000, n_spikes)).astype(np.int32)),
            "spike_trial_offsets": (("trial_edge",), np.asarray([0, n_spikes], np.int64)),
        },
        coords={"param": ["a", "b", "c", f"d{i % 2}"]},
        attrs={"model": "gif", "method": "adam"},
    )


def record(point_id: str, i: int) -> dict:
    return {"point_id": point_id, "experiment": "fit-neuron", "params": {"seed": i, "lr": 1e-3 * (1 + i % 97)},
            "seed": i, "host": "bench", "devices": ["cpu"], "started": "", "ended": "", "wall_seconds": 0.1,
            "peak_rss_bytes": 0, "status": "complete", "error": None}


def writer(store: str, index: int, count: int, start_at: float) -> None:
    while time.time() < start_at:
        time.sleep(0.01)
    for k in range(count):
        i = index * count + k
        write_point(store, f"w{i:06d}", dataset(i), record(f"w{i:06d}", i))


def concurrent_writers(folder: Path, writers: int, per_writer: int) -> dict:
    store = create_store(folder / "concurrent.zarr", SWEEP, {"created": "bench"})
    start_at = time.time() + 5.0 + 0.15 * writers  # every process imported and waiting by then
    procs = [subprocess.Popen([sys.executable, __file__, "--_writer", str(store), str(w), str(per_writer),
                               str(start_at)]) for w in range(writers)]
    codes = [p.wait() for p in procs]
    seconds = time.time() - start_at
    states = point_states(store)
    complete = sum(1 for s in states.values() if s == "complete")
    expected = writers * per_writer
    opened = open_sweep(store)
    return {"writers": writers, "points_expected": expected, "points_complete": complete,
            "points_lost": expected - complete, "writer_failures": sum(1 for c in codes if c != 0),
            "open_sweep_points": int(opened.sizes["point"]), "write_seconds": round(seconds, 2)}


def _clone(store: Path, template: str, point_id: str, i: int) -> None:
    target = store / "points" / point_id
    shutil.copytree(store / "points" / template, target)
    meta_path = target / "zarr.json"
    meta = json.loads(meta_path.read_text())
    meta["attributes"].update(record(point_id, i))
    meta_path.write_text(json.dumps(meta))


def large_store(folder: Path, n_points: int) -> dict:
    store = create_store(folder / "large.zarr", SWEEP, {"created": "bench"})
    t0 = time.perf_counter()
    templates = [f"t{i:02d}" for i in range(16)]
    for i, name in enumerate(templates):
        write_point(store, name, dataset(i), record(name, i))
    for i in range(16, n_points):
        _clone(store, templates[i % 16], f"p{i:06d}", i)
    build = time.perf_counter() - t0

    t0 = time.perf_counter()
    summary = consolidate(store)
    t_collect = time.perf_counter() - t0
    t0 = time.perf_counter()
    ds = open_sweep(store)
    t_open = time.perf_counter() - t0
    t0 = time.perf_counter()
    mean_loss = float(ds["loss"].mean().compute())
    t_loss = time.perf_counter() - t0
    t0 = time.perf_counter()
    spikes = ds["spike_time"].compute()
    t_spikes = time.perf_counter() - t0
    shutil.move(store / "index", folder / "index-aside")
    t0 = time.perf_counter()
    unindexed = open_sweep(store)
    t_open_unindexed = time.perf_counter() - t0
    return {
        "points": n_points, "points_indexed": summary["points"], "build_seconds": round(build, 2),
        "collect_seconds": round(t_collect, 2), "open_sweep_seconds": round(t_open, 2),
        "open_sweep_goal_seconds": 30, "open_sweep_points": int(ds.sizes["point"]),
        "compute_mean_loss_seconds": round(t_loss, 2), "compute_spike_time_seconds": round(t_spikes, 2),
        "spike_time_shape": list(spikes.shape), "mean_loss": round(mean_loss, 4),
        "open_sweep_without_index_seconds": round(t_open_unindexed, 2),
        "same_points_without_index": bool((unindexed.point.values == ds.point.values).all()),
        "index_megabytes": round((folder / "index-aside" / "zarr.json").stat().st_size / 2**20, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--writers", type=int, default=64)
    parser.add_argument("--points-per-writer", type=int, default=4)
    parser.add_argument("--open-points", type=int, default=10_000)
    parser.add_argument("--_writer", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args._writer:
        store, index, count, start_at = args._writer
        writer(store, int(index), int(count), float(start_at))
        return
    with tempfile.TemporaryDirectory(prefix="store-scale-") as tmp:
        folder = Path(tmp)
        result = {"benchmark": "store_scale", "cpus": os.cpu_count(),
                  "concurrent": concurrent_writers(folder, args.writers, args.points_per_writer),
                  "large": large_store(folder, args.open_points)}
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
