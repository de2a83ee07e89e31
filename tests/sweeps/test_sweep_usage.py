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
    assert "(scheduler accounting: the debug executor keeps no scheduler accounting;" in out

    # report: the same section, from the store and the submissions recorded beside it
    code, report_out, err = run_cli(["report", sweep.store, "--out", tmp_path / "report", "--html"], capsys)
    assert code == 0, report_out + err
    summary = (tmp_path / "report" / "summary.md").read_text()
    section = summary.split("## Usage")[1]
    for line in out.split("usage (")[1].splitlines()[1:]:
        if line.strip().startswith(("group", "CPU-hours", "GPU-hours", "memory", "failures")):
            assert line.split(": ")[-1] in section, line
    assert "3 of 3 points ran in 2 jobs (2 complete, 1 failed)" in section
    assert "group 2:" in section and "Usage" in (tmp_path / "report" / "report.html").read_text()

    # plan of more seeds: the estimate from the three complete points' mean wall time
    code, out, err = run_cli(["sweep", "plan", path, "--set", "seed=0,1,2,3,4"], capsys)
    complete = [a["wall_seconds"] for _, a in records.values() if a["status"] == "complete"]
    mean = sum(complete) / len(complete)
    todo_gpu = 4  # seeds 3 and 4, with and without fail; all in the 2-GPU group
    assert (f"estimate: {todo_gpu * mean * 2 / 3600:.3g} GPU-hours, {todo_gpu * mean * 3 / 3600:.3g} CPU-hours "
            f"for 4 points (mean {mean:.3g} s per point over 3 complete points of cluster-check") in out, out


SACCT = """\
41_0|65|00:03.250|2|billing=2,cpu=2,gres/gpu=1,mem=1G,node=1||COMPLETED
41_0.batch|65|00:03.200|2|cpu=2,gres/gpu=1,mem=1G,node=1|120340K|COMPLETED
41_0.extern|65|00:00.050|2|billing=2,cpu=2,gres/gpu=1,mem=1G,node=1|900K|COMPLETED
41_1|3700||1|billing=1,cpu=1,gres/gpu:a100=2,mem=1G,node=1||TIMEOUT
41_1.batch|3700|1-01:00:02|1|cpu=1,mem=1G,node=1|1.5G|CANCELLED by 0
41_[2-4]|0|00:00:00|0|billing=1,cpu=1,mem=1G,node=1||PENDING
"""


def test_sacct_usage_is_parsed():
    from slurm.backends.slurm import parse_usage

    uses = parse_usage(SACCT)
    assert set(uses) == {"41_0", "41_1"}  # pending, unexpanded tasks have no usage yet
    first, second = uses["41_0"], uses["41_1"]
    assert (first.elapsed_s, first.alloc_cpus, first.alloc_gpus, first.cpu_s) == (65.0, 2, 1, 3.25)
    assert first.max_rss_bytes == 120340 * 1024 and first.state == "COMPLETED"
    # no CPU time on the allocation line: its steps' sum; typed GPUs counted
    assert (second.alloc_gpus, second.cpu_s, second.max_rss_bytes) == (2, 86400 + 3602.0, int(1.5 * 2**30))


def test_usage_lines_with_the_schedulers_accounting():
    from slurm.backends.slurm import parse_usage
    from slurm.resources import Resources
    from sweeps.usage import GroupUsage, usage_lines

    group = GroupUsage(Resources(gpus_per_node=1, cpus_per_task=2), points=2, complete=2, wall_s=100.0, gpu_s=50.0,
                       job_ids={"41_0", "41_1", "41_9"})
    lines = "\n".join(usage_lines([group], str, parse_usage(SACCT)))
    held = (65 * 2 + 3700 * 1) / 3600
    assert f"sacct      2 of 3 jobs: CPU-hours held {held:.4g} (elapsed x allocated CPUs)" in lines
    assert f"CPU time used {(3.25 + 90002) / 3600:.4g} h" in lines
    assert f"GPU-hours held {(65 + 3700 * 2) / 3600:.4g}" in lines
    assert f"memory peak {1.5 * 2**30 / 1e9:.3g} GB" in lines
