"""Connectome-constrained networks against a ``rand`` network of the same size and density, and loading a large
edge list. Prints JSON.

1. ``accuracy``: evidence accumulation on ``Cook2019Herm`` (its 302 neurons and the chemical synapses among
   them) and on a ``rand`` network with the same n_rec and connection density, each trained with BPTT and
   ES-D-RTRL (``expsm_diag``) through the ``train-network`` experiment, same task, seed and optimiser:
   iterations, wall seconds (compile, median step, total), final training accuracy (mean of the last 10
   iterations) and test accuracy on fresh trials; for the connectome, the change of the weight
   distribution per transmitter (mean |w| before -> after, total-variation distance of the log-binned
   histograms).
   Each point runs in a fresh process (its one-time costs, e.g. compiling native kernels, are its own).
2. ``load``: a synthetic connectome of ``--nodes`` nodes and ``--edges`` edges (default 10^5 and 10^7, random
   pairs, counts 1-5, 20% GABA nodes) written as CSV in a temporary folder (never in the repository), then
   loaded by :func:`diffbrain.network.connectome.load_connectome` in a fresh process: seconds and peak RSS,
   beside pandas.read_csv of the same file (the reference for merely reading it) and the bytes a dense
   count matrix would need.

    python bench/connectome.py --quick           # short task, 30 iterations: ~10 min on 2 loaded cores
    python bench/connectome.py --parts load --edges 1000000
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

QUICK_TASK = dict(t_interval=5.0, t_cue=10.0, t_delay=20.0, t_recall=10.0, num_cue=3, n_per_group=6)
FULL_TASK = dict(t_interval=10.0, t_cue=20.0, t_delay=100.0, t_recall=20.0, num_cue=7, n_per_group=10)
COMMON = dict(tau_neu=30.0, tau_a=100.0, ff_scale=6.0, rec_scale=2.0, cue_rate=80.0, noise_rate=20.0, lr=0.01,
              batch_size=16, test_batch=64, record_trials=4, record_neurons=0, hist_bins=40, seed=0,
              sparse_impl="event")


def train_point(params: dict) -> dict:
    import numpy as np

    from diffbrain.experiments import RunContext, get

    start = time.perf_counter()
    ds = get("train-network")(params, RunContext(seed=params["seed"]))
    wall = time.perf_counter() - start
    acc = ds["accuracy"].values
    out = {"n_rec": int(ds.attrs["n_rec"]), "iterations": int(acc.size), "wall_seconds": round(wall, 2),
           "compile_seconds": round(float(ds["compile_seconds"]), 2),
           "median_step_seconds": round(float(np.median(ds["step_seconds"].values)), 4),
           "first_train_accuracy": round(float(acc[:10].mean()), 4),
           "final_train_accuracy": round(float(acc[-10:].mean()), 4),
           "test_accuracy": round(float(ds["test_accuracy"]), 4),
           "final_loss": round(float(ds["loss"].values[-10:].mean()), 4)}
    if "w_hist_transmitter" in ds:
        change = {}
        for tx in ds["transmitter"].values:
            hist = ds["w_hist_transmitter"].sel(transmitter=tx).values.astype(float)
            if hist[0].sum() == 0:
                continue
            dens = hist / hist.sum(axis=1, keepdims=True)
            mean = ds["w_mean_transmitter"].sel(transmitter=tx).values
            change[str(tx)] = {"synapses": int(ds["synapses_transmitter"].sel(transmitter=tx)),
                               "mean_before": float(mean[0]), "mean_after": float(mean[1]),
                               "mean_change_percent": round(100.0 * float(mean[1] / mean[0] - 1.0), 3),
                               "tv_distance": round(0.5 * float(np.abs(dens[1] - dens[0]).sum()), 4),
                               "rate_hz": round(float(ds["rate_transmitter"].sel(transmitter=tx)), 2)}
        out["weights_by_transmitter"] = change
        out["n_synapses"] = int(ds.attrs["n_synapses"])
    return out


def accuracy_part(args) -> dict:
    from diffbrain.network.config import NetworkConfig
    from diffbrain.network.connectome import build_wiring

    wiring = build_wiring(NetworkConfig(conn_method="connectome", connectome="Cook2019Herm"))
    density = wiring.nnz / wiring.n**2
    task = QUICK_TASK if args.quick else FULL_TASK
    base = {**COMMON, **task, "iterations": args.iterations}
    networks = {"connectome": dict(conn_method="connectome", connectome="Cook2019Herm"),
                "rand": dict(conn_method="rand", n_rec=wiring.n, conn_prob=density)}
    results = {"connectome": "Cook2019Herm", "n_rec": wiring.n, "synapses": wiring.nnz, "density": round(density, 5),
               "task": task, "iterations": args.iterations, "batch_size": COMMON["batch_size"], "runs": {}}
    for method in args.methods.split(","):
        for name, net in networks.items():  # each in a fresh process: one-time costs (kernels) its own
            run = subprocess.run([sys.executable, __file__, "--point", json.dumps({**base, **net, "method": method})],
                                 capture_output=True, text=True, timeout=args.timeout)
            point = json.loads(run.stdout) if run.returncode == 0 else {"error": run.stderr.strip()[-400:]}
            results["runs"][f"{name}/{method}"] = point
            print(f"# {name}/{method}: {json.dumps(point)}", file=sys.stderr, flush=True)
    return results


LOAD_CHILD = """
import json, sys, time
kind, edges, nodes = sys.argv[1:4]
start = time.perf_counter()
if kind == "diffbrain":
    from diffbrain.network.connectome import load_connectome
    conn = load_connectome(edges, nodes)
    extra = {"synapses": int(conn.chemical.nnz), "csr_bytes": int(conn.chemical.nbytes + conn.counts.nbytes)}
else:
    import pandas
    frame = pandas.read_csv(edges)
    extra = {"rows": int(len(frame))}
seconds = time.perf_counter() - start
# VmHWM: this process image's peak RSS (ru_maxrss would carry the parent's peak across exec)
peak = next(int(line.split()[1]) * 1024 for line in open("/proc/self/status") if line.startswith("VmHWM:"))
print(json.dumps({"seconds": round(seconds, 2), "peak_rss_bytes": peak, **extra}))
"""


def write_synthetic(folder: str, n_nodes: int, n_edges: int, seed: int = 0) -> tuple[str, str, float]:
    import numpy as np
    import pyarrow as pa
    import pyarrow.csv as pcsv

    start = time.perf_counter()
    rng = np.random.default_rng(seed)
    nodes, edges = os.path.join(folder, "nodes.csv"), os.path.join(folder, "edges.csv")
    names = np.arange(n_nodes)
    classes = np.where(names < n_nodes // 10, "sensory", np.where(names < n_nodes // 2, "inter", "motor"))
    tx = np.where(names % 5 == 0, "gaba", "acetylcholine")
    pcsv.write_csv(pa.table({"name": [f"n{i}" for i in names], "class": classes, "transmitter": tx}), nodes)
    chunk = 2_000_000
    with pcsv.CSVWriter(edges, pa.schema([("pre", pa.string()), ("post", pa.string()), ("weight", pa.int32())]),
                        write_options=pcsv.WriteOptions(quoting_style="none")) as writer:
        for lo in range(0, n_edges, chunk):
            m = min(chunk, n_edges - lo)
            pre = np.char.add("n", rng.integers(0, n_nodes, m).astype(str))
            post = np.char.add("n", rng.integers(0, n_nodes, m).astype(str))
            writer.write_table(pa.table({"pre": pre, "post": post, "weight": rng.integers(1, 6, m, dtype=np.int32)}))
    return edges, nodes, time.perf_counter() - start


def load_part(args) -> dict:
    with tempfile.TemporaryDirectory(prefix="connectome-bench-") as folder:
        edges, nodes, seconds = write_synthetic(folder, args.nodes, args.edges)
        out = {"nodes": args.nodes, "edges": args.edges, "csv_bytes": os.path.getsize(edges),
               "write_seconds": round(seconds, 1), "dense_count_matrix_bytes": args.nodes**2 * 4}
        for kind in ("diffbrain", "pandas"):
            run = subprocess.run([sys.executable, "-c", LOAD_CHILD, kind, edges, nodes], capture_output=True,
                                 text=True, timeout=args.timeout)
            out[kind] = json.loads(run.stdout) if run.returncode == 0 else {"error": run.stderr.strip()[-400:]}
        return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short task and 30 iterations")
    parser.add_argument("--parts", default="accuracy,load")
    parser.add_argument("--methods", default="bptt,expsm_diag")
    parser.add_argument("--iterations", type=int, default=None)
    parser.add_argument("--nodes", type=int, default=100_000)
    parser.add_argument("--edges", type=int, default=10_000_000)
    parser.add_argument("--timeout", type=int, default=1800, help="seconds per load process")
    parser.add_argument("--point", help=argparse.SUPPRESS)  # internal: train one point, print its JSON
    args = parser.parse_args()
    if args.point:
        print(json.dumps(train_point(json.loads(args.point))))
        return
    args.iterations = args.iterations or (30 if args.quick else 300)
    out = {"uptime_before": os.getloadavg()}
    parts = args.parts.split(",")
    if "load" in parts:
        out["load"] = load_part(args)
        print(json.dumps({"load": out["load"]}), file=sys.stderr, flush=True)
    if "accuracy" in parts:
        out["accuracy"] = accuracy_part(args)
    out["uptime_after"] = os.getloadavg()
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
