"""Accuracy on evidence accumulation with each method's defaults: iterations and time to the target accuracy.

For every connectivity and method it trains the E/I network exactly as ``diffbrain train --method M
--conn-method C`` would (the method's default learning rate, schedule, warm-up, clipping and decay; the
paper's task and network unless ``--quick``), evaluates the accuracy on fresh test trials every
``--eval-every`` iterations, and stops at the target (default 0.90, the brainscale paper's level) or at
``--max-iterations``. Prints one JSON document: per run the curve, the iterations and training seconds to
the target, seconds per iteration, and per connectivity each method's time to target and step time as a
ratio of BPTT's (each method's summary also goes to stderr as soon as it is done).

Full run: n_rec 200, batch 32 (the defaults), the paper's task (T = 2200 steps), dense and rand, bptt /
expsm_diag / diag, up to 300 iterations each: hours on 2 shared cores; run it in the background.
``--quick``: n_rec 40, the task with 20 ms cues and a 200 ms delay (T = 770 steps), up to 100 iterations.

    python bench/network_accuracy.py [--quick] [--methods bptt,expsm_diag,diag] [--conn dense,rand] ...
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time


def train_until(net_cfg, task_cfg, train_cfg, target: float, eval_every: int, eval_batch: int, seed: int,
                label: str) -> dict:
    import jax

    from diffbrain.network.recording import Simulator
    from diffbrain.network.training import TEST_STREAM, Trainer, data_key

    wall0, cpu0 = time.perf_counter(), time.process_time()
    trainer = Trainer(net_cfg, task_cfg, train_cfg, seed=seed)
    compile_seconds = trainer.compile().seconds
    evaluate = Simulator(trainer.model, trainer.task, eval_batch, 1, 0)
    evaluate.compile()
    test_key = data_key(seed, TEST_STREAM)
    curve, train_seconds, reached, losses = [], 0.0, None, []
    for it in range(train_cfg.iterations):
        start = time.perf_counter()
        loss, acc, _ = trainer.step(it)
        train_seconds += time.perf_counter() - start
        losses.append(loss)
        if (it + 1) % eval_every == 0 or it + 1 == train_cfg.iterations:
            test = evaluate(jax.random.fold_in(test_key, it))
            curve.append({"iteration": it + 1, "test_accuracy": test.accuracy, "test_loss": test.loss,
                          "train_loss": loss, "train_seconds": train_seconds})
            print(f"[accuracy] {label} iteration {it + 1}: loss {loss:.4f}, test accuracy {test.accuracy:.3f}, "
                  f"{train_seconds:.0f} s (load {os.getloadavg()[0]:.1f})", file=sys.stderr, flush=True)
            if test.accuracy >= target:
                reached = {"iterations": it + 1, "train_seconds": train_seconds,
                           "wall_seconds_incl_compile_and_evals": time.perf_counter() - wall0}
                break
    return {
        "method": train_cfg.method, "conn_method": net_cfg.conn_method, "sparse_impl": trainer.model.sparse_impl,
        "n_rec": net_cfg.n_rec,
        "batch_size": train_cfg.batch_size, "n_steps": trainer.task.n_steps,
        "training": {k: getattr(train_cfg, k) for k in ("lr", "readout_lr_scale", "lr_schedule", "warmup", "clip_norm",
                                                           "etrace_decay")},
        "target": target, "reached": reached, "final_test_accuracy": curve[-1]["test_accuracy"] if curve else None,
        "best_test_accuracy": max((c["test_accuracy"] for c in curve), default=None),
        "iterations_run": len(losses), "seconds_per_iteration": train_seconds / max(len(losses), 1),
        "compile_seconds": compile_seconds, "wall_seconds": time.perf_counter() - wall0,
        "cpu_seconds": time.process_time() - cpu0, "load_average_1min_end": os.getloadavg()[0], "curve": curve,
    }


def ratios(results: list[dict]) -> dict:
    """Per connectivity: each method's training seconds to target and seconds per iteration over BPTT's."""
    out = {}
    for r in results:
        base = next((b for b in results if b["method"] == "bptt" and b["conn_method"] == r["conn_method"]), None)
        if base is None or r is base:
            continue
        key = f"{r['method']}/bptt {r['conn_method']}"
        out[key] = {"step": r["seconds_per_iteration"] / base["seconds_per_iteration"]}
        if r["reached"] and base["reached"]:
            out[key]["time_to_target"] = r["reached"]["train_seconds"] / base["reached"]["train_seconds"]
    return out


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--methods", default="bptt,expsm_diag,diag")
    parser.add_argument("--conn", default="dense,rand")
    parser.add_argument("--n-rec", type=int, default=None)
    parser.add_argument("--max-iterations", type=int, default=None)
    parser.add_argument("--eval-every", type=int, default=10)
    parser.add_argument("--eval-batch", type=int, default=256)
    parser.add_argument("--target", type=float, default=0.90)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    from diffbrain.network.config import NetworkConfig, TaskConfig, TrainConfig

    quick = args.quick
    n_rec = args.n_rec or (40 if quick else 200)
    max_it = args.max_iterations or (100 if quick else 300)
    task = TaskConfig(t_interval=20.0, t_cue=40.0, t_delay=200.0) if quick else TaskConfig()
    results = []
    started = time.perf_counter()
    for conn in args.conn.split(","):
        for method in args.methods.split(","):
            train = TrainConfig.for_method(method, iterations=max_it)  # the method's defaults, nothing else
            results.append(train_until(NetworkConfig(n_rec=n_rec, conn_method=conn), task, train, args.target,
                                       args.eval_every, args.eval_batch, args.seed, f"{method} {conn}"))
            summary = {k: v for k, v in results[-1].items() if k != "curve"}
            print(f"[accuracy] done: {json.dumps(summary)}", file=sys.stderr, flush=True)
    print(json.dumps({
        "benchmark": "network_accuracy", "task": task.__dict__,
        "machine": {"cpus": os.cpu_count(), "load_average_1min": os.getloadavg()[0]},
        "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "results": results, "ratio_to_bptt": ratios(results), "total_seconds": time.perf_counter() - started,
    }, indent=2))


if __name__ == "__main__":
    main()
