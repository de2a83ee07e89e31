"""``sweep plan`` of a 10^6-point grid: wall time and peak memory (issue 8; before: 45 s and 1.3 GB).

Writes a grid sweep of ``--points`` points (three swept parameters) for each experiment and runs
``diffbrain sweep plan FILE --yes`` in a fresh Python process, which reports its own wall time, CPU
seconds (which a loaded machine inflates less than wall time) and peak RSS. ``--source DIR`` runs the
toolkit found in DIR instead (e.g. an export of an older commit; pass ``--no-yes`` to a version without
the size guard), for a side-by-side figure in one run.

Usage: python bench/plan_scale.py [--points 1000000] [--experiment cluster-check --experiment fit-neuron]
       [--source DIR --no-yes]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

CHILD = """
import json, resource, sys, time
t0 = time.perf_counter()
from sweeps.cli import main
code = 0
try:
    main(sys.argv[1:])
except SystemExit as exc:
    code = exc.code
usage = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({"exit": code, "seconds": round(time.perf_counter() - t0, 2),
                  "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 2),
                  "peak_rss_mb": round(usage.ru_maxrss / 1024, 1)}),
      file=sys.stderr)
"""

# three swept parameters of each experiment: 10 x 10 x (points / 100) values
GRIDS = {
    "cluster-check": ("seed", "samples", "value"),
    "fit-neuron": ("seed", "n_traces", "noise_mv"),
}


def sweep_text(experiment: str, points: int) -> str:
    a, b, c = GRIDS[experiment]
    third = points // 100
    values = ", ".join(f"{0.001 * i!r}" for i in range(third))
    return (f'name = "big"\nexperiment = "{experiment}"\nstore = "big.zarr"\n[grid]\n{a} = {list(range(10))}\n'
            f"{b} = {list(range(1, 11))}\n{c} = [{values}]\n")


def run(experiment: str, points: int, source: Path | None, yes: bool) -> dict:
    with tempfile.TemporaryDirectory(prefix="plan-scale-") as tmp:
        path = Path(tmp) / "big.toml"
        path.write_text(sweep_text(experiment, points))
        env = dict(os.environ)
        if source is not None:
            env["PYTHONPATH"] = str(source)
        argv = ["sweep", "plan", str(path), *(["--yes"] if yes else [])]
        done = subprocess.run([sys.executable, "-c", CHILD, *argv], cwd=source or tmp, env=env,
                              capture_output=True, text=True)
        result = json.loads(done.stderr.strip().splitlines()[-1])
        first = done.stdout.splitlines()[:3]
    return {"experiment": experiment, "points": points, **result, "plan_head": first}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=1_000_000)
    parser.add_argument("--experiment", action="append", choices=sorted(GRIDS))
    parser.add_argument("--source", type=Path, help="run the toolkit in this folder instead of the installed one")
    parser.add_argument("--no-yes", dest="yes", action="store_false", help="do not pass --yes")
    args = parser.parse_args()
    results = [run(e, args.points, args.source, args.yes) for e in (args.experiment or sorted(GRIDS))]
    print(json.dumps({"source": str(args.source or "installed"), "load_average": os.getloadavg(),
                      "runs": results}, indent=2))


if __name__ == "__main__":
    main()
