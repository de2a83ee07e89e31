"""The COBA benchmark (Vogels-Abbott, Brette et al. 2007) in this toolkit and in Brian2, side by side.

Both simulators run the *same* network: the structure is drawn once by the toolkit's generator (rand,
80 synapses per neuron, no self-synapse) and handed to Brian2's ``Synapses.connect(i=..., j=...)``, with
the same initial membrane potentials, forward Euler, dt 0.1 ms and Brian2's update order. Every run is
a fresh Python process (its own peak RSS). Reported per run: build seconds (structure and objects),
compile seconds (the toolkit: XLA's ahead-of-time compile; Brian2: a 1 ms warm-up run, which generates
and compiles its code), run seconds of ``--duration-ms`` of biological time, seconds per simulated
second, mean rates (all, E, I), peak RSS. Then the Brian2 / toolkit ratio of seconds per simulated
second at each N. The toolkit also runs alone at the ``--alone`` sizes (default 10^5 neurons, 8 x 10^6
synapses). ``--train-expsm`` adds one expsm_diag training step of the paper's network (rand, 100
synapses per neuron, batch 16, T 500) at ``--train-n-rec`` neurons through the scaling-probe experiment.

Brian2 comes from the ``bench`` extra (``pip install -e '.[bench]'``). Its cython target is used when it
compiles here (``--brian2-target auto``), else numpy; the JSON says which.

    python bench/coba.py                       # N = 4000 and 40000 side by side, 10^5 alone (~3 min)
    python bench/coba.py --n 4000 --alone ''  --duration-ms 1000
    python bench/coba.py --train-expsm --train-n-rec 20000
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys

from _child import run_child

TOOLKIT = r"""
import json, sys, resource
from diffbrain.experiments import get
p = json.loads(sys.argv[1])
ds = get("simulate-network")(p)
out = {k: float(ds[k]) for k in ("build_seconds", "compile_seconds", "run_seconds", "seconds_per_sim_second",
                                 "mean_rate", "mean_rate_exc", "mean_rate_inh", "mean_cv_isi", "n_synapses",
                                 "estimated_bytes", "temp_bytes")}
out["event_kernel"] = ds.attrs["event_kernel"]
out["peak_rss_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print("RESULT " + json.dumps(out))
"""

BRIAN2 = r"""
import json, sys, time, resource
import numpy as np
p = json.loads(sys.argv[1])
from diffbrain.network import coba
cfg = coba.CobaConfig(n=p["n"]).check()
t0 = time.perf_counter()
net_np = coba.build(cfg, p["seed"])
pre_e, post_e = net_np.exc.pre_post()
pre_i, post_i = net_np.inh.pre_post()
import brian2 as b2
target = p["target"]
if target == "auto":
    try:
        from brian2.codegen.runtime.cython_rt import CythonCodeObject
        target = "cython" if CythonCodeObject.is_available() else "numpy"
    except Exception:
        target = "numpy"
b2.prefs.codegen.target = target
b2.defaultclock.dt = cfg.dt * b2.ms
ns = dict(taum=cfg.tau_m * b2.ms, taue=cfg.tau_e * b2.ms, taui=cfg.tau_i * b2.ms, Vt=cfg.v_th * b2.mV,
          Vr=cfg.v_reset * b2.mV, El=cfg.e_leak * b2.mV, Ee=cfg.e_exc * b2.mV, Ei=cfg.e_inh * b2.mV,
          I=cfg.drive * b2.mV, we=cfg.w_exc, wi=cfg.w_inh)
eqs = '''
dv/dt = (ge * (Ee - v) + gi * (Ei - v) + (El - v) + I) / taum : volt (unless refractory)
dge/dt = -ge / taue : 1
dgi/dt = -gi / taui : 1
'''
P = b2.NeuronGroup(cfg.n, eqs, threshold="v > Vt", reset="v = Vr", refractory=cfg.t_ref * b2.ms,
                   method="euler", namespace=ns)
Ce = b2.Synapses(P, P, on_pre="ge += we", namespace=ns)
Ce.connect(i=pre_e, j=post_e)
Ci = b2.Synapses(P, P, on_pre="gi += wi", namespace=ns)
Ci.connect(i=pre_i + cfg.n_exc, j=post_i)
P.v = net_np.v0.astype(np.float64) * b2.mV
M = b2.SpikeMonitor(P)
net = b2.Network(P, Ce, Ci, M)
build = time.perf_counter() - t0
t1 = time.perf_counter()
net.run(1 * b2.ms)  # generates and compiles the code
compile_s = time.perf_counter() - t1
t2 = time.perf_counter()
net.run(p["duration_ms"] * b2.ms)
run_s = time.perf_counter() - t2
dur = (p["duration_ms"] + 1.0) / 1000.0
counts = np.bincount(np.asarray(M.i), minlength=cfg.n) / dur
exc = np.arange(cfg.n) < cfg.n_exc
print("RESULT " + json.dumps({"build_seconds": build, "compile_seconds": compile_s, "run_seconds": run_s,
      "seconds_per_sim_second": run_s / (p["duration_ms"] / 1000.0), "mean_rate": float(counts.mean()),
      "mean_rate_exc": float(counts[exc].mean()), "mean_rate_inh": float(counts[~exc].mean()),
      "n_synapses": int(len(Ce) + len(Ci)), "target": target, "brian2": b2.__version__,
      "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}))
"""

TRAIN = r"""
import json, sys
from diffbrain.experiments import get
ds = get("scaling-probe")(json.loads(sys.argv[1]))
print("RESULT " + json.dumps({k: float(ds[k]) for k in ("step_seconds_median", "compile_seconds", "temp_bytes",
                                                         "peak_rss_bytes", "loss")}))
"""


def child(code: str, params: dict, timeout: float) -> dict:
    return run_child(code, params, timeout)


def load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", default="4000,40000", help="sizes run in both simulators")
    ap.add_argument("--alone", default="100000", help="sizes run in the toolkit only ('' for none)")
    ap.add_argument("--duration-ms", type=float, default=1000.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--brian2-target", default="auto", choices=("auto", "cython", "numpy"))
    ap.add_argument("--skip-brian2", action="store_true")
    ap.add_argument("--event-kernel", default="auto", choices=("auto", "native", "brainevent"))
    ap.add_argument("--train-expsm", action="store_true", help="also time one expsm_diag training step")
    ap.add_argument("--train-n-rec", type=int, default=20000)
    ap.add_argument("--train-steps", type=int, default=500)
    ap.add_argument("--timeout", type=float, default=1800.0)
    args = ap.parse_args(argv)
    sizes = [int(x) for x in args.n.split(",") if x]
    alone = [int(x) for x in args.alone.split(",") if x]
    runs, ratios = [], {}
    for n in sizes + alone:
        base = {"preset": "coba", "n": n, "duration_ms": args.duration_ms, "seed": args.seed,
                "event_kernel": args.event_kernel}
        tk = child(TOOLKIT, base, args.timeout)
        runs.append({"simulator": "diffbrain", "load": load(), **tk})
        print(json.dumps(runs[-1]), file=sys.stderr, flush=True)
        if n in sizes and not args.skip_brian2:
            b2 = child(BRIAN2, {"n": n, "duration_ms": args.duration_ms, "seed": args.seed,
                                "target": args.brian2_target}, args.timeout)
            runs.append({"simulator": "brian2", "load": load(), **b2})
            print(json.dumps(runs[-1]), file=sys.stderr, flush=True)
            if "error" not in tk and "error" not in b2:
                ratios[str(n)] = b2["seconds_per_sim_second"] / tk["seconds_per_sim_second"]
    out = {"benchmark": "coba", "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
           "duration_ms": args.duration_ms, "runs": runs,
           "brian2_over_diffbrain_seconds_per_sim_second": ratios}
    if args.train_expsm:
        params = dict(method="expsm_diag", n_steps=args.train_steps, n_rec=args.train_n_rec, batch_size=16,
                      conn_method="rand", conn_prob=100.0 / (args.train_n_rec - 1), steps=1, warmup=0)
        res = child(TRAIN, params, args.timeout)
        out["expsm_diag_training_step"] = {"load": load(), **res,
                                           "note": "before issue 11's online-path work"}
    print(json.dumps(out, indent=1))
    return out


if __name__ == "__main__":
    main()
