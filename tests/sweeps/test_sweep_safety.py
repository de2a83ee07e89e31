"""Never lose or touch what is not yours: one submitter per store, early checks of string parameters,
corrupt points named and kept, signals that stop what submit started, setup lines on the local executor."""

import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import psutil
import pytest
import xarray as xr
from cli_runner import run_cli

import sweeps.control  # noqa: F401  (submitit's logging set-up at collection, not inside a test's capture)
from analysis.lock import StoreLock
from analysis.store import create_store, point_states, write_point
from sweeps.points import expand
from sweeps.spec import load_sweep

DIFFBRAIN = str(Path(sys.executable).parent / "diffbrain")
ENV = {**os.environ, "DIFFBRAIN_NO_PROGRESS": "1"}


def sweep_file(folder: Path, text: str, name: str = "s.toml") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(textwrap.dedent(text))
    return path


LOCAL = """
name = "s"
experiment = "cluster-check"
store = "out.zarr"
[params]
seconds = {seconds}
[grid]
seed = [0, 1, 2, 3]
[resources]
executor = "local"
points_per_job = 2
"""


def _task_logs(store: Path) -> str:
    return "".join(p.read_text() for p in (store.parent / "out.jobs" / "submitit").rglob("*_log.out"))


def test_second_submit_says_the_store_is_busy_and_concurrent_submits_run_each_point_once(tmp_path, capsys):
    path = sweep_file(tmp_path, LOCAL.format(seconds=1.0))
    store = tmp_path / "out.zarr"
    with StoreLock(store, "a test holding the lock"):
        code, out, err = run_cli(["sweep", "submit", path], capsys)
    assert code == 2 and err.count("\n") == 1, err
    assert "is busy: another submit of this store is running (held by" in err
    assert f"pid {os.getpid()}" in err and "a test holding the lock" in err and str(tmp_path / "out.lock") in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.toml"]  # nothing written, lock released

    procs = [subprocess.Popen([DIFFBRAIN, "sweep", "submit", str(path), "--wait-lock", "60", "--wait"], env=ENV,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = [p.communicate(timeout=180) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], results
    outs = [out for out, _ in results]
    assert sum("submitted 4 of 4 points" in out for out in outs) == 1, outs
    assert sum("nothing to submit" in out for out in outs) == 1, outs
    assert point_states(store) == dict.fromkeys(point_states(store), "complete") and len(point_states(store)) == 4
    assert len(re.findall(r"cluster-check starts", _task_logs(store))) == 4  # every point computed once
    assert not (tmp_path / "out.lock").exists()


def _our_processes(folder: Path) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["cmdline", "environ"]):
        try:
            text = " ".join(proc.info["cmdline"] or [])
            if str(folder) in text and ("submitit" in text or "point_process" in text):
                found.append(proc)
        except psutil.Error:
            continue
    return found


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_to_submit_stops_the_local_jobs_it_started_and_says_so(tmp_path, sig):
    path = sweep_file(tmp_path, LOCAL.format(seconds=60.0))
    stdout, stderr = tmp_path / "stdout", tmp_path / "stderr"
    with open(stdout, "w") as o, open(stderr, "w") as e:
        proc = subprocess.Popen([DIFFBRAIN, "sweep", "submit", str(path), "--wait"], env=ENV, stdout=o, stderr=e)
    deadline = time.time() + 60
    while time.time() < deadline and not ("submitted" in stdout.read_text()
                                          and len(_our_processes(tmp_path / "out.jobs")) >= 2):
        time.sleep(0.2)
    assert len(_our_processes(tmp_path / "out.jobs")) >= 2
    time.sleep(0.5)  # waiting now
    proc.send_signal(sig)
    proc.wait(timeout=60)
    out, err = stdout.read_text(), stderr.read_text()
    assert proc.returncode == 130, (out, err)
    assert "submitted 4 of 4 points to local" in out
    lines = [line for line in err.splitlines() if line.strip() and "complete," not in line]
    assert lines == [f"{sig.name}: stopped waiting: stopped the 2 jobs this command had started; points they "
                     "finished stay in the store, `diffbrain sweep resume` runs the rest"], err
    assert not _our_processes(tmp_path / "out.jobs")  # truly stopped, not only said so
    assert not (tmp_path / "out.lock").exists()


FIT = """
name = "f"
experiment = "fit-neuron"
store = "results/f.zarr"
[params]
{param}
[grid]
method = ["gradient", "de"]
"""


@pytest.mark.parametrize("param, key, words", [
    ('bounds = "a=1:0"', "params.bounds.a", "low 1 is not below high 0; give LO:HI with LO < HI"),
    ('bounds = "zz=0:1"', "params.bounds.zz", "'zz' is not a fitted parameter of 'gif'; bound one of: a, "),
    ('fixed = "Z=1"', "params.fixed", "'Z' is not a fixed parameter of 'gif'; use one of: "),
    ('fixed = "A1=nan"', "params.fixed", "'A1=nan' is not NAME=NUMBER"),
    ('traces = "nope.npz"', "params.traces", "no such file: {dir}/nope.npz; give the path of an existing file"),
    ('traces = "text.npz"', "params.traces", "text.npz is not an NPZ file (no zip header; is it text?)"),
    ('voltage_traces = "text.npz"', "params.voltage_traces", "given without a 'traces' CSV file"),
])
def test_string_parameter_errors_fail_at_plan_naming_point_key_and_fix(tmp_path, capsys, param, key, words):
    (tmp_path / "text.npz").write_text("not an archive")
    path = sweep_file(tmp_path, FIT.format(param=param))
    for command in ("plan", "submit"):
        code, out, err = run_cli(["sweep", command, path, "--executor", "debug"], capsys)
        assert code == 2 and err.count("\n") == 1, err
        assert re.match(rf"error: {re.escape(key)} of point [0-9a-f]{{16}} \(method='gradient'\): ", err), err
        assert words.format(dir=tmp_path) in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.toml", "text.npz"]


def test_relative_traces_are_found_from_another_working_folder(tmp_path, capsys, monkeypatch):
    project = tmp_path / "project"
    (project / "data").mkdir(parents=True)
    t = np.arange(400) * 0.1
    np.savez(project / "data" / "cell.npz", current=np.where((t > 5) & (t < 30), 1.0, 0.0)[None, :], dt=0.1,
             voltage=np.full((1, 400), -65.0))
    path = sweep_file(project, FIT.format(param='traces = "data/cell.npz"\nstarts = 2'))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    code, out, err = run_cli(["sweep", "plan", "../project/s.toml"], capsys)
    assert code == 0, err
    points = expand(load_sweep(Path("../project/s.toml")))
    assert {p.params["traces"] for p in points} == {str(project / "data" / "cell.npz")}
    monkeypatch.chdir(project / "data")  # a task starts in another folder: the path is absolute
    assert load_sweep(path).experiment.check_point(points[0].params) is None


def _train_point(i: int) -> xr.Dataset:
    accuracy = np.linspace(0.5, 0.9, 40).astype(np.float32) - 0.01 * i
    return xr.Dataset({"loss": ("iteration", 1.0 - accuracy), "accuracy": ("iteration", accuracy, {"units": "1"})},
                      attrs={"mode": "train"})


def test_corrupt_points_are_named_kept_and_moved_aside_only_when_asked(tmp_path, capsys):
    path = sweep_file(tmp_path, LOCAL.format(seconds=0.0).replace('"local"', '"debug"'))
    assert run_cli(["sweep", "submit", path], capsys)[0] == 0
    store = tmp_path / "out.zarr"
    ids = sorted(point_states(store))
    (store / "points" / ids[0] / "zarr.json").write_text('{"zarr_format": 3, "node_ty')
    (store / "points" / ids[1] / "value" / "zarr.json").write_text("{")
    files = {p: p.read_bytes() for p in (store / "points" / ids[0]).rglob("*") if p.is_file()}

    code, out, _ = run_cli(["sweep", "status", path], capsys)
    assert code == 0 and "corrupt   2" in out and "complete  2" in out
    assert re.search(rf"{ids[0]}\s+zarr.json does not parse", out) and re.search(rf"{ids[1]}\s+value/zarr.json", out)
    code, out, _ = run_cli(["sweep", "resume", path], capsys)
    assert code == 0 and "nothing to submit" in out and "2 corrupt (--retry-corrupt" in out
    assert {p: p.read_bytes() for p in (store / "points" / ids[0]).rglob("*") if p.is_file()} == files
    code, out, err = run_cli(["sweep", "resume", path, "--retry-corrupt"], capsys)
    assert code == 0 and "submitted 2 of 4 points" in out
    assert f"moved corrupt point {ids[0]} aside to {store / 'points' / '.corrupt' / ids[0]}" in err
    assert point_states(store) == dict.fromkeys(ids, "complete")
    kept = store / "points" / ".corrupt" / ids[0]
    assert {kept / p.relative_to(store / "points" / ids[0]): b for p, b in files.items()} == \
        {p: p.read_bytes() for p in kept.rglob("*") if p.is_file()}

    (store / "zarr.json").write_text('{"zarr_format": 3, "node_type": "gro')
    for command in ("status", "plan", "submit", "resume"):
        code, out, err = run_cli(["sweep", command, path], capsys)
        assert code == 2 and err.count("\n") == 1 and "root metadata (zarr.json) is damaged" in err, (command, err)


def test_report_names_a_corrupt_point_instead_of_a_traceback(tmp_path, capsys):
    store = create_store(tmp_path / "t.zarr", {"name": "t", "experiment": "train-network"}, {"created": "now"})
    for i in range(3):
        write_point(store, f"p{i}", _train_point(i), {"point_id": f"p{i}", "params": {"seed": i, "method": "bptt"},
                                                       "seed": i, "status": "complete", "error": None})
    (store / "points" / "p2" / "value").mkdir()  # harmless: not an array
    (store / "points" / "p1" / "loss" / "zarr.json").write_text("{")  # found before computing: left out
    code, out, err = run_cli(["report", store, "--out", tmp_path / "rep"], capsys)
    assert code == 0, err
    assert "left out 1 corrupt point(s): p1 (loss/zarr.json has 1 bytes" in err
    assert "`p1`: loss/zarr.json has 1 bytes" in (tmp_path / "rep" / "summary.md").read_text()
    chunk = store / "points" / "p0" / "accuracy" / "c" / "0"
    chunk.write_bytes(b"\x00" * chunk.stat().st_size)  # found only when decoded
    code, out, err = run_cli(["report", store, "--out", tmp_path / "rep2"], capsys)
    assert code == 2 and "Traceback" not in err, err
    last = err.splitlines()[-1]  # after the note on p1, one error line
    assert err.count("\n") == 2 and last.startswith(f"error: {store}: point p0 is corrupt (array 'accuracy' cannot ")
    assert last.endswith("--retry-corrupt` to move it aside to points/.corrupt/ and compute it again")
    assert not (tmp_path / "rep2").exists() and not list(tmp_path.glob(".rep2*"))


def test_size_guard_stops_plan_and_submit_before_anything_runs(tmp_path, capsys):
    values = ", ".join(str(float(v)) for v in range(1000))
    path = sweep_file(tmp_path, f'name = "g"\nexperiment = "cluster-check"\n[grid]\nseed = {list(range(60))}\n'
                                f'value = [{values}]\n[resources]\nexecutor = "debug"\n')
    for command in ("plan", "submit"):
        code, out, err = run_cli(["sweep", command, path], capsys)
        assert code == 2 and err == ("error: --max-points: the sweep expands to up to 60,000 points, above the "
                                     "limit of 50,000; pass --yes (or --max-points 60000) if you mean it, or "
                                     "make the grid smaller\n")
    code, out, err = run_cli(["sweep", "plan", path, "--max-points", "100", "--yes"], capsys)
    assert code == 2 and "above the limit of 100" in err
    code, out, err = run_cli(["sweep", "plan", path, "--yes", "--rows", "2"], capsys)
    assert code == 0 and "60000 points (swept: seed, value)" in out and "60000 points in 60000 jobs" in out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.toml"]


def test_setup_lines_run_before_each_local_pack_and_a_failing_one_fails_its_points(tmp_path, capsys):
    text = LOCAL.format(seconds=0.0) + 'setup = ["echo setup-says-$((6 * 7))", "export DIFFBRAIN_X=1"]\n'
    path = sweep_file(tmp_path, text)
    code, out, _ = run_cli(["sweep", "plan", path], capsys)
    assert "2 setup lines run in a shell before each pack (output in the task log)" in out
    assert run_cli(["sweep", "submit", path, "--wait"], capsys)[0] == 0
    assert _task_logs(tmp_path / "out.zarr").count("setup-says-42") == 2  # two packs of two points
    bad = sweep_file(tmp_path / "bad", LOCAL.format(seconds=0.0) + 'setup = ["echo before", "exit 3"]\n')
    code, out, _ = run_cli(["sweep", "submit", bad, "--wait"], capsys)
    assert code == 1 and "0/4 complete, 4 failed" in out
    code, out, _ = run_cli(["sweep", "status", bad], capsys)
    assert "failed    4" in out
    from analysis.store import read_point_attrs
    error = read_point_attrs(tmp_path / "bad" / "out.zarr", expand(load_sweep(bad))[0].point_id)["error"]
    assert "a setup line failed before the pack ran (exit status 3)" in error and "before" in error
