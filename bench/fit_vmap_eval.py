"""How much one vmapped value-and-gradient call over S starts saves against S single calls (prints JSON).

This is the ceiling on what vectorising the starts can gain on this machine: if the simulation's cost
grows with starts x traces (compute-bound, as on a few CPU cores), vmap removes only per-call overhead.
GIF on the paper's five step protocols (1000 ms at dt 0.1 ms) and HH on its step protocols, potential
target. Usage: python bench/fit_vmap_eval.py [--starts 20] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import time


def measure(model: str, starts: int, repeats: int) -> dict:
    import jax
    import jax.numpy as jnp
    import numpy as np

    from diffbrain.fitting import make_problem
    from diffbrain.fitting.gradient import objective_and_grad
    from diffbrain.neuron import get_model, simulate
    from diffbrain.traces import Traces, protocol

    neuron = get_model(model)
    current = protocol("steps", model, neuron.default_duration_ms, neuron.default_dt_ms)
    sim = simulate(model, current, neuron.default_dt_ms)
    problem = make_problem(model, "potential", Traces(current, sim.dt, sim.voltage, sim.spikes))
    single = jax.jit(objective_and_grad)
    batched = jax.jit(jax.vmap(objective_and_grad, in_axes=(None, 0)))
    u = jnp.asarray(np.random.default_rng(0).uniform(size=(starts, len(problem.names))), jnp.float32)
    jax.block_until_ready(single(problem, u[0]))
    jax.block_until_ready(batched(problem, u))
    one_by_one, together = [], []
    for _ in range(repeats):  # interleaved, so both see the same machine load
        start = time.perf_counter()
        for i in range(starts):
            jax.block_until_ready(single(problem, u[i]))
        one_by_one.append(time.perf_counter() - start)
        start = time.perf_counter()
        jax.block_until_ready(batched(problem, u))
        together.append(time.perf_counter() - start)
    best_single, best_batched = min(one_by_one), min(together)
    return {"model": model, "traces_x_steps": list(current.shape), "starts": starts,
            "single_calls_seconds": round(best_single, 4), "one_vmapped_call_seconds": round(best_batched, 4),
            "ratio": round(best_single / best_batched, 2)}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--starts", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    results = [measure(model, args.starts, args.repeats) for model in ("gif", "hh")]
    print(json.dumps({"benchmark": "fit_vmap_eval", "cpus": os.cpu_count(),
                      "load_average_1min": os.getloadavg()[0], "results": results}, indent=2))


if __name__ == "__main__":
    main()
