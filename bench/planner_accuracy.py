"""The memory planner against XLA: planned temp and argument bytes of a training step (proxies fitted and
extrapolated, :mod:`diffbrain.network.planner`) beside the step compiled at the point's own size, in a fresh
process each. Prints JSON (one object per size and the ratios planned / measured).

    python bench/planner_accuracy.py             # expsm_diag and bptt, rand event, n_rec 4000 and 20000
    python bench/planner_accuracy.py --quick     # n_rec 4000 only
    python bench/planner_accuracy.py --sizes 100000:0.001 --methods expsm_diag

The proxies' fit is cached (``DIFFBRAIN_PLAN_CACHE``); the direct compile at n_rec 10^5 builds 10^7
synapses on the host (about 40 s to compile on a 2-core CPU).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _child import run_child  # noqa: E402

CHILD = """
import json, sys
from diffbrain.network import planner
p = json.loads(sys.argv[1])
shape = planner.shape_of({"n_rec": p["n_rec"], "conn_method": "rand", "conn_prob": p["conn_prob"],
                          "sparse_impl": "event"}, p["method"], p["batch"], p["n_steps"], 100)
(fp,) = planner.footprints([shape])
m = planner.measure(shape)
print("RESULT " + json.dumps({"synapses": m["synapses"], "planned_temp": fp.part("temp"), "measured_temp": m["temp"],
                              "temp_ratio": fp.part("temp") / m["temp"], "planned_argument": fp.part("argument"),
                              "measured_argument": m["argument"],
                              "argument_ratio": fp.part("argument") / m["argument"]}))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--sizes", default="4000:0.005,20000:0.005", help="n_rec:conn_prob,...")
    ap.add_argument("--methods", default="expsm_diag,bptt")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--n-steps", type=int, default=100)
    ap.add_argument("--timeout", type=float, default=1200)
    args = ap.parse_args()
    sizes = [(int(n), float(p)) for n, p in (s.split(":") for s in args.sizes.split(","))]
    if args.quick:
        sizes = sizes[:1]
    rows = [run_child(CHILD, {"method": method, "n_rec": n, "conn_prob": prob, "batch": args.batch,
                              "n_steps": args.n_steps}, args.timeout)
            for method in args.methods.split(",") for n, prob in sizes]
    print(json.dumps({"benchmark": "planner_accuracy", "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
