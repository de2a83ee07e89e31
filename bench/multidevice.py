"""Data- and neuron-parallel training steps on 1, 2 and 4 forced host devices: seconds per step and per-device
XLA temp bytes.

Each (layout, devices, method, size) runs the ``scaling-probe`` experiment in a fresh process with
``XLA_FLAGS=--xla_force_host_platform_device_count=D`` and ``parallel = data`` or ``neurons`` on all D devices
(D = 1: one device, run once per method and size and shared by both layouts as their reference). XLA's
compiled memory analysis of an SPMD program is per device, so ``temp_bytes`` is one device's.
Prints one JSON document: the points, and per (method, n_rec) the ratio of D devices' temp bytes to one
device's (the goal: close to 1/D, at most 1.3/D) and of their seconds per step. On the CPU the "devices" share
the same cores, so the step time says what the partition costs, not what separate GPUs would gain.

Full run (issue 12): n_rec 800 and 3200, batch 64, T 1000, bptt and expsm_diag, rand connectivity (p 0.05).
``--quick``: n_rec 100, batch 16, T 200, 2 timed steps (a few minutes).

    python bench/multidevice.py [--quick] [--devices 1,2,4] [--methods bptt,expsm_diag] [--n-rec 800,3200]
                                [--layouts data,neurons] [--compile-only]

``--compile-only`` compiles each step without running it (temp bytes, no seconds): for sizes whose one-device step
does not fit the machine's memory (n_rec 3200 BPTT at T 1000 and batch 64 needs ~16 GB).
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from _child import run_child

CHILD = """
import json, os, sys
from diffbrain.experiments import get
ds = get("scaling-probe")(json.loads(sys.argv[1]))
out = {k: (None if ds[k].values != ds[k].values else ds[k].values.item()) for k in
       ("step_seconds_median", "compile_seconds", "temp_bytes", "argument_bytes", "estimated_bytes",
        "estimated_device_bytes",
        "peak_rss_bytes", "loss")}
out.update({k: ds.attrs[k] for k in ("parallel_layout", "n_devices", "sparse_impl")})
print("RESULT " + json.dumps(out))
"""


# --compile-only: the scaling-probe's trainer (same configuration, same layout), compiled and not run, for sizes
# whose one-device step does not fit this machine's memory (XLA's memory analysis needs no allocation)
COMPILE_CHILD = """
import json, sys
import jax
from diffbrain.experiments.scaling_probe import PARAMS
from diffbrain.network.config import NETWORK_PARAMS, NetworkConfig, TaskConfig, TrainConfig, probe_task
from diffbrain.network.parallel import choose_layout
from diffbrain.network.training import Trainer
p = {**{q.name: q.default for q in NETWORK_PARAMS + PARAMS}, **json.loads(sys.argv[1])}
layout = choose_layout(p["parallel"], p["devices"], jax.devices(), p["batch_size"], p["n_rec"], p["method"])
trainer = Trainer(NetworkConfig.from_params(p), TaskConfig(**probe_task(p["n_steps"], p["dt"])).check(p["dt"]),
                  TrainConfig(method=p["method"], etrace_decay=p["etrace_decay"], batch_size=p["batch_size"]),
                  seed=0, layout=layout)
stats = trainer.compile()
print("RESULT " + json.dumps({"compile_seconds": stats.seconds, "temp_bytes": stats.temp_bytes,
                              "argument_bytes": stats.argument_bytes, "step_seconds_median": None,
                              "parallel_layout": layout.kind, "n_devices": layout.n_devices,
                              "sparse_impl": trainer.model.sparse_impl}))
"""


def measure(params: dict, layout: str, devices: int, timeout: float, compile_only: bool = False) -> dict:
    params = {**params, "parallel": layout if devices > 1 else "none", "devices": devices}
    return run_child(COMPILE_CHILD if compile_only else CHILD, params, timeout,
                     {"JAX_PLATFORMS": "cpu", "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}"})


def summarise(points: list[dict]) -> dict:
    ok = [p for p in points if "error" not in p]
    one = {(p["method"], p["n_rec"]): p for p in ok if p["devices"] == 1}
    out = {}
    for p in ok:
        base = one.get((p["method"], p["n_rec"]))
        if base is None or p["devices"] == 1:
            continue
        out[f"{p['parallel']} {p['method']} n_rec={p['n_rec']} x{p['devices']}"] = {
            "temp_bytes_ratio": p["temp_bytes"] / base["temp_bytes"],
            "argument_bytes_ratio": p["argument_bytes"] / base["argument_bytes"],
            "goal_at_most": 1.3 / p["devices"],
            "step_seconds_ratio": (p["step_seconds_median"] / base["step_seconds_median"]
                                   if p["step_seconds_median"] and base["step_seconds_median"] else None),
        }
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--devices", default="1,2,4")
    ap.add_argument("--methods", default="bptt,expsm_diag")
    ap.add_argument("--n-rec", default=None)
    ap.add_argument("--layouts", default="data,neurons")
    ap.add_argument("--timeout", type=float, default=3600.0)
    ap.add_argument("--compile-only", action="store_true", help="compile each step and read its memory; do not run")
    args = ap.parse_args()
    if args.quick:
        base = {"batch_size": 16, "n_steps": 200, "steps": 2, "warmup": 1}
        sizes = [100]
    else:
        base = {"batch_size": 64, "n_steps": 1000, "steps": 3, "warmup": 1}
        sizes = [800, 3200]
    if args.n_rec:
        sizes = [int(n) for n in args.n_rec.split(",")]
    points, devices = [], [int(d) for d in args.devices.split(",")]
    for n_rec in sizes:
        for method in args.methods.split(","):
            params = {**base, "method": method, "n_rec": n_rec, "conn_method": "rand", "conn_prob": 0.05}
            runs = [("none", 1)] if 1 in devices else []  # side by side for each configuration
            runs += [(layout, d) for layout in args.layouts.split(",") for d in devices if d > 1]
            for layout, d in runs:
                points.append(measure(params, layout, d, args.timeout, args.compile_only))
                print(json.dumps(points[-1]), file=sys.stderr)
    print(json.dumps({"uptime": os.getloadavg(), "points": points, "ratios": summarise(points)}, indent=1))


if __name__ == "__main__":
    main()
