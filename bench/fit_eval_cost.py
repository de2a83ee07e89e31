"""What one evaluation of each kind costs, in forwards: the gradient-to-forward cost ratio (prints JSON).

For GIF (the paper's five step protocols, 1000 ms at dt 0.1 ms) and HH (its step protocols, 14.97 ms at
dt 0.01 ms), over S candidates in one vmapped, jitted call each:

- ``forward``: the loss (potential: voltage MSE; spike: smooth gamma loss);
- ``value_and_grad``: the loss and its gradient by reverse mode (``jax.value_and_grad``);
- ``jacobian``: the residuals and their Jacobian over the P parameters by forward mode (``jax.jacfwd``, P
  tangents through the scan), as the LM polisher calls it: voltage residuals (potential targets), the
  spike-forced warm start's (GIF spike targets);

each timed as the best of ``--repeats`` interleaved calls (the machine is shared), with the seconds of its
first call (compilation) apart. ``ratio_to_forward`` is the cost the fitting budget charges
(:mod:`diffbrain.fitting.costs`). ``--no-remat`` measures reverse mode without rematerialising the scan's step.
Usage: python bench/fit_eval_cost.py [--starts 20] [--repeats 5] [--no-remat]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import time
from pathlib import Path

os.environ.setdefault("JAX_PLATFORMS", "cpu")


def _problem(model: str, target: str):
    from diffbrain.fitting import make_problem
    from diffbrain.neuron import get_model, simulate
    from diffbrain.traces import Traces, protocol

    neuron = get_model(model)
    current = protocol("steps", model, neuron.default_duration_ms, neuron.default_dt_ms)
    sim = simulate(model, current, neuron.default_dt_ms)
    return make_problem(model, target, Traces(current, sim.dt, sim.voltage, sim.spikes))


def _residuals(problem, u):
    """The residuals the LM polisher differentiates (GIF: the program shared by the spike-forced and the free
    stage, run free); on versions before it, the plain voltage residuals."""
    import jax.numpy as jnp

    from diffbrain.fitting import problem as fp

    if hasattr(fp, "residuals"):  # spike targets: the spike-forced warm start's residuals
        forcing = 1.0 if problem.target == "spike" else 0.0
        return fp.residuals(problem, u, jnp.asarray(forcing, u.dtype) if problem.warm else None)
    v, _, _ = fp.simulate_params(problem, problem.to_params(u))
    return (v - problem.target_voltage).ravel()


def measure(model: str, target: str, starts: int, repeats: int) -> dict:
    import jax
    import jax.numpy as jnp
    import numpy as np

    from diffbrain.fitting import problem as fp

    problem = _problem(model, target)
    kinds = {
        "forward": jax.jit(jax.vmap(fp.objective, in_axes=(None, 0))),
        "value_and_grad": jax.jit(jax.vmap(jax.value_and_grad(fp.objective, argnums=1), in_axes=(None, 0))),
    }
    if target == "potential" or (problem.warm and hasattr(fp, "residuals")):
        kinds["jacobian"] = jax.jit(jax.vmap(lambda p, u: (_residuals(p, u), jax.jacfwd(_residuals, argnums=1)(p, u)),
                                             in_axes=(None, 0)))
    u = jnp.asarray(np.random.default_rng(0).uniform(size=(starts, len(problem.names))), jnp.result_type(float))
    compile_seconds, best = {}, {}
    for name, fun in kinds.items():
        started = time.perf_counter()
        jax.block_until_ready(fun(problem, u))
        compile_seconds[name] = round(time.perf_counter() - started, 3)
        best[name] = float("inf")
    for _ in range(repeats):  # interleaved: every kind sees the same load
        for name, fun in kinds.items():
            started = time.perf_counter()
            jax.block_until_ready(fun(problem, u))
            best[name] = min(best[name], time.perf_counter() - started)
    forward = best["forward"]
    return {
        "model": model, "target": target, "starts": starts,
        "seconds_per_call": {k: round(v, 5) for k, v in best.items()},
        "first_call_seconds_with_compile": compile_seconds,
        "ratio_to_forward": {k: round(v / forward, 2) for k, v in best.items()},
    }


def _commit() -> str:
    """The commit of the diffbrain that was imported (``PYTHONPATH=/other/checkout`` measures another one)."""
    import diffbrain

    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=Path(diffbrain.__file__).parent,
                              text=True, capture_output=True).stdout.strip()
    except OSError:
        return ""


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--starts", type=int, default=20, help="candidates per vmapped call")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="2 repeats")
    parser.add_argument("--no-remat", action="store_true",
                        help="store every step's values for reverse mode instead of recomputing them")
    args = parser.parse_args(argv)
    repeats = 2 if args.quick else args.repeats
    if args.no_remat:
        from diffbrain.neuron import base

        base.REMAT_ABOVE_NEURON_STEPS = 10**15
    load = os.getloadavg()
    results = [measure(model, target, args.starts, repeats) for model in ("gif", "hh")
               for target in ("potential", "spike")]
    print(json.dumps({"benchmark": "fit_eval_cost", "commit": _commit(), "remat": not args.no_remat,
                      "cpus": os.cpu_count(),
                      "load_average_at_start": load, "load_average_at_end": os.getloadavg(),
                      "results": results}, indent=2))


if __name__ == "__main__":
    main()
