"""Arrays beyond MaxArraySize are split into several arrays, one after the other, recorded as one submission
that status and cancel treat as one; on the real local SLURM (tests/cluster)."""

import subprocess
import textwrap
import time

import pytest
from cli_runner import run_cli

import slurm.backends.slurm as slurm_backend
from analysis.store import read_point_attrs
from slurm import jobs as jobbook
from slurm.resources import jobs_dir_for
from sweeps.spec import load_sweep

SWEEP = """
name = "{name}"
experiment = "cluster-check"
store = "{name}.zarr"
[params]
seconds = {seconds}
[grid]
seed = [0, 1, 2, 3, 4]
[resources]
executor = "slurm"
partition = "{partition}"
timeout_min = 5
array_parallelism = 2
"""


def test_array_chunks():
    assert slurm_backend.array_chunks(5, 2) == [range(0, 2), range(2, 4), range(4, 5)]
    assert slurm_backend.array_chunks(3, 1001) == [range(0, 3)]
    assert slurm_backend.array_chunks(0, 4) == []


def test_lower_limit_from_the_environment(monkeypatch):
    monkeypatch.setattr(slurm_backend, "_cluster_max_array_size", lambda: (1001, "the cluster's MaxArraySize"))
    monkeypatch.setenv(slurm_backend.MAX_ARRAY_ENV, "40")
    assert slurm_backend.max_array_size() == (40, "$DIFFBRAIN_MAX_ARRAY_SIZE")
    monkeypatch.setenv(slurm_backend.MAX_ARRAY_ENV, "5000")  # never above the cluster's
    assert slurm_backend.max_array_size() == (1001, "the cluster's MaxArraySize")


@pytest.mark.slurm
@pytest.mark.slow
def test_split_arrays_run_as_one_submission(slurm_cluster, tmp_path, capsys, monkeypatch):
    slurm_backend._cluster_max_array_size.cache_clear()
    monkeypatch.delenv(slurm_backend.MAX_ARRAY_ENV, raising=False)
    configured = subprocess.run(["scontrol", "show", "config"], capture_output=True, text=True, timeout=30).stdout
    limit = next(int(line.split("=")[1]) for line in configured.splitlines() if line.startswith("MaxArraySize"))
    # the test cluster is configured with MaxArraySize = 3 (tests/cluster/slurm-up.sh): 5 tasks -> 3 + 2
    assert limit == 3 and slurm_backend.max_array_size() == (3, "the cluster's MaxArraySize"), configured
    folder = slurm_cluster.job_folder("split")
    paths = {}
    for name, seconds in (("split", 0.0), ("cancelled", 60.0)):
        paths[name] = folder / f"{name}.toml"
        paths[name].write_text(textwrap.dedent(SWEEP.format(name=name, seconds=seconds,
                                                            partition=slurm_cluster.default_partition)))
    code, out, err = run_cli(["sweep", "plan", paths["split"], "--script"], capsys)
    assert code == 0 and "split into 2 arrays, one after the other" in out and out.count("# ---- array 1.") == 2

    # a split sweep cancelled at once: one recorded submission, every array of it cancelled
    code, out, err = run_cli(["sweep", "submit", paths["cancelled"]], capsys)
    assert code == 0 and "submitted 5 of 5 points to slurm" in out, out + err
    (sub,) = jobbook.load(jobs_dir_for(load_sweep(paths["cancelled"]).store))
    assert len(sub.array_ids) == 2 and len(sub.jobs) == 5
    code, out, err = run_cli(["sweep", "cancel", paths["cancelled"]], capsys)
    assert code == 0 and "cancelled 5 jobs" in out, out + err
    for array_id in sub.array_ids:
        states = slurm_cluster.wait_for_sacct(array_id, timeout_s=120)
        assert set(states.values()) == {"CANCELLED"}, states

    # a split sweep that runs: two arrays, one after the other, all five points complete
    started = time.monotonic()
    code, out, err = run_cli(["sweep", "submit", paths["split"], "--wait"], capsys)
    assert code == 0 and "5/5 complete, 0 failed" in out, out + err
    (sub,) = jobbook.load(jobs_dir_for(load_sweep(paths["split"]).store))
    first, second = sorted(sub.array_ids, key=int)
    assert [len([j for j in sub.jobs if j.job_id.split("_")[0] == a]) for a in (first, second)] == [3, 2]
    # accounting lags the jobs (slurmctld queues each job's end for slurmdbd): wait until sacct has all five
    for array_id, tasks in ((first, 3), (second, 2)):
        slurm_cluster.wait_for_sacct(array_id, allocations=tasks)
    accounting = subprocess.run(["sacct", "-X", "-n", "-P", "-o", "JobID,Start,End", "-j", f"{first},{second}"],
                                capture_output=True, text=True, timeout=30).stdout
    times: dict[str, list[tuple[str, str]]] = {}
    for line in accounting.split():
        job_id, start, end = line.split("|")
        times.setdefault(job_id.split("_")[0], []).append((start, end))
    for before, after in ((first, second),):  # the second array waits for the first
        assert max(end for _, end in times[before]) <= min(start for start, _ in times[after]), times
    code, out, err = run_cli(["sweep", "status", paths["split"]], capsys)
    assert code == 0 and "complete  5" in out and "missing   0" in out, out
    sweep = load_sweep(paths["split"])
    frozen = {"snapshot": sub.code["digest"], "path": sub.code["path"]}  # one code snapshot for both arrays
    assert all(read_point_attrs(sweep.store, j.points[0])["code"] == frozen for j in sub.jobs)
    print(f"split sweep ran in {time.monotonic() - started:.0f} s")

    # --usage refined by sacct: what the five array tasks held, as sacct itself reports it
    code, out, err = run_cli(["sweep", "status", paths["split"], "--usage"], capsys)
    assert code == 0, out + err
    rows = subprocess.run(["sacct", "-X", "-n", "-P", "-o", "JobID,ElapsedRaw,AllocCPUS", "-j", f"{first},{second}"],
                          capture_output=True, text=True, timeout=30).stdout.split()
    held = sum(int(r.split("|")[1]) * int(r.split("|")[2]) for r in rows) / 3600
    assert f"sacct      5 of 5 jobs: CPU-hours held {held:.4g} (elapsed x allocated CPUs)" in out, out
