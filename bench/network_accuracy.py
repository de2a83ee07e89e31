"""Accuracy on evidence accumulation: iterations and CPU time for each method to reach the target accuracy.

For every method it trains the E/I network (the paper's task and time constants unless overridden),
evaluates the accuracy on fresh test trials every ``--eval-every`` iterations, and stops at the target
(default 0.90, the brainscale paper's level) or at ``--max-iterations``. D-RTRL (``diag``) keeps a trace
per weight and per state; it is trained at ``--diag-n-rec`` (the largest size it trains here in
reasonable time) for ``--diag-iterations`` and its final accuracy reported. Prints one JSON document
(and each method's summary on stderr as soon as it is done).

Full run: n_rec 200, batch 64, the paper's task (T = 2200 steps), bptt and expsm_diag to 90%, diag at
n_rec 40, batch 32, 40 iterations: about 45 minutes on 2 shared cores (measured here: bptt ~5 s and
expsm_diag ~4 s per iteration, diag ~20 s). ``--quick``: n_rec 50, batch 32, T = 770 steps, ~10 minutes.

    python bench/network_accuracy.py [--quick] [--methods bptt,expsm_diag,diag] [--max-iterations N] ...
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
    curve, train_seconds, reached = [], 0.0, None
    losses = []
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
                  f"{train_seconds:.0f} s", file=sys.stderr, flush=True)
            if reached is None and test.accuracy >= target:
                reached = {"iterations": it + 1, "train_seconds": train_seconds,
                           "wall_seconds_incl_compile_and_evals": time.perf_counter() - wall0}
                break
    return {
        "method": train_cfg.method, "n_rec": net_cfg.n_rec, "batch_size": train_cfg.batch_size,
        "n_steps": trainer.task.n_steps, "lr": train_cfg.lr, "warmup": train_cfg.warmup,
        "clip_norm": train_cfg.clip_norm, "etrace_decay": train_cfg.etrace_decay, "lr_schedule": train_cfg.lr_schedule,
        "target": target, "reached": reached, "final_test_accuracy": curve[-1]["test_accuracy"] if curve else None,
        "best_test_accuracy": max((c["test_accuracy"] for c in curve), default=None),
        "iterations_run": len(losses), "seconds_per_iteration": train_seconds / max(len(losses), 1),
        "compile_seconds": compile_seconds, "wall_seconds": time.perf_counter() - wall0,
        "cpu_seconds": time.process_time() - cpu0, "curve": curve,
    }


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--methods", default="bptt,expsm_diag,diag")
    parser.add_argument("--n-rec", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--max-iterations", type=int, default=None)
    parser.add_argument("--eval-every", type=int, default=10)
    parser.add_argument("--eval-batch", type=int, default=256)
    parser.add_argument("--target", type=float, default=0.90)
    parser.add_argument("--lr", type=float, default=1e-3, help="bptt and diag learning rate (the paper's)")
    # expsm_diag, tuned here (n_rec 50, quick task; see the module docstring): the paper's 1e-3 / decay 0.99 /
    # constant rate drifted below chance; decay 0.95 with a 20-iteration warm-up and a cosine decay from 2e-3
    # reached 0.91 in 150 iterations
    parser.add_argument("--expsm-lr", type=float, default=2e-3)
    parser.add_argument("--expsm-warmup", type=int, default=20)
    parser.add_argument("--expsm-decay", type=float, default=0.95)
    parser.add_argument("--expsm-schedule", default="cosine", choices=("constant", "exponential", "cosine"))
    parser.add_argument("--clip-norm", type=float, default=1.0)
    parser.add_argument("--t-delay", type=float, default=None, help="ms (the paper: 1000)")
    parser.add_argument("--diag-n-rec", type=int, default=None)
    parser.add_argument("--diag-iterations", type=int, default=None)
    parser.add_argument("--diag-batch-size", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    from diffbrain.network.config import NetworkConfig, TaskConfig, TrainConfig

    quick = args.quick
    n_rec = args.n_rec or (50 if quick else 200)
    batch = args.batch_size or (32 if quick else 64)
    max_it = args.max_iterations or (150 if quick else 500)
    task = TaskConfig(t_delay=args.t_delay if args.t_delay is not None else (200.0 if quick else 1000.0),
                      t_interval=50.0 if not quick else 20.0, t_cue=100.0 if not quick else 40.0)
    results = []
    started = time.perf_counter()
    for method in args.methods.split(","):
        size = (args.diag_n_rec or (20 if quick else 40)) if method == "diag" else n_rec
        iterations = (args.diag_iterations or (30 if quick else 40)) if method == "diag" else max_it
        size_batch = (args.diag_batch_size or (16 if quick else 32)) if method == "diag" else batch
        train = TrainConfig(method=method, lr=args.expsm_lr if method == "expsm_diag" else args.lr,
                            warmup=args.expsm_warmup if method == "expsm_diag" else 0, clip_norm=args.clip_norm,
                            lr_schedule=args.expsm_schedule if method == "expsm_diag" else "constant",
                            etrace_decay=args.expsm_decay, iterations=iterations, batch_size=size_batch)
        results.append(train_until(NetworkConfig(n_rec=size), task, train, args.target, args.eval_every,
                                   args.eval_batch, args.seed, f"{method} n_rec={size}"))
        summary = {k: v for k, v in results[-1].items() if k != "curve"}
        print(f"[accuracy] done: {json.dumps(summary)}", file=sys.stderr, flush=True)
    print(json.dumps({
        "benchmark": "network_accuracy", "task": task.__dict__,
        "machine": {"cpus": os.cpu_count(), "load_average_1min": os.getloadavg()[0]},
        "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "results": results, "total_seconds": time.perf_counter() - started,
    }, indent=2))


if __name__ == "__main__":
    main()
