"""`diffbrain sweep ...` end to end on this machine: plan, submit (local and debug executors), status,
resume, cancel, collect."""

import json
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
from cli_runner import run_cli
from sweep_texts import cluster_check_sweep

from analysis import open_sweep
from analysis.store import point_states, read_point_attrs
from diffbrain.experiments import get, names
from sweeps.points import expand
from sweeps.spec import load_sweep

SWEEP = cluster_check_sweep("cli", "{store}", 1.0) + """
[resources]
points_per_job = 2
array_parallelism = 2
timeout_min = 5
"""


def write(tmp_path, store="out/cli.zarr", text=SWEEP):
    path = tmp_path / "sweep.toml"
    path.write_text(textwrap.dedent(text.format(store=store)))
    return path


run = run_cli  # (exit code, stdout, stderr)


def _installed(name):
    try:
        get(name)
    except ImportError:
        return False
    return True


@pytest.mark.parametrize("experiment", [n for n in names() if _installed(n)])
def test_plan_imports_no_jax_zarr_or_xarray(tmp_path, experiment):
    """`sweep plan` answers in about a second: it must not import JAX (nor zarr, xarray, dask)."""
    path = tmp_path / "plan.toml"
    path.write_text(f'name = "p"\nexperiment = "{experiment}"\n[grid]\nseed = [0, 1, 2, 3]\n')
    code = ("import sys; from sweeps.cli import main; main(['sweep', 'plan', sys.argv[1]]); "
            "print(sorted(m for m in ('jax', 'zarr', 'xarray', 'dask', 'submitit') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "[]"
    assert "4 points" in out.stdout and not (tmp_path / "results").exists()


def test_local_submit_status_resume_collect(tmp_path, capsys):
    path = write(tmp_path)
    code, out, err = run(["sweep", "plan", path], capsys)
    assert code == 0 and "4 points" in out and "to run: 4 points in 2 jobs" in out
    code, out, err = run(["sweep", "submit", path, "--executor", "local", "--wait"], capsys)
    assert code == 1, out + err  # one point fails on purpose
    assert "3/4 complete, 1 failed, 0 running, 0 pending, 0 missing" in out
    sweep = load_sweep(path)
    points = expand(sweep)
    states = point_states(sweep.store)
    assert sorted(states.values()) == ["complete", "complete", "complete", "failed"]
    assert set(states) == {p.point_id for p in points}

    code, out, _ = run(["sweep", "status", path], capsys)
    assert code == 0
    assert "complete  3" in out and "failed    1" in out and "missing   0" in out
    assert "RuntimeError: cluster-check asked to fail (value=9.0)" in out

    code, out, _ = run(["sweep", "plan", path], capsys)
    assert "holds 3 complete and 1 failed" in out and "to run: 0 points" in out

    started = {pid: read_point_attrs(sweep.store, pid)["started"] for pid in states}
    code, out, _ = run(["sweep", "resume", path, "--executor", "local"], capsys)
    assert code == 0 and "nothing to submit" in out and "--retry-failed" in out
    code, out, _ = run(["sweep", "resume", path, "--executor", "local", "--retry-failed", "--wait"], capsys)
    assert code == 1 and "submitted 1 of 4 points" in out
    again = {pid: read_point_attrs(sweep.store, pid)["started"] for pid in states}
    changed = [pid for pid in states if again[pid] != started[pid]]
    assert changed == [pid for pid, s in states.items() if s == "failed"]  # nothing complete was rerun

    code, out, _ = run(["sweep", "collect", path], capsys)
    assert code == 0 and "3 complete, 1 failed, 0 incomplete" in out
    ds = open_sweep(sweep.store)
    assert ds.sizes["point"] == 3 and sorted(ds["seed"].values) == [0, 1, 2]
    assert ds.attrs["fixed_params"]["samples"] == 5 and ds.attrs["sweep"]["name"] == "cli"
    assert ds.attrs["sweep"]["source"] == path.read_text()
    assert {"numpy", "zarr", "xarray", "submitit"} <= set(ds.attrs["packages"])


def test_debug_and_local_executors_give_same_ids_and_results(tmp_path, capsys):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    local, debug = write(tmp_path / "a", "local.zarr"), write(tmp_path / "b", "debug.zarr")
    assert run(["sweep", "submit", local, "--executor", "local", "--wait"], capsys)[0] == 1
    assert run(["sweep", "submit", debug, "--executor", "debug", "--wait"], capsys)[0] == 1
    a = open_sweep(load_sweep(local).store).compute()
    b = open_sweep(load_sweep(debug).store).compute()
    assert list(a.point.values) == list(b.point.values)
    np.testing.assert_array_equal(a["noise"].values, b["noise"].values)
    np.testing.assert_array_equal(a["value"].values, b["value"].values)
    seeds = a["seed"].values
    for row, seed in zip(a["noise"].values, seeds, strict=True):
        np.testing.assert_array_equal(row, np.random.default_rng(seed).standard_normal(5).astype(np.float32))


def test_cancel_local_job_then_resume(tmp_path, capsys):
    text = SWEEP.replace("[params]\nsamples = 5", "[params]\nsamples = 5\nseconds = 3.0")
    path = write(tmp_path, text=text)
    code, out, _ = run(["sweep", "submit", path, "--executor", "local", "--points-per-job", "4"], capsys)
    assert code == 0 and "1 job " in out
    time.sleep(2)
    code, out, _ = run(["sweep", "status", path], capsys)
    assert "running   4" in out
    code, out, _ = run(["sweep", "cancel", path], capsys)
    assert code == 0 and "cancelled 1 job" in out
    deadline = time.time() + 30
    while time.time() < deadline:
        code, out, _ = run(["sweep", "status", path], capsys)
        if "missing   4" in out:
            break
        time.sleep(0.5)
    assert "missing   4" in out and "complete  0" in out
    sweep = load_sweep(path)
    jobs = [json.loads(line) for line in (sweep.store.parent / "cli.jobs" / "submissions.jsonl").open()]
    assert len(jobs) == 1 and jobs[0]["executor"] == "local"
    code, out, _ = run(["sweep", "resume", path, "--executor", "local", "--points-per-job", "4", "--wait"], capsys)
    assert code == 1 and "3/4 complete, 1 failed" in out


def test_cancel_unknown_job_is_bad_input(tmp_path, capsys):
    path = write(tmp_path)
    code, _, err = run(["sweep", "cancel", path, "--job", "123_4"], capsys)
    assert code == 2 and err.startswith("error: --job: 123_4 is not a job of this sweep")


@pytest.mark.parametrize("command", ["status", "collect", "resume"])
def test_commands_on_a_sweep_without_store(tmp_path, capsys, command):
    path = write(tmp_path)
    code, out, err = run(["sweep", command, path], capsys)
    if command == "status":
        assert code == 0 and "missing   4" in out
    else:
        assert code == 2 and ("not a diffbrain result store" in err or "does not exist yet" in err)


def test_slurm_executor_without_slurm_is_bad_input_and_writes_nothing(tmp_path, capsys, monkeypatch):
    path = write(tmp_path)
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))  # no srun, no sbatch
    code, out, err = run(["sweep", "submit", path, "--executor", "slurm"], capsys)
    assert code == 2 and err.startswith("error: resources: SLURM refused the job array"), err
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["sweep.toml"]
