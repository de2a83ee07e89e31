"""Bad inputs, tried as a new user would (issue 8): does each one end in exit 2, one message, nothing left behind?

Every case runs ``diffbrain ...`` in a fresh folder that also holds a sibling folder with a file in it.
A case is *handled* when the command exits with status 2, prints exactly one non-empty line on stderr (no
traceback), and the folder afterwards is exactly as before (no file written, changed or removed: the
sibling, the inputs and any store included). Cases are grouped by area: sweep files, flags, trace files,
stores. The output is JSON: per area handled / tried, and each unhandled case with what went wrong.

Usage: python bench/bad_inputs.py [--jobs 2] [--area stores] [--only NAME] [--out bad_inputs.json]
(each case is a fresh process, as a user's command is; cases that import JAX take a few seconds each).
``tests/test_bad_inputs.py`` runs the same table in one process.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

AREAS = ("sweep files", "flags", "trace files", "stores")
TIMEOUT_S = 120
DIFFBRAIN = str(Path(sys.executable).parent / "diffbrain")


@dataclass(frozen=True)
class Case:
    area: str
    name: str
    argv: tuple[str, ...]  # diffbrain arguments, run in the case's folder
    setup: Callable[[Path], None] | None = None
    issue: bool = False  # one of the inputs listed in issue 8
    extra: dict = field(default_factory=dict)


# ------------------------------------------------------------------------------------------ inputs
def text(name: str, content: str | bytes) -> Callable[[Path], None]:
    def write(folder: Path) -> None:
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return write


def both(*steps: Callable[[Path], None]) -> Callable[[Path], None]:
    def run(folder: Path) -> None:
        for step in steps:
            step(folder)
    return run


def sweep(body: str = "", experiment: str = "cluster-check", store: str = "out.zarr", name: str = "s.toml",
          head: str | None = None) -> Callable[[Path], None]:
    top = head if head is not None else f'name = "s"\nexperiment = "{experiment}"\nstore = "{store}"\n'
    resources = "" if "[resources]" in body else '\n[resources]\nexecutor = "debug"\n'
    return text(name, top + body + resources)


def npz(name: str = "t.npz", steps: int = 200, **change) -> Callable[[Path], None]:
    def write(folder: Path) -> None:
        t = np.arange(steps) * 0.1
        arrays = {"current": np.where((t > 2) & (t < 15), 1.0, 0.0)[None, :].repeat(2, 0), "dt": 0.1,
                  "voltage": np.full((2, steps), -65.0)}
        arrays.update(change)
        np.savez(folder / name, **{k: v for k, v in arrays.items() if v is not None})
    return write


def csv(name: str, rows: list[str], encoding: str = "utf-8") -> Callable[[Path], None]:
    return text(name, ("\n".join(rows) + "\n").encode(encoding, errors="strict")
                if encoding != "latin-1" else ("\n".join(rows) + "\n").encode("latin-1"))


def store(damage: str | None = None) -> Callable[[Path], None]:
    """A small complete store ``out.zarr`` of the sweep ``s.toml`` (cluster-check, 2 points), then damaged."""
    def write(folder: Path) -> None:
        import xarray as xr

        from analysis.store import create_store, write_point

        sweep(GRID)(folder)
        path = create_store(folder / "out.zarr", {"name": "s", "experiment": "cluster-check", "spec": {},
                                                  "source": ""}, {"created": "2026-01-01T00:00:00+00:00"})
        for seed in (0, 1):
            data = xr.Dataset({"value": ((), np.float32(1.0)), "noise": (("sample",), np.zeros(8, np.float32))})
            status = "failed" if damage == "failed-only" else "complete"
            write_point(path, f"p{seed}", data, {"point_id": f"p{seed}", "experiment": "cluster-check",
                                                 "params": {"seed": seed}, "seed": seed, "status": status,
                                                 "error": "boom" if status == "failed" else None})
        root = folder / "out.zarr" / "zarr.json"
        if damage == "root":
            root.write_bytes(root.read_bytes()[:80])
        elif damage == "newer":
            meta = json.loads(root.read_text())
            meta["attributes"]["diffbrain_store_layout"] = 99
            root.write_text(json.dumps(meta))
    return write


def locked(folder: Path) -> None:
    """The store's lock, held by a live process on this host (the harness itself)."""
    import psutil

    lock = folder / "out.lock"
    lock.mkdir()
    (lock / "owner.json").write_text(json.dumps({
        "host": __import__("socket").gethostname(), "pid": os.getpid(),
        "pid_started": psutil.Process().create_time(), "user": "someone", "command": "diffbrain sweep submit s.toml",
        "since": "2026-01-01T00:00:00"}))


FIT = ("fit", "gif")


def fit(path: str) -> tuple[str, ...]:
    return ("fit", "gif", "--traces", path, "--out", "fitout")


GRID = "[grid]\nseed = [0, 1]\n"
BIG = "[grid]\nseed = " + str(list(range(60))) + "\nvalue = [" + ", ".join(f"{v}.0" for v in range(1000)) + "]\n"

CASES: list[Case] = [
    # -------------------------------------------------------------------------------- sweep files
    Case("sweep files", "non-UTF-8 sweep file", ("sweep", "plan", "s.toml"), text("s.toml", b'name = "\xff"\n'), True),
    Case("sweep files", "NUL byte in the store path", ("sweep", "submit", "s.toml"),
         sweep(GRID, store="a\\u0000b.zarr"), True),
    Case("sweep files", "store under /proc", ("sweep", "submit", "s.toml"), sweep(GRID, store="/proc/x.zarr"), True),
    Case("sweep files", "store under a regular file", ("sweep", "submit", "s.toml"),
         both(text("f", "x"), sweep(GRID, store="f/x.zarr")), True),
    Case("sweep files", "store is a regular file", ("sweep", "submit", "s.toml"), both(text("f.zarr", "x"),
                                                                                      sweep(GRID, store="f.zarr"))),
    Case("sweep files", "bounds low above high", ("sweep", "plan", "s.toml"),
         sweep('[params]\nbounds = "a=1:0"\n', "fit-neuron"), True),
    Case("sweep files", "bounds of an unknown parameter", ("sweep", "plan", "s.toml"),
         sweep('[params]\nbounds = "zz=0:1"\n', "fit-neuron"), True),
    Case("sweep files", "fixed of an unknown constant", ("sweep", "plan", "s.toml"),
         sweep('[params]\nfixed = "Z=1"\n', "fit-neuron"), True),
    Case("sweep files", "traces file of a sweep missing", ("sweep", "submit", "s.toml"),
         sweep('[params]\ntraces = "nope.npz"\n', "fit-neuron"), True),
    Case("sweep files", "traces is a text file named .npz", ("sweep", "plan", "s.toml"),
         both(text("t.npz", "hello"), sweep('[params]\ntraces = "t.npz"\n', "fit-neuron"))),
    Case("sweep files", "traces is a folder", ("sweep", "plan", "s.toml"),
         both(text("d/x", ""), sweep('[params]\ntraces = "d"\n', "fit-neuron"))),
    Case("sweep files", "fixed constant not finite", ("sweep", "plan", "s.toml"),
         sweep('[params]\nfixed = "A1=nan"\n', "fit-neuron"), True),
    Case("sweep files", "NaN parameter value", ("sweep", "plan", "s.toml"), sweep("[params]\nvalue = nan\n"), True),
    Case("sweep files", "infinite value in a grid", ("sweep", "plan", "s.toml"), sweep("[grid]\nvalue = [1.0, inf]\n"),
         True),
    Case("sweep files", "random range to infinity", ("sweep", "plan", "s.toml"),
         sweep("[random]\ncount = 2\nvalue = { uniform = [0.0, inf] }\n")),
    Case("sweep files", "float for an int parameter", ("sweep", "plan", "s.toml"), sweep("[params]\nsamples = 2.5\n"),
         True),
    Case("sweep files", "60,000 points without --yes", ("sweep", "submit", "s.toml"), sweep(BIG), True),
    Case("sweep files", "invalid TOML", ("sweep", "plan", "s.toml"), text("s.toml", "name = \n")),
    Case("sweep files", "unknown top-level key", ("sweep", "plan", "s.toml"), sweep("colour = 1\n")),
    Case("sweep files", "no experiment", ("sweep", "plan", "s.toml"), text("s.toml", 'name = "s"\n')),
    Case("sweep files", "unknown experiment", ("sweep", "plan", "s.toml"), sweep(experiment="lif-fit")),
    Case("sweep files", "unknown parameter", ("sweep", "plan", "s.toml"), sweep("[grid]\nspeed = [1, 2]\n")),
    Case("sweep files", "string for a float", ("sweep", "plan", "s.toml"), sweep('[params]\nvalue = "one"\n')),
    Case("sweep files", "empty grid list", ("sweep", "plan", "s.toml"), sweep("[grid]\nseed = []\n")),
    Case("sweep files", "zip lists of unequal length", ("sweep", "plan", "s.toml"),
         sweep("[[zip]]\nseed = [0, 1]\nvalue = [1.0]\n")),
    Case("sweep files", "every point excluded", ("sweep", "plan", "s.toml"),
         sweep("[grid]\nseed = [0]\n[[exclude]]\nseed = 0\n")),
    Case("sweep files", "store ending in .jobs", ("sweep", "plan", "s.toml"), sweep(store="x.jobs")),
    Case("sweep files", "store ending in .lock", ("sweep", "plan", "s.toml"), sweep(store="x.lock")),
    Case("sweep files", "empty store path", ("sweep", "plan", "s.toml"), sweep(store="")),
    Case("sweep files", "name with a slash", ("sweep", "plan", "s.toml"),
         text("s.toml", 'name = "a/b"\nexperiment = "cluster-check"\n')),
    Case("sweep files", "random count 0", ("sweep", "plan", "s.toml"),
         sweep("[random]\ncount = 0\nvalue = { uniform = [0.0, 1.0] }\n")),
    Case("sweep files", "unknown resource", ("sweep", "plan", "s.toml"), sweep("[resources]\ngpu = 1\n")),
    Case("sweep files", "timeout of 0 minutes", ("sweep", "plan", "s.toml"), sweep("[resources]\ntimeout_min = 0\n")),
    Case("sweep files", "sweep file is a folder", ("sweep", "plan", "d.toml"), text("d.toml/x", "")),
    Case("sweep files", "sweep file missing", ("sweep", "plan", "none.toml")),
    Case("sweep files", "unknown variant", ("sweep", "plan", "s.toml", "--variant", "fast"), sweep()),
    # -------------------------------------------------------------------------------------- flags
    Case("flags", "simulate --param a=nan", ("simulate", "gif", "--param", "a=nan", "--out", "t.npz"), None, True),
    Case("flags", "simulate --param a=inf", ("simulate", "gif", "--param", "a=inf", "--out", "t.npz"), None, True),
    Case("flags", "fit --fixed A1=nan", (*FIT, "--traces", "t.npz", "--fixed", "A1=nan", "--out", "o"), npz(),
         True),
    Case("flags", "fit --dt with an NPZ", (*FIT, "--traces", "t.npz", "--dt", "0.05", "--out", "o"), npz(), True),
    Case("flags", "simulate --noise nan", ("simulate", "gif", "--noise", "nan", "--out", "t.npz")),
    Case("flags", "simulate --dt inf", ("simulate", "gif", "--dt", "inf", "--out", "t.npz")),
    Case("flags", "simulate --duration with --current", ("simulate", "gif", "--current", "t.npz", "--duration", "9",
                                                         "--out", "s.npz"), npz()),
    Case("flags", "fit --delta nan", (*FIT, "--traces", "t.npz", "--target", "spike", "--delta", "nan", "--out",
                                      "o"), npz(spikes=np.zeros((2, 200)))),
    Case("flags", "fit --bounds a=nan:1", (*FIT, "--traces", "t.npz", "--bounds", "a=nan:1", "--out", "o"), npz()),
    Case("flags", "fit --starts 0", (*FIT, "--traces", "t.npz", "--starts", "0", "--out", "o"), npz()),
    Case("flags", "fit --method newton", (*FIT, "--traces", "t.npz", "--method", "newton", "--out", "o"), npz()),
    Case("flags", "fit --voltage with an NPZ", (*FIT, "--traces", "t.npz", "--voltage", "v.csv", "--out", "o"),
         both(npz(), csv("v.csv", ["0,1,2"]))),
    Case("flags", "fit --out under /proc", (*FIT, "--traces", "t.npz", "--out", "/proc/fit"), npz()),
    Case("flags", "simulate --out under /proc", ("simulate", "gif", "--out", "/proc/t.npz")),
    Case("flags", "simulate --out under a file", ("simulate", "gif", "--out", "f/t.npz"), text("f", "x")),
    Case("flags", "train --out under /proc", ("train", "--iterations", "1", "--out", "/proc/run"), None, True),
    Case("flags", "train --out under a file", ("train", "--iterations", "1", "--out", "f/run"), text("f", "x"), True),
    Case("flags", "train --n-rec 4", ("train", "--n-rec", "4", "--out", "run")),
    Case("flags", "train --lr nan", ("train", "--lr", "nan", "--out", "run")),
    Case("flags", "train --n-rec 2.5", ("train", "--n-rec", "2.5", "--out", "run")),
    Case("flags", "report --out under /proc", ("report", "out.zarr", "--out", "/proc/rep"), store()),
    Case("flags", "sweep submit --timeout-min 0", ("sweep", "submit", "s.toml", "--timeout-min", "0"), sweep(GRID)),
    Case("flags", "sweep submit --mem-gb nan", ("sweep", "submit", "s.toml", "--mem-gb", "nan"), sweep(GRID)),
    Case("flags", "sweep submit --wait-lock nan", ("sweep", "submit", "s.toml", "--wait-lock", "nan"), sweep(GRID)),
    Case("flags", "sweep plan --max-points 0", ("sweep", "plan", "s.toml", "--max-points", "0"), sweep(GRID)),
    Case("flags", "sweep plan --quick --variant x", ("sweep", "plan", "s.toml", "--quick", "--variant", "x"),
         sweep(GRID)),
    Case("flags", "sweep cancel --job unknown", ("sweep", "cancel", "s.toml", "--job", "12_3"), sweep(GRID)),
    Case("flags", "sweep resume without a store", ("sweep", "resume", "s.toml", "--retry-corrupt"), sweep(GRID)),
    Case("flags", "unknown command", ("simulated",)),
    # -------------------------------------------------------------------------------- trace files
    Case("trace files", "text file named .npz", fit("t.npz"),
         text("t.npz", "current,dt\n1,2\n"), True),
    Case("trace files", "NPZ with zero rows", fit("t.npz"),
         npz(current=np.zeros((0, 200)), voltage=np.zeros((0, 200))), True),
    Case("trace files", "complex currents", fit("t.npz"),
         npz(current=np.ones((2, 200)) * (1 + 1j)), True),
    Case("trace files", "NPZ without current", fit("t.npz"), npz(current=None)),
    Case("trace files", "NPZ without dt", fit("t.npz"), npz(dt=None)),
    Case("trace files", "NaN in the voltage", fit("t.npz"),
         npz(voltage=np.where(np.arange(200) == 5, np.nan, -65.0) * np.ones((2, 1)))),
    Case("trace files", "current in amperes", fit("t.npz"), npz(current=np.ones((2, 200)) * 1e-9)),
    Case("trace files", "voltage in volts", fit("t.npz"), npz(voltage=np.full((2, 200), -0.065))),
    Case("trace files", "pickled objects", fit("t.npz"),
         npz(voltage=np.array([[1.0], "x"], dtype=object))),
    Case("trace files", ".npy renamed .npz", fit("t.npz"),
         lambda f: np.save(f / "t.npy", np.ones(3)) or (f / "t.npy").rename(f / "t.npz")),
    Case("trace files", "truncated NPZ", fit("t.npz"),
         lambda f: npz()(f) or (f / "t.npz").write_bytes((f / "t.npz").read_bytes()[:300])),
    Case("trace files", "3-d current", fit("t.npz"), npz(current=np.ones((2, 2, 200)))),
    Case("trace files", "voltage of another shape", fit("t.npz"),
         npz(voltage=np.full((2, 199), -65.0))),
    Case("trace files", "spikes not 0/1", fit("t.npz"), npz(spikes=np.full((2, 200), 2.0))),
    Case("trace files", "negative dt", fit("t.npz"), npz(dt=-0.1)),
    Case("trace files", "dt in seconds", fit("t.npz"), npz(dt=1e-5)),
    Case("trace files", "one time step", fit("t.npz"), npz(steps=1)),
    Case("trace files", "no voltage and no spikes", fit("t.npz"), npz(voltage=None)),
    Case("trace files", "CSV not UTF-8", ("fit", "hh", "--traces", "c.csv", "--dt", "0.01", "--out", "o"),
         text("c.csv", b"lab\xe9l,1e-9,2e-9\n")),
    Case("trace files", "CSV rows of different lengths", ("fit", "hh", "--traces", "c.csv", "--dt", "0.01", "--out",
                                                          "o"), csv("c.csv", ["a,1e-9,2e-9", "b,1e-9"])),
    Case("trace files", "CSV without --dt", ("fit", "hh", "--traces", "c.csv", "--out", "o"),
         csv("c.csv", ["a,1e-9,2e-9"])),
    Case("trace files", "CSV non-numeric cell", ("fit", "hh", "--traces", "c.csv", "--dt", "0.01", "--out", "o"),
         csv("c.csv", ["a,1e-9,x"])),
    Case("trace files", "empty CSV", ("fit", "hh", "--traces", "c.csv", "--dt", "0.01", "--out", "o"),
         text("c.csv", "")),
    Case("trace files", "unknown extension", fit("t.mat"), text("t.mat", "x")),
    Case("trace files", "traces path is a folder", fit("d.npz"), text("d.npz/x", "")),
    Case("trace files", "traces file missing", fit("none.npz")),
    # ------------------------------------------------------------------------------------- stores
    Case("stores", "status with a truncated root zarr.json", ("sweep", "status", "s.toml"), store("root"), True),
    Case("stores", "report with a truncated root zarr.json", ("report", "out.zarr", "--out", "rep"), store("root"),
         True),
    Case("stores", "submit with a truncated root zarr.json", ("sweep", "submit", "s.toml"), store("root"), True),
    Case("stores", "collect with a truncated root zarr.json", ("sweep", "collect", "out.zarr"), store("root"), True),
    Case("stores", "submit while another submit holds the lock", ("sweep", "submit", "s.toml"),
         both(sweep(GRID), locked), True),
    Case("stores", "report of a folder that is not a store", ("report", "d", "--out", "rep"), text("d/x", "x")),
    Case("stores", "report of a missing store", ("report", "none.zarr", "--out", "rep")),
    Case("stores", "report of a store without complete points", ("report", "out.zarr", "--out", "rep"),
         store("failed-only")),
    Case("stores", "report of a newer store layout", ("report", "out.zarr", "--out", "rep"), store("newer")),
    Case("stores", "report --out into a folder of other files", ("report", "out.zarr", "--out", "keep"), store()),
    Case("stores", "report --out is a file", ("report", "out.zarr", "--out", "f"), both(store(), text("f", "x"))),
    Case("stores", "collect of a folder that is not a store", ("sweep", "collect", "d"), text("d/x", "x")),
    Case("stores", "submit into a store of another experiment", ("sweep", "submit", "t.toml"),
         both(store(), sweep('[params]\nmodel = "gif"\n', "fit-neuron", name="t.toml"))),
    Case("stores", "submit with the store path a non-store folder", ("sweep", "submit", "s.toml"),
         both(text("out.zarr/mine.txt", "x"), sweep(GRID))),
    Case("stores", "status with the store path a file", ("sweep", "status", "s.toml"),
         both(text("out.zarr", "x"), sweep(GRID))),
]


# ------------------------------------------------------------------------------------------ judging
def snapshot(folder: Path) -> dict[str, str]:
    """Every path under ``folder`` with a digest of its content (folders: 'dir')."""
    out = {}
    for root, dirs, files in os.walk(folder):
        for name in dirs:
            out[os.path.relpath(os.path.join(root, name), folder)] = "dir"
        for name in files:
            path = os.path.join(root, name)
            with open(path, "rb") as f:
                out[os.path.relpath(path, folder)] = hashlib.sha1(f.read()).hexdigest()
    return out


def prepare(case: Case, folder: Path) -> dict[str, str]:
    """Write the case's inputs and the sibling folder into ``folder``; its snapshot."""
    (folder / "keep").mkdir(parents=True)
    (folder / "keep" / "notes.txt").write_text("not yours")
    if case.setup is not None:
        case.setup(folder)
    return snapshot(folder)


def judge(code: int, out: str, err: str, before: dict, after: dict) -> list[str]:
    """What is wrong with an outcome (empty: handled)."""
    problems = []
    lines = [line for line in err.splitlines() if line.strip()]
    if code != 2:
        problems.append(f"exit status {code}")
    if "Traceback" in err:
        problems.append("traceback")
    if len(lines) != 1:
        problems.append(f"{len(lines)} lines on stderr")
    if after != before:
        added = sorted(set(after) - set(before))
        removed = sorted(set(before) - set(after))
        changed = sorted(k for k in set(before) & set(after) if before[k] != after[k])
        problems.append("left behind: " + "; ".join(
            part for part in (f"added {added[:4]}" if added else "", f"removed {removed[:4]}" if removed else "",
                              f"changed {changed[:4]}" if changed else "") if part))
    return problems


def run_subprocess(case: Case) -> dict:
    with tempfile.TemporaryDirectory(prefix="bad-input-") as tmp:
        folder = Path(tmp) / "work"
        before = prepare(case, folder)
        t0 = time.perf_counter()
        proc = subprocess.Popen([DIFFBRAIN, *case.argv], cwd=folder, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, start_new_session=True,
                                env={**os.environ, "DIFFBRAIN_NO_PROGRESS": "1", "JAX_PLATFORMS": "cpu"})
        try:
            out, err = proc.communicate(timeout=TIMEOUT_S)
            code = proc.returncode
        except subprocess.TimeoutExpired:  # e.g. a huge sweep that was not refused: it ran
            os.killpg(proc.pid, signal.SIGKILL)
            out, err = proc.communicate()
            code = f"none after {TIMEOUT_S} s"
        seconds = time.perf_counter() - t0
        time.sleep(0.5)  # anything it started in the background has had a moment to write
        problems = judge(code, out, err, before, snapshot(folder))
    return {"area": case.area, "name": case.name, "issue": case.issue, "handled": not problems,
            "problems": problems, "message": err.strip().splitlines()[-1:] or [""], "seconds": round(seconds, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=2, help="cases run side by side")
    parser.add_argument("--area", choices=AREAS, action="append", help="only these areas (repeatable)")
    parser.add_argument("--only", help="only cases whose name contains this")
    parser.add_argument("--out", type=Path, help="also write the JSON here")
    args = parser.parse_args()
    cases = [c for c in CASES if (not args.area or c.area in args.area) and (not args.only or args.only in c.name)]
    t0 = time.perf_counter()
    with ThreadPoolExecutor(args.jobs) as pool:
        results = list(pool.map(run_subprocess, cases))
    areas = {}
    for area in AREAS:
        mine = [r for r in results if r["area"] == area]
        if mine:
            areas[area] = {"handled": sum(r["handled"] for r in mine), "tried": len(mine)}
    issue = [r for r in results if r["issue"]]
    report = {
        "handled": sum(r["handled"] for r in results), "tried": len(results), "by_area": areas,
        "issue_cases": {"handled": sum(r["handled"] for r in issue), "tried": len(issue)},
        "unhandled": [{k: r[k] for k in ("area", "name", "problems", "message")} for r in results if not r["handled"]],
        "messages": {r["name"]: r["message"][0] for r in results},
        "seconds": round(time.perf_counter() - t0, 1), "load_average": os.getloadavg(),
    }
    text_out = json.dumps(report, indent=2, ensure_ascii=False)
    if args.out:
        args.out.write_text(text_out + "\n")
    print(text_out)


if __name__ == "__main__":
    main()
