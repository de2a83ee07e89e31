"""The gradient method's per-target choices, measured: polisher (Levenberg–Marquardt or L-BFGS-B), the spike-forced
warm start (on or off) and the number of polished starts (prints JSON).

For each of GIF (the paper's five step protocols, 1000 ms at dt 0.1 ms) and HH (the input currents of
../shared/data/hh, 14.97 ms at dt 0.01 ms) with potential and spike targets simulated at hidden parameters,
every variant fits from the same screen (same seeds, same budget of 2048 forward-equivalents), ``--seeds``
times after a first, compiling run timed apart: final loss, seconds, evaluations and the largest relative
parameter error. ``best`` is the fastest variant whose median loss is within 10x of the lowest (differences
below that are float32 noise of exact fits); the defaults in ``diffbrain.fitting`` (POLISHER, WARM_START,
DEFAULT_STARTS) follow these measurements. Usage: python bench/fit_polish.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fit_compare import HH_DATA, HIDDEN, load, log, targets  # noqa: E402

os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("DIFFBRAIN_NO_PROGRESS", "1")


def variants(model: str, target: str, starts: list[int]) -> list[dict]:
    """The settings compared for one target."""
    out = []
    warm = [False, True] if model == "gif" else [False]
    polishers = ["lm", "lbfgsb"] if target == "potential" else ["lbfgsb"]
    for polisher in polishers:
        for warm_start in warm:
            out.append({"polisher": polisher, "warm_start": warm_start, "starts": 2})
    best_polisher = "lm" if target == "potential" else "lbfgsb"
    for k in starts:
        if k != 2:
            out.append({"polisher": best_polisher, "warm_start": model == "gif", "starts": k})
    return out


def measure(model: str, target: str, data, seeds: int, starts: list[int]) -> dict:
    from diffbrain.fitting import make_problem
    from diffbrain.fitting.gradient import fit_gradient

    problem = make_problem(model, target, data)
    hidden = np.asarray([HIDDEN[model][n] for n in problem.names])
    rows = []
    for setting in variants(model, target, starts):
        started = time.perf_counter()
        fit_gradient(problem, seed=10_000, **setting)  # compiles
        compile_seconds = time.perf_counter() - started
        results = [fit_gradient(problem, seed=seed, **setting) for seed in range(seeds)]
        row = {**setting, "first_run_seconds_with_compile": round(compile_seconds, 2),
               "loss": [float(r.loss) for r in results], "seconds": [round(r.seconds, 3) for r in results],
               "evaluations": [int(r.evaluations) for r in results],
               "max_relative_param_error": [round(float(np.max(np.abs(r.best / hidden - 1.0))), 5) for r in results],
               "median_loss": statistics.median(float(r.loss) for r in results),
               "median_seconds": round(statistics.median(r.seconds for r in results), 3), "load_average": load()}
        rows.append(row)
        log(f"{model} {target} {setting}: median loss {row['median_loss']:.4g} in {row['median_seconds']} s "
            f"(load {row['load_average']})")
    lowest = min(r["median_loss"] for r in rows)
    good = [r for r in rows if r["median_loss"] <= max(10.0 * lowest, 1e-12)]  # float32 fits differ below that
    best = min(good, key=lambda r: r["median_seconds"])
    return {"model": model, "target": target, "variants": rows,
            "best": {k: best[k] for k in ("polisher", "warm_start", "starts")}}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--starts", default="1,2,4,8", help="polished starts compared (with the best polisher)")
    parser.add_argument("--models", default="gif,hh")
    parser.add_argument("--targets", default="potential,spike")
    parser.add_argument("--quick", action="store_true", help="one seed; 2 starts only")
    parser.add_argument("--data", default=str(HH_DATA))
    args = parser.parse_args(argv)
    if args.quick:
        args.seeds, args.starts = 1, "2"
    starts = [int(k) for k in args.starts.split(",") if k]
    report = {"benchmark": "fit_polish", "cpus": os.cpu_count(), "load_average_at_start": load(),
              "seeds": args.seeds, "results": []}
    data = targets(Path(args.data))
    for model in args.models.split(","):
        for target in args.targets.split(","):
            report["results"].append(measure(model, target, data[model], args.seeds, starts))
    report["load_average_at_end"] = load()
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
