"""Sparse (event-driven CSR) against dense (masked matrix) per network size and connection density.

For each method, n_rec and density, the same network (rand connectivity, same seed) runs with
``sparse_impl = event`` and ``sparse_impl = masked_dense`` one after the other, and the bench prints the
seconds per time step of each, their ratio, and per (method, n_rec) the largest density at which the
event-driven operator won: the rows of ``diffbrain/network/crossover.py``.

- ``simulation``: the E/I GIF network simulated alone (``simulate-network --preset gif``: one trial,
  Poisson input, the forward-only event kernel), ``--sim-steps`` steps at dt = 1 ms after compiling;
- ``bptt``: one training step (batch ``--batch``, T ``--T``) after a warm-up step, median of ``--steps``;
- ``diag`` / ``expsm_diag`` (``--methods``): the same for the online methods (slow on CPU before issue 11).

    python bench/crossover.py                                    # simulation and bptt, ~10 min on 2 cores
    python bench/crossover.py --methods expsm_diag --n-rec 100,400 --density 0.05,0.2
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time


def simulation_seconds(n_rec: int, density: float, impl: str, steps: int, seed: int) -> dict:
    from diffbrain.network.config import NetworkConfig
    from diffbrain.network.simulate import GifDrive, simulate_gif

    cfg = NetworkConfig(n_rec=n_rec, conn_method="rand", conn_prob=density, sparse_impl=impl, ff_scale=4.0,
                        tau_neu=30.0, tau_a=100.0).check()
    rec = simulate_gif(cfg, GifDrive(), seed, float(steps), max_chunk=steps)
    return {"seconds_per_step": rec.run_seconds / rec.n_steps, "compile_seconds": rec.compile_seconds,
            "rate_hz": float(rec.spike_step.size / n_rec / rec.duration_s), "impl": rec.info["sparse_impl"]}


def training_seconds(method: str, n_rec: int, density: float, impl: str, batch: int, n_steps: int, steps: int,
                     seed: int) -> dict:
    import numpy as np

    from diffbrain.experiments.scaling_probe import probe_task
    from diffbrain.network.config import NetworkConfig, TaskConfig, TrainConfig
    from diffbrain.network.training import Trainer

    cfg = NetworkConfig(n_rec=n_rec, conn_method="rand", conn_prob=density, sparse_impl=impl).check()
    task = TaskConfig(**probe_task(n_steps, 1.0)).check(1.0)
    trainer = Trainer(cfg, task, TrainConfig(method=method, batch_size=batch, iterations=steps + 1), seed=seed)
    stats = trainer.compile()
    trainer.step(0)
    seconds = []
    for i in range(steps):
        start = time.perf_counter()
        trainer.step(i + 1)
        seconds.append(time.perf_counter() - start)
    return {"seconds_per_step": float(np.median(seconds)) / n_steps, "step_seconds": float(np.median(seconds)),
            "compile_seconds": stats.seconds, "impl": trainer.model.sparse_impl}


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--methods", default="simulation,bptt")
    ap.add_argument("--n-rec", default="100,400,1600,6400")
    ap.add_argument("--density", default="0.01,0.05,0.2")
    ap.add_argument("--sim-steps", type=int, default=2000)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--T", type=int, default=100)
    ap.add_argument("--steps", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-dense-n", type=int, default=6400, help="skip bptt masked_dense above this n_rec")
    args = ap.parse_args(argv)
    points = []
    for method in args.methods.split(","):
        for n_rec in (int(x) for x in args.n_rec.split(",")):
            for density in (float(x) for x in args.density.split(",")):
                row = {"method": method, "n_rec": n_rec, "density": density}
                for impl in ("event", "masked_dense"):
                    if method != "simulation" and impl == "masked_dense" and n_rec > args.max_dense_n:
                        continue
                    try:
                        if method == "simulation":
                            res = simulation_seconds(n_rec, density, impl, args.sim_steps, args.seed)
                        else:
                            res = training_seconds(method, n_rec, density, impl, args.batch, args.T, args.steps,
                                                   args.seed)
                    except Exception as exc:  # report and go on: one size may not fit
                        res = {"error": f"{type(exc).__name__}: {exc}"}
                    row[impl] = {**res, "load": [round(x, 2) for x in os.getloadavg()]}
                ev, de = row.get("event", {}), row.get("masked_dense", {})
                if "seconds_per_step" in ev and "seconds_per_step" in de:
                    row["dense_over_event"] = de["seconds_per_step"] / ev["seconds_per_step"]
                points.append(row)
                print(json.dumps(row), file=sys.stderr, flush=True)
    table: dict[str, list] = {}
    for method in args.methods.split(","):
        for n_rec in sorted({p["n_rec"] for p in points if p["method"] == method}):
            won = [p["density"] for p in points if p["method"] == method and p["n_rec"] == n_rec
                   and p.get("dense_over_event", 0) > 1.0]
            table.setdefault(method, []).append([n_rec, max(won) if won else 0.0])
    out = {"bench": "crossover", "cpus": os.cpu_count(), "points": points,
           "largest_density_where_event_won": table}
    print(json.dumps(out, indent=1))
    return out


if __name__ == "__main__":
    main()
