"""Where braintrace 0.2.8's D-RTRL spends its time on the E/I network, and the project's chunked D-RTRL beside it.

1. The smallest reproduction: one step of the D-RTRL trace recursion ``eps <- D eps`` for a dense projection,
   as braintrace's fast path writes it (``einsum('...kab,...ikb->...ika')`` over a ``[batch, pre, post, S]``
   trace: XLA:CPU runs it as ``batch*post`` tiny ``S x S`` dots) and as the project writes it (state-major
   ``[S, batch, pre, post]``, the ``S x S`` mixing unrolled into one fused loop). Same numbers.
2. One gradient of the recall-period loss by BPTT, braintrace's ``D_RTRL`` (what ``diag`` ran before) and
   the project's :class:`~diffbrain.network.drtrl.DRTRL`, side by side on one configuration.

Prints one JSON document. Default: n_rec 200, batch 32 for (1); n_rec 100, batch 16, T 300 for (2):
a few minutes on 2 cores.

    python bench/drtrl_cost.py [--n-rec 200] [--batch 32] [--grad-n-rec 100] [--grad-batch 16] [--T 300]
"""

from __future__ import annotations

import argparse
import json
import os
import time


def timed(fn, *args, repeat: int = 3) -> float:
    """Median seconds of ``fn(*args)`` after one compiling call."""
    import jax

    jax.block_until_ready(fn(*args))
    seconds = []
    for _ in range(repeat):
        start = time.perf_counter()
        jax.block_until_ready(fn(*args))
        seconds.append(time.perf_counter() - start)
    return sorted(seconds)[len(seconds) // 2]


def trace_mixing(n_rec: int, batch: int, n_in: int = 100, n_states: int = 5) -> dict:
    import jax
    import jax.numpy as jnp
    import numpy as np

    from diffbrain.network.drtrl import block_apply

    n_pre = n_in + int(0.8 * n_rec)
    key = jax.random.PRNGKey(0)
    d = jax.random.normal(key, (batch, n_rec, n_states, n_states))
    trace = jax.random.normal(key, (batch, n_pre, n_rec, n_states))
    braintrace_form = jax.jit(lambda d, t: jnp.einsum("...kab,...ikb->...ika", d, t))
    pattern = np.ones((n_states, n_states), dtype=bool)
    project_form = jax.jit(lambda d, t: block_apply(d[:, :, :, None, :], t, pattern))
    d_sm = jnp.moveaxis(d, (-2, -1), (0, 1))  # [S, S, batch, post]
    t_sm = jnp.moveaxis(trace, -1, 0)  # [S, batch, pre, post]
    same = np.allclose(np.moveaxis(np.asarray(project_form(d_sm, t_sm)), 0, -1), np.asarray(braintrace_form(d, trace)),
                       rtol=1e-4, atol=1e-4)
    a, b = timed(braintrace_form, d, trace), timed(project_form, d_sm, t_sm)
    return {"trace_elements": int(trace.size), "braintrace_einsum_ms": 1e3 * a, "state_major_unrolled_ms": 1e3 * b,
            "ratio": a / b, "same_numbers": bool(same)}


def gradient_seconds(n_rec: int, batch: int, n_steps: int) -> dict:
    import brainstate
    import jax

    from diffbrain.experiments.scaling_probe import probe_task
    from diffbrain.network.config import NetworkConfig, TaskConfig
    from diffbrain.network.gradients import compare, gradients, online_gradients
    from diffbrain.network.model import EINetwork
    from diffbrain.network.task import EvidenceTask

    task = EvidenceTask(TaskConfig(**probe_task(n_steps, 1.0)), 1.0)
    xs, labels = task.sample(jax.random.PRNGKey(0), batch)
    start_step = task.recall_start
    out, grads = {}, {}
    for name in ("bptt", "braintrace D_RTRL", "project DRTRL"):
        model = EINetwork(NetworkConfig(n_rec=n_rec), task.n_in, 2, seed=0, online=name != "bptt")
        if name == "braintrace D_RTRL":
            fn = brainstate.transform.jit(lambda xs, ys, m=model: online_gradients(m, "diag", xs, ys, start_step))
        else:
            method = "bptt" if name == "bptt" else "diag"
            fn = brainstate.transform.jit(lambda xs, ys, m=model, me=method: gradients(m, me, xs, ys, start_step))
        start = time.perf_counter()
        jax.block_until_ready(fn(xs, labels))
        compile_and_first = time.perf_counter() - start
        out[name] = {"seconds": timed(fn, xs, labels, repeat=2), "compile_and_first_call_seconds": compile_and_first}
        grads[name] = {k: v for k, v in fn(xs, labels)[0].items()}
    agreement = compare(grads["braintrace D_RTRL"], grads["project DRTRL"])
    return {"n_rec": n_rec, "batch": batch, "n_steps": n_steps, **out,
            "project_vs_braintrace_cosine": {k: v["cosine"] for k, v in agreement.items()},
            "braintrace_over_project": out["braintrace D_RTRL"]["seconds"] / out["project DRTRL"]["seconds"],
            "project_over_bptt": out["project DRTRL"]["seconds"] / out["bptt"]["seconds"]}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n-rec", type=int, default=200)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--grad-n-rec", type=int, default=100)
    parser.add_argument("--grad-batch", type=int, default=16)
    parser.add_argument("--T", type=int, default=300)
    args = parser.parse_args(argv)
    load = os.getloadavg()[0]
    result = {"benchmark": "drtrl_cost", "machine": {"cpus": os.cpu_count(), "load_average_1min": load},
              "trace_mixing_step": trace_mixing(args.n_rec, args.batch),
              "gradient": gradient_seconds(args.grad_n_rec, args.grad_batch, args.T)}
    result["machine"]["load_average_1min_end"] = os.getloadavg()[0]
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
