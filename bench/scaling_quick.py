"""Benchmark (issue 5): the quick scaling sweep on this machine; prints JSON with the table and memory growth.

Runs examples/scaling.toml --quick with the local executor in a temporary copy (or reads an existing
store with --store), writes the report (figures + summary.md) to --out, and prints one JSON object:
seconds per step and memory per method, n_rec and T, and the step-memory growth from T=1000 to 2000
(goal: bptt about +100 %, diag and expsm_diag within 10 %).
Usage: python bench/scaling_quick.py [--with-optional] [--out bench-out/scaling-report] [--store PATH]
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_sweep(workdir: Path, with_optional: bool) -> tuple[Path, float]:
    shutil.copy(ROOT / "examples" / "scaling.toml", workdir / "scaling.toml")
    cmd = [str(Path(sys.executable).with_name("diffbrain")), "sweep", "submit", "scaling.toml", "--quick",
           "--executor", "local", "--wait"] + (["--with-optional"] if with_optional else [])
    start = time.perf_counter()
    subprocess.run(cmd, cwd=workdir, check=True, stdout=subprocess.DEVNULL)
    return workdir / "results" / "scaling-quick.zarr", time.perf_counter() - start


def clean(value: float) -> float | None:
    return None if not math.isfinite(value) else round(float(value), 6)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--with-optional", action="store_true", help="also diag's largest points (slow)")
    parser.add_argument("--out", default="bench-out/scaling-report", help="folder for the report")
    parser.add_argument("--store", default=None, help="report an existing store instead of running the sweep")
    args = parser.parse_args()

    from analysis.collect import open_sweep
    from analysis.report import build_report
    from analysis.scaling import memory_growth, scaling_table

    with tempfile.TemporaryDirectory() as tmp:
        store, sweep_s = (Path(args.store), None) if args.store else run_sweep(Path(tmp), args.with_optional)
        table = scaling_table(open_sweep(store), keys=["method", "n_rec", "T"])
        growth = memory_growth(table, "step_bytes", (1000, 2000)) if {1000, 2000} <= set(
            table["T"].values.tolist()) else None
        build_report(store, args.out)
    rows = []
    for method in table["method"].values:
        for n_rec in table["n_rec"].values:
            for t in table["T"].values:
                one = table.sel({"method": method, "n_rec": n_rec, "T": t})
                if int(one["n_points"]) == 0:
                    continue
                rows.append({"method": str(method), "n_rec": int(n_rec), "T": int(t),
                             "step_seconds_median": clean(one["step_seconds_median"]),
                             "compile_seconds": clean(one["compile_seconds"]),
                             "step_bytes": clean(one["step_bytes"]), "temp_bytes": clean(one["temp_bytes"]),
                             "peak_rss_bytes": clean(one["peak_rss_bytes"])})
    growth_rows = [] if growth is None else [
        {"method": str(m), "n_rec": int(n), "step_bytes_growth_1000_to_2000": clean(growth.sel(
            {"method": m, "n_rec": n}))} for m in growth["method"].values for n in growth["n_rec"].values]
    print(json.dumps({"benchmark": "scaling_quick", "sweep_seconds": None if sweep_s is None else round(sweep_s, 1),
                      "rows": rows, "memory_growth": growth_rows, "report": str(Path(args.out).resolve())}))


if __name__ == "__main__":
    main()
