"""``sweep status --usage`` sums the store's per-point records per resources group; ``sweep plan`` estimates
the GPU-hours of what it would submit from the store's complete points (or says it has no basis)."""

import textwrap

from cli_runner import run_cli
from sweep_texts import cluster_check_sweep

from analysis.store import read_point_attrs
from sweeps.points import expand
from sweeps.spec import load_sweep

SWEEP = cluster_check_sweep("use", "use.zarr", 1.0) + """
[resources]
executor = "debug"
timeout_min = 2
gpus_per_node = 2
cpus_per_task = 3
mem_gb = 4
points_per_job = 2
[[resources.override]]
match = {{ seed = [2] }}
gpus_per_node = 0
timeout_min = 1
"""


def test_usage_matches_the_store_records(tmp_path, capsys, monkeypatch):
    path = tmp_path / "s.toml"
    path.write_text(textwrap.dedent(SWEEP.format()))
    code, out, err = run_cli(["sweep", "plan", path], capsys)
    assert code == 0 and "estimate: no basis yet (the store holds no complete point of cluster-check)" in out
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")  # the debug executor runs the points in this process
    code, out, err = run_cli(["sweep", "submit", path], capsys)
    assert code == 0, out + err
    sweep = load_sweep(path)
    records = {p.point_id: (p.params, read_point_attrs(sweep.store, p.point_id)) for p in expand(sweep)}
    gpu_group = [a for params, a in records.values() if params["seed"] != 2]  # 3 points, one failed
    cpu_group = [a for params, a in records.values() if params["seed"] == 2]
    assert len(gpu_group) == 3 and len(cpu_group) == 1 and all(a["gpus"] == ["0", "1"] for a in gpu_group)

    code, out, err = run_cli(["sweep", "status", path, "--usage"], capsys)
    assert code == 0, out + err
    usage = out.split("usage (")[1]
    first, second = usage.split("  group 2:")
    wall = sum(a["wall_seconds"] for a in gpu_group)
    failed = [a for a in gpu_group if a["status"] == "failed"]
    assert "3 of 3 points ran in 2 jobs (2 complete, 1 failed)" in first
    assert f"CPU-hours  requested {2 * 2 / 60 * 3:.4g}  used {wall / 3600 * 3:.4g}  " in first
    assert f"GPU-hours  requested {2 * 2 / 60 * 2:.4g}  used {wall * 2 / 3600:.4g}  " in first
    peak = max(a["peak_rss_bytes"] for a in gpu_group) / 1e9
    assert f"memory     requested 4 GB  peak {peak:.3g} GB" in first and f"efficiency {peak / 4:.0%}" in first
    assert (f"failures   cost {failed[0]['wall_seconds'] / 3600 * 3:.4g} CPU-hours, "
            f"{failed[0]['wall_seconds'] * 2 / 3600:.4g} GPU-hours (1 point)") in first
    cpu_wall = cpu_group[0]["wall_seconds"]
    assert "1 of 1 points ran in 1 jobs (1 complete, 0 failed)" in second
    assert f"CPU-hours  requested {1 / 60 * 3:.4g}  used {cpu_wall / 3600 * 3:.4g}  " in second
    assert f"GPU-hours  requested 0  used {cpu_wall * 2 / 3600:.4g}" in second  # it saw GPUs it did not ask for

    # plan of more seeds: the estimate from the three complete points' mean wall time
    code, out, err = run_cli(["sweep", "plan", path, "--set", "seed=0,1,2,3,4"], capsys)
    complete = [a["wall_seconds"] for _, a in records.values() if a["status"] == "complete"]
    mean = sum(complete) / len(complete)
    todo_gpu = 4  # seeds 3 and 4, with and without fail; all in the 2-GPU group
    assert (f"estimate: {todo_gpu * mean * 2 / 3600:.3g} GPU-hours, {todo_gpu * mean * 3 / 3600:.3g} CPU-hours "
            f"for 4 points (mean {mean:.3g} s per point over 3 complete points of cluster-check") in out, out
