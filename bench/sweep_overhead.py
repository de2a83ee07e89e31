"""Sweep overhead benchmark (issue 4): the same small points packed K per task against one per task.

Runs ``diffbrain sweep submit --wait`` twice on the same executor (default local: two lanes on two cores,
each pack in its own fresh Python process, as each SLURM array task is): once with ``--points-per-job K``
(one process, one import of JAX and one compilation per pack) and once with one point per task. Prints
the wall times and their ratio (goal >= 20x for 256 points packed 32 per task).

Usage: python bench/sweep_overhead.py [--points 256] [--per-pack 32] [--executor local|slurm]
       [--experiment fit-neuron|cluster-check]
The full default takes long on 2 cores (256 processes that each import JAX and compile); --points 64
gives the same picture sooner.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# one small point of each experiment (seeds vary); fit-neuron: 2 starts, 20 evaluations, 100 ms of trace
SMALL = {
    "fit-neuron": {"starts": 2, "budget": 20, "n_traces": 1, "duration_ms": 100.0, "keep_samples": 50},
    "cluster-check": {"jax": True, "samples": 4},
}


def sweep_text(experiment: str, points: int, store: str) -> str:
    params = "\n".join(f"{k} = {json.dumps(v)}" for k, v in SMALL[experiment].items())
    return (f'name = "overhead"\nexperiment = "{experiment}"\nstore = "{store}"\n[params]\n{params}\n'
            f"[grid]\nseed = {list(range(points))}\n[resources]\ntimeout_min = 60\narray_parallelism = 64\n")


def run(folder: Path, experiment: str, points: int, per_pack: int, executor: str) -> dict:
    folder.mkdir(parents=True)
    path = folder / "sweep.toml"
    path.write_text(sweep_text(experiment, points, "store.zarr"))
    cli = [str(Path(sys.executable).parent / "diffbrain"), "sweep"]
    env = dict(os.environ, DIFFBRAIN_NO_PROGRESS="1", JAX_PLATFORMS=os.environ.get("JAX_PLATFORMS", "cpu"))
    start = time.perf_counter()
    done = subprocess.run([*cli, "submit", str(path), "--executor", executor, "--points-per-job", str(per_pack),
                           "--wait"], capture_output=True, text=True, env=env)
    seconds = time.perf_counter() - start
    from analysis.store import point_states

    states = list(point_states(folder / "store.zarr").values())
    if done.returncode != 0:
        print(done.stdout + done.stderr, file=sys.stderr)
    return {"points_per_task": per_pack, "tasks": -(-points // per_pack), "seconds": round(seconds, 1),
            "complete": states.count("complete"), "failed": states.count("failed"), "exit_code": done.returncode}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=256)
    parser.add_argument("--per-pack", type=int, default=32)
    parser.add_argument("--executor", default="local", choices=["local", "slurm"])
    parser.add_argument("--experiment", default="fit-neuron", choices=sorted(SMALL))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="sweep-overhead-", dir=os.environ.get("BENCH_DIR")) as tmp:
        packed = run(Path(tmp) / "packed", args.experiment, args.points, args.per_pack, args.executor)
        single = run(Path(tmp) / "single", args.experiment, args.points, 1, args.executor)
    print(json.dumps({
        "benchmark": "sweep_overhead", "experiment": args.experiment, "executor": args.executor,
        "points": args.points, "cpus": os.cpu_count(), "packed": packed, "one_per_task": single,
        "ratio": round(single["seconds"] / packed["seconds"], 2), "goal_ratio": 20,
        "point": SMALL[args.experiment],
    }, indent=2))


if __name__ == "__main__":
    main()
