"""``simulate-network`` under the neuron layout on 1, 2 and 4 forced host devices: seconds per simulated second
and per-device XLA temp + argument bytes, both presets.

Each (preset, devices) runs in a fresh process with ``XLA_FLAGS=--xla_force_host_platform_device_count=D`` and
simulates the preset's network with its neurons split across all D devices
(:mod:`diffbrain.network.simulate_parallel`). D = 1 runs twice: the same sharded program on one device (the
reference of the ratios: the same program, its structure passed as arguments) and the one-device program a
``parallel = none`` point runs (``one_device``: its structure is compiled in as constants, so its argument bytes
are not comparable). XLA's memory analysis of an SPMD program is per device. Prints one JSON document: the
points and, per preset, each D's ratio of temp + argument bytes to one device's (goal: at most 1.3/D) and of
seconds per simulated second. On the CPU the D "devices" share the machine's cores (2 here), so the seconds say
what the partition and the all-gathers cost, not what separate GPUs would gain.

Full run (issue 12): n 20000 at 80 synapses per neuron, 1 s. ``--quick``: n 2000, 100 ms.

    python bench/simulate_multidevice.py [--quick] [--devices 1,2,4] [--presets coba,gif] [--n 20000]
                                         [--duration-ms 1000]
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from _child import run_child

CHILD = """
import json, sys
import jax
from diffbrain.experiments import get
from diffbrain.experiments.simulate_network import coba_config, gif_config
from diffbrain.network.parallel import Layout
from diffbrain.network.simulate import GifDrive
from diffbrain.network.simulate_parallel import simulate_coba_neurons, simulate_gif_neurons
point = json.loads(sys.argv[1])
params = get("simulate-network").validate({k: point[k] for k in ("preset", "n", "syn_per_neuron", "duration_ms",
                                                                   "conn_method", "ff_scale")})
if point["program"] == "one_device":
    ds = get("simulate-network")({**params, "parallel": "none"})
    out = {k: ds[k].values.item() for k in ("seconds_per_sim_second", "temp_bytes", "argument_bytes", "output_bytes",
                                            "compile_seconds", "mean_rate", "n_synapses")}
else:
    layout = Layout("neurons", tuple(jax.devices()[:point["devices"]]))
    args = (params["seed"], params["duration_ms"], layout, params["max_chunk_steps"])
    if params["preset"] == "coba":
        rec = simulate_coba_neurons(coba_config(params), *args)
    else:
        rec = simulate_gif_neurons(gif_config(params), GifDrive(params["n_input"], params["input_rate"]), *args)
    out = {"seconds_per_sim_second": rec.seconds_per_sim_second, "temp_bytes": rec.temp_bytes,
           "argument_bytes": rec.argument_bytes, "output_bytes": rec.output_bytes,
           "compile_seconds": rec.compile_seconds, "n_synapses": rec.n_synapses,
           "mean_rate": rec.spike_step.size / (rec.n_neurons * rec.duration_s)}
print("RESULT " + json.dumps(out))
"""


def measure(point: dict, timeout: float) -> dict:
    flags = f"--xla_force_host_platform_device_count={point['devices']}"
    return run_child(CHILD, point, timeout, {"JAX_PLATFORMS": "cpu", "XLA_FLAGS": flags})


def summarise(points: list[dict]) -> dict:
    ok = [p for p in points if "error" not in p]
    one = {p["preset"]: p for p in ok if p["devices"] == 1 and p["program"] == "neurons"}
    out = {}
    for p in ok:
        base = one.get(p["preset"])
        if base is None or p["devices"] == 1:
            continue
        mem = lambda q: q["temp_bytes"] + q["argument_bytes"]  # noqa: E731
        out[f"{p['preset']} n={p['n']} x{p['devices']}"] = {
            "temp_plus_argument_ratio": mem(p) / mem(base),
            "goal_at_most": 1.3 / p["devices"],
            "temp_ratio": p["temp_bytes"] / max(1, base["temp_bytes"]),
            "argument_ratio": p["argument_bytes"] / base["argument_bytes"],
            "seconds_per_sim_second_ratio": p["seconds_per_sim_second"] / base["seconds_per_sim_second"],
            "same_rate": p["mean_rate"] == base["mean_rate"],
        }
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--devices", default="1,2,4")
    ap.add_argument("--presets", default="coba,gif")
    ap.add_argument("--n", type=int, default=None)
    ap.add_argument("--syn-per-neuron", type=float, default=80.0)
    ap.add_argument("--duration-ms", type=float, default=None)
    ap.add_argument("--timeout", type=float, default=3600.0)
    args = ap.parse_args()
    n = args.n or (2000 if args.quick else 20000)
    duration = args.duration_ms or (100.0 if args.quick else 1000.0)
    points = []
    for preset in args.presets.split(","):
        base = {"preset": preset, "n": n, "syn_per_neuron": args.syn_per_neuron, "duration_ms": duration,
                "conn_method": "rand", "ff_scale": 6.0 if preset == "gif" else 1.0}
        runs = [("one_device", 1)] if "1" in args.devices.split(",") else []
        runs += [("neurons", int(d)) for d in args.devices.split(",")]
        for program, d in runs:
            points.append(measure({**base, "program": program, "devices": d}, args.timeout))
            print(json.dumps(points[-1]), file=sys.stderr)
    print(json.dumps({"uptime": os.getloadavg(), "points": points, "ratios": summarise(points)}, indent=1))


if __name__ == "__main__":
    main()
