"""Step cost of training the E/I network: seconds per step, compile seconds, XLA temp bytes, peak RSS.

Every configuration runs the ``scaling-probe`` experiment in a fresh Python process (so peak RSS does
not leak between points); methods are measured side by side for each (T, connectivity) so that ratios
stay meaningful on a shared machine. Prints one JSON document: the points, then per (T, connectivity)
the expsm_diag/bptt and diag/bptt time ratios, and per method the growth from the smallest to the
largest T of XLA temp bytes and of peak RSS.

Full run (issue 3): n_rec 200, batch 32, T 1000 and 2000, dense and rand, bptt / diag / expsm_diag, 3 timed
steps each. ``--quick`` (n_rec 50, batch 8, T 200 and 400, 2 timed steps) takes a few minutes. The sparse
over dense step ratio per method (``sparse_over_dense``) gives the crossover when ``--n-rec`` and
``--conn-prob`` list several values, e.g. ``--T 500 --n-rec 100,200,400 --conn-prob 0.05,0.2,0.5``.

    python bench/network_step_cost.py [--quick] [--methods bptt,expsm_diag] [--T 1000,2000] ...
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

from _child import run_child

CHILD = """
import json, sys
from diffbrain.experiments import get
ds = get("scaling-probe")(json.loads(sys.argv[1]))
out = {k: (None if ds[k].values != ds[k].values else ds[k].values.item()) for k in
       ("step_seconds_median", "compile_seconds", "temp_bytes", "argument_bytes", "output_bytes", "peak_rss_bytes",
        "estimated_bytes", "device_peak_bytes", "loss")}
out["step_seconds"] = [float(s) for s in ds["step_seconds"].values]
out["impl_used"] = ds.attrs.get("sparse_impl")
print("RESULT " + json.dumps(out))
"""


def measure(params: dict, timeout: float) -> dict:
    return run_child(CHILD, params, timeout)


def summarise(points: list[dict], t_values: list[int]) -> dict:
    ok = [p for p in points if "error" not in p]
    label = lambda p: (f"n_rec={p['n_rec']} " + p["conn_method"]  # noqa: E731
                       + ("" if p["conn_method"] == "dense" else f"/{p['sparse_impl']} p={p['conn_prob']}"))
    by = {(p["method"], p["n_steps"], label(p)): p for p in ok}
    ratios = {}
    for t in t_values:
        for conn in sorted({label(p) for p in ok}):
            base = by.get(("bptt", t, conn))
            if not base:
                continue
            for method in ("expsm_diag", "diag"):
                if (method, t, conn) in by:
                    ratios[f"{method}/bptt T={t} {conn}"] = (by[method, t, conn]["step_seconds_median"]
                                                             / base["step_seconds_median"])
    growth = {}
    lo, hi = min(t_values), max(t_values)
    for (method, t, conn), p in by.items():
        if t == lo and (method, hi, conn) in by and hi != lo:
            q = by[method, hi, conn]
            growth[f"{method} {conn} T {lo}->{hi}"] = {
                "temp_bytes": q["temp_bytes"] / p["temp_bytes"] - 1.0,
                "peak_rss_bytes": q["peak_rss_bytes"] / p["peak_rss_bytes"] - 1.0,
                "peak_rss_added_mb": (q["peak_rss_bytes"] - p["peak_rss_bytes"]) / 1e6,
            }
    # sparse (CSR) over dense step time, per method, n_rec and connection probability: the crossover
    sparse_over_dense = {}
    for p in ok:
        if p["conn_method"] == "dense":
            continue
        dense = next((q for q in ok if q["conn_method"] == "dense" and q["method"] == p["method"]
                      and q["n_steps"] == p["n_steps"] and q["n_rec"] == p["n_rec"]), None)
        if dense:
            sparse_over_dense[f"{p['method']} T={p['n_steps']} {label(p)}"] = (p["step_seconds_median"]
                                                                               / dense["step_seconds_median"])
    return {"time_ratio_to_bptt": ratios, "memory_growth": growth, "sparse_over_dense": sparse_over_dense}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="n_rec 50, batch 8, T 200,400, 2 timed steps")
    parser.add_argument("--methods", default="bptt,expsm_diag,diag")
    parser.add_argument("--T", default=None, help="comma-separated trial lengths (default 1000,2000)")
    parser.add_argument("--conn", default="dense,rand")
    parser.add_argument("--n-rec", default=None, help="comma-separated network sizes (default 200)")
    parser.add_argument("--batch", type=int, default=None)
    parser.add_argument("--steps", type=int, default=None, help="timed steps per point (default 3)")
    parser.add_argument("--conn-prob", default="0.2", help="comma-separated connection probabilities (rand)")
    parser.add_argument("--sparse-impl", default="auto",
                        help="comma-separated sparse operators for rand/gaussian: auto (what a run picks from the "
                             "crossover table; recorded as impl_used), event (CSR), masked_dense")
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds per point")
    args = parser.parse_args(argv)
    t_values = [int(t) for t in (args.T or ("200,400" if args.quick else "1000,2000")).split(",")]
    sizes = [int(n) for n in (args.n_rec or ("50" if args.quick else "200")).split(",")]
    batch = args.batch or (8 if args.quick else 32)
    steps = args.steps or (2 if args.quick else 3)
    points = []
    started = time.perf_counter()
    connectivities = [(conn, impl, float(prob)) for conn in args.conn.split(",")
                      for impl in (["event"] if conn == "dense" else args.sparse_impl.split(","))
                      for prob in ([0.2] if conn == "dense" else args.conn_prob.split(","))]
    for t in t_values:
        for n_rec in sizes:
            for conn, impl, prob in connectivities:
                for method in args.methods.split(","):
                    params = dict(method=method, n_steps=t, n_rec=n_rec, batch_size=batch, conn_method=conn,
                                  conn_prob=prob, sparse_impl=impl, steps=steps)
                    print(f"[step cost] {method} T={t} n_rec={n_rec} {conn} {impl} p={prob} (load "
                          f"{os.getloadavg()[0]:.1f}) ...", file=sys.stderr, flush=True)
                    point = measure(params, args.timeout)
                    print(f"[step cost]   {json.dumps(point)}", file=sys.stderr, flush=True)
                    points.append(point)
    print(json.dumps({
        "benchmark": "network_step_cost", "n_rec": sizes, "batch_size": batch, "T": t_values,
        "machine": {"cpus": os.cpu_count(), "load_average_1min": os.getloadavg()[0]},
        "points": points, **summarise(points, t_values), "total_seconds": time.perf_counter() - started,
    }, indent=2))


if __name__ == "__main__":
    main()
