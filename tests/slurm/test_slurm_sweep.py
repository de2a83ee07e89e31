"""A sweep of fit-neuron points on the real local SLURM (tests/cluster): a job array with a GPU array beside
it, a point that fails, a cancelled job, status in every state, resume, and the same points and results
from the local executor; and a task that times out and requeues (cluster-check points that sleep).

The timed-out task needs a 2-minute limit: SLURM sends the USR2 warning 10-40 s before the
`signal_delay_s` mark (tests/cluster/README.md), i.e. 80-110 s into a 2-minute job, and with points that
cannot checkpoint the interrupted point must fit before the earliest signal of the second run. So the
requeue sweep goes first and the main sweep runs on the second CPU meanwhile.
"""

import json
import os
import shutil
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
from cli_runner import run_cli

from analysis import open_sweep
from analysis.store import point_states, read_point_attrs
from slurm import jobs as jobbook
from slurm.resources import jobs_dir_for
from slurm.snapshot import PACKAGES, package_dirs
from sweeps import control
from sweeps.points import expand
from sweeps.spec import load_sweep

pytestmark = pytest.mark.slurm

# The main sweep: tiny fit-neuron points (2 starts, 40 evaluations, 200 ms of one synthetic trace); the
# spike-target point with a coincidence window too wide for the spikes it simulates fails when it runs
# (a missing trace file would be refused by `sweep plan` already).
MAIN = """
name = "main"
experiment = "fit-neuron"
store = "main.zarr"
[params]
starts = 2
budget = 40
n_traces = 1
duration_ms = 200.0
keep_samples = 50
[grid]
seed = [0, 1, 2, 3, 4, 5]
[[zip]]
target = ["potential", "spike"]
delta_ms = [0.0, 500.0]
[[exclude]]
target = "spike"
seed = [1, 2, 3, 4, 5]
[resources]
executor = "slurm"
partition = "{cpu}"
timeout_min = 5
points_per_job = 2
array_parallelism = 1
[[resources.override]]
match = {{ seed = [4, 5] }}
partition = "{gpu}"
gpus_per_node = 1
"""
FAILURE = "delta_ms: a window of 500.0 ms is too wide"
COMPARED = ("loss", "fitted", "start_loss", "fitted_voltage", "target_voltage", "evaluations")

# one task of three points; the last one is interrupted by the time limit and finishes after the requeue
REQUEUE = """
name = "requeue"
experiment = "cluster-check"
store = "requeue.zarr"
[grid]
seconds = [0.0, 55.0, 62.0]
[resources]
executor = "slurm"
partition = "{cpu}"
timeout_min = 2
signal_delay_s = 10
points_per_job = 3
"""
WAIT_S = 420


def run(args, capsys):
    code, out, err = run_cli(args, capsys)
    return code, out + err


def write(folder, name, text, cluster):
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(textwrap.dedent(text.format(cpu=cluster.default_partition, gpu=cluster.gpu_partition)))
    return path


def state_of(path):
    sweep = load_sweep(path)
    return control.sweep_state(sweep, expand(sweep))


def wait_until_done(path, timeout_s=WAIT_S):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        state = state_of(path)
        counts = state.counts()
        if counts[control.RUNNING] + counts[control.PENDING] == 0:
            return state
        time.sleep(2)
    raise TimeoutError(f"{path.name} still running after {timeout_s} s: {dict(state.counts())}")


def test_sweep_on_slurm(slurm_cluster, capsys):
    folder = slurm_cluster.job_folder("sweep")
    requeue = write(folder, "requeue.toml", REQUEUE, slurm_cluster)
    main_file = write(folder, "main.toml", MAIN, slurm_cluster)

    # 1. the requeue sweep first (it takes ~3 minutes), submitted from a copy of the source that is edited at
    # once after submit (as a user edits a checkout while the sweep runs); then the main sweep: two arrays
    source = folder / "source"
    for package in PACKAGES:
        shutil.copytree(package_dirs()[package], source / package, ignore=shutil.ignore_patterns("__pycache__"))
    done = subprocess.run([sys.executable, "-c", "from sweeps.cli import main; main()", "sweep", "submit",
                           str(requeue)], capture_output=True, text=True, timeout=120, cwd=folder,
                          env={**os.environ, "PYTHONPATH": str(source), "PYTHONSAFEPATH": "1"})
    assert done.returncode == 0 and "submitted 3 of 3 points to slurm" in done.stdout, done.stdout + done.stderr
    runner = source / "hpc" / "runner.py"
    runner.write_text(runner.read_text().replace('starts")', 'starts, edited after submit")'))
    code, out = run(["sweep", "submit", main_file], capsys)
    assert code == 0 and "submitted 7 of 7 points to slurm" in out, out
    sweep = load_sweep(main_file)
    points = {p.point_id: p for p in expand(sweep)}
    cpu_sub, gpu_sub = jobbook.load(jobs_dir_for(sweep.store))
    assert cpu_sub.resources["partition"] == slurm_cluster.default_partition and len(cpu_sub.jobs) == 3
    assert gpu_sub.resources["partition"] == slurm_cluster.gpu_partition and gpu_sub.resources["gpus_per_node"] == 1
    assert len(cpu_sub.array_ids) == 1 and cpu_sub.jobs[1].job_id == f"{cpu_sub.array_ids[0]}_1"

    # 2. cancel one job of the cpu array while it waits (array_parallelism = 1)
    cancelled = cpu_sub.jobs[1]
    code, out = run(["sweep", "cancel", main_file, "--job", cancelled.job_id], capsys)
    assert code == 0 and f"cancelled 1 job: {cancelled.job_id}" in out, out

    # 3. status while it runs: the cancelled points are missing at once; something runs and something waits
    seen = set()
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline and not {control.RUNNING, control.PENDING} <= seen:
        state = state_of(main_file)
        counts = state.counts()
        assert counts[control.MISSING] == 2 and sum(counts.values()) == 7, counts
        assert set(state.ids(control.MISSING)) == set(cancelled.points)
        seen |= {s for s in (control.RUNNING, control.PENDING) if counts[s]}
        time.sleep(0.5)
    assert {control.RUNNING, control.PENDING} <= seen
    code, out = run(["sweep", "status", main_file], capsys)
    assert code == 0 and "missing   2" in out and "sacct unavailable" not in out, out

    # 4. after the run: 4 complete, 1 failed (with its error), 2 missing; status shows each
    state = wait_until_done(main_file)
    assert dict(state.counts()) == {"complete": 4, "failed": 1, "missing": 2}
    code, out = run(["sweep", "status", main_file], capsys)
    assert "complete  4" in out and "failed    1" in out and "missing   2" in out
    assert FAILURE in out
    for pid in gpu_sub.jobs[0].points:  # the GPU array ran on the gpu partition with one GPU
        attrs = read_point_attrs(sweep.store, pid)
        assert attrs["job_id"] == gpu_sub.jobs[0].job_id and len(attrs["gpus"]) == 1
    slurm_cluster.wait_for_sacct(gpu_sub.jobs[0].job_id)  # accounting lags the job that wrote the store
    gpu_partition = subprocess.run(["sacct", "-X", "-n", "-P", "-o", "Partition", "-j", gpu_sub.jobs[0].job_id],
                                   capture_output=True, text=True, timeout=30).stdout.split()
    assert gpu_partition == [slurm_cluster.gpu_partition]

    # 5. resume: only the two cancelled points run; nothing complete is rerun; the failed point stays failed
    before = {pid: read_point_attrs(sweep.store, pid) for pid in state.ids(control.COMPLETE, control.FAILED)}
    code, out = run(["sweep", "resume", main_file, "--wait"], capsys)
    assert code == 1 and "submitted 2 of 7 points" in out, out  # exit 1: the failed point
    state = state_of(main_file)
    assert dict(state.counts()) == {"complete": 6, "failed": 1}
    for pid, attrs in before.items():
        assert read_point_attrs(sweep.store, pid)["started"] == attrs["started"]
    stored = point_states(sweep.store)
    assert sorted(stored) == sorted(points)  # every point once, nothing else

    # 6. the same sweep on the local executor: the same point ids and the same results
    local_dir = folder / "local"
    local_file = local_dir / "main.toml"
    local_dir.mkdir()
    shutil.copy(main_file, local_file)
    code, out = run(["sweep", "submit", local_file, "--executor", "local", "--wait"], capsys)
    assert code == 1 and "6/7 complete, 1 failed" in out, out
    on_slurm = open_sweep(sweep.store).compute()
    local = open_sweep(load_sweep(local_file).store).compute()
    assert list(on_slurm.point.values) == list(local.point.values)
    for name in COMPARED:
        np.testing.assert_array_equal(on_slurm[name].values, local[name].values)

    # 7. the timed-out task was requeued once; its second run skipped the two points already stored
    state = wait_until_done(requeue)
    assert dict(state.counts()) == {"complete": 3}, dict(state.counts())
    rq = load_sweep(requeue)
    by_seconds = {p.params["seconds"]: read_point_attrs(rq.store, p.point_id) for p in expand(rq)}
    assert [by_seconds[s]["restart_count"] for s in (0.0, 55.0, 62.0)] == [0, 0, 1]
    (sub,) = jobbook.load(jobs_dir_for(rq.store))
    (job,) = sub.jobs
    assert {a["job_id"] for a in by_seconds.values()} == {job.job_id}
    # the requeued run imported the code frozen at submit, not the source tree (slurm.snapshot)
    frozen = {"snapshot": sub.code["digest"], "path": sub.code["path"]}
    assert sub.code["path"].startswith(str(jobs_dir_for(rq.store) / "code"))
    assert all(a["code"] == frozen for a in by_seconds.values()), [a["code"] for a in by_seconds.values()]
    log = next((folder / "requeue.jobs").rglob(f"{job.job_id}_0_log.out")).read_text()
    assert log.count("already in the store: skipped") == 2 and log.count("cluster-check starts") == 4
    assert "edited after submit" not in log  # the edit to the submitting source never reached a task
    assert all(a["code"]["path"] != str(source) for a in by_seconds.values())
    assert "Requeued" in log + next((folder / "requeue.jobs").rglob(f"{job.job_id}_0_log.err")).read_text()
    accounting = json.dumps(slurm_cluster.wait_for_sacct(job.job_id))
    assert "COMPLETED" in accounting


def test_partition_slurm_refuses_is_bad_input(slurm_cluster, capsys):
    folder = slurm_cluster.job_folder("bad-partition")
    path = write(folder / "s", "main.toml", MAIN, slurm_cluster)
    code, out = run(["sweep", "submit", path, "--partition", "no-such-partition"], capsys)
    assert code == 2 and "error: resources: SLURM refused the job array" in out, out
    assert "partition" in out.lower()
    assert sorted(p.name for p in (folder / "s").iterdir()) == ["main.toml"]  # nothing half-written
