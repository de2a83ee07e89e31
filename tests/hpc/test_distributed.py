"""Several processes per task without SLURM: who a process is (SLURM's variables, with and without srun),
the resources that ask for them, and the runner's rule that only process 0 writes (jax.distributed itself
is not started here: tests/slurm/test_slurm_multiprocess.py runs it on the test cluster)."""

import json

import pytest

from analysis.store import create_store, point_states, read_point_attrs
from diffbrain.errors import UserError
from diffbrain.experiments import get
from hpc import distributed, runner
from hpc.distributed import expand_nodelist, process_group
from hpc.runner import COMPUTED, Pack, PointTask, run_pack
from slurm.backends import get as backend
from slurm.backends.slurm import slurm_parameters
from slurm.resources import Resources
from sweeps.usage import estimate_line

JOB = {"SLURM_JOB_ID": "41", "SLURM_NTASKS": "4", "SLURM_JOB_NODELIST": "gpu[07-08]", "SLURM_PROCID": "0",
       "SLURM_LOCALID": "0"}  # what a batch script sees: the job's variables, no step
STEP = {**JOB, "SLURM_STEP_NODELIST": "gpu[07-08]", "SLURM_STEP_NUM_TASKS": "4", "SLURM_PROCID": "3",
        "SLURM_LOCALID": "1"}  # what srun gives the fourth task


def test_nodelists_expand():
    assert expand_nodelist("vm") == ("vm",)
    assert expand_nodelist("node[01-03,07],gpu5") == ("node01", "node02", "node03", "node07", "gpu5")
    assert expand_nodelist("a,b[9-10]") == ("a", "b9", "b10")


def test_process_group_under_srun():
    group = process_group(STEP)
    assert (group.index, group.count, group.nodes, group.distributed, group.writes) == \
        (3, 4, ("gpu07", "gpu08"), True, False)
    assert group.record() == {"count": 4, "index": 3, "nodes": ["gpu07", "gpu08"], "distributed": True}
    assert process_group({**STEP, "SLURM_PROCID": "0"}).writes


def test_without_srun_it_says_so_and_runs_alone():
    """A job of several tasks whose Python was not started by srun: no step variables, so jax.distributed
    could not find the others; the process runs alone (and writes), and the task log says why."""
    group = process_group(JOB)
    assert not group.distributed and group.writes and group.count == 4
    assert "not started by srun" in group.why and "SLURM_STEP_NODELIST" in group.why
    assert group.record() == {"count": 1, "index": 0, "nodes": ["gpu07", "gpu08"], "distributed": False}
    lines = []
    assert distributed.initialize(group, lines.append) is False
    assert lines == [f"  note: {group.why}"]
    assert not process_group({}).distributed and process_group({}).why == ""  # outside SLURM: nothing to say


def test_resources_map_to_submitit_and_are_checked():
    res = Resources(executor="slurm", nodes=2, tasks_per_node=4, gpus_per_node=4, cpus_per_task=2)
    params = slurm_parameters(res, "n")
    assert (params["nodes"], params["ntasks_per_node"], params["gpus_per_node"]) == (2, 4, 4)
    assert res.processes == 8 and "2 nodes x 4 tasks" in backend("slurm").describe(res)
    one = slurm_parameters(Resources(), "n")
    assert "nodes" not in one and "ntasks_per_node" not in one
    with pytest.raises(UserError, match="resources.tasks_per_node: 1 processes per node for 4 GPUs") as err:
        Resources(nodes=2, gpus_per_node=4)
    assert "give tasks_per_node = 4" in err.value.fix
    Resources(gpus_per_node=4)  # one process with all of a node's GPUs stays allowed
    Resources(tasks_per_node=3)  # CPU processes: any number
    backend("slurm").check(Resources(nodes=2))
    # plan's estimate counts every process's CPUs and every node's GPUs: 4 points of 1 h on 2 x 2 processes
    big = Resources(nodes=2, tasks_per_node=2, gpus_per_node=2, cpus_per_task=3)
    assert estimate_line([(big, 4, 4)], [3600.0], "x").startswith("estimate: 16 GPU-hours, 48 CPU-hours")
    for name in ("local", "debug"):
        with pytest.raises(UserError, match="resources.nodes: the .* executor runs each task as one process"):
            backend(name).check(Resources(nodes=2))


@pytest.fixture()
def store(tmp_path):
    return str(create_store(tmp_path / "s.zarr", {"name": "t", "experiment": "cluster-check"}, {"created": "x"}))


def as_process(monkeypatch, index: int) -> list:
    """This test process as process ``index`` of 2 under srun (jax.distributed not started: recorded)."""
    for key, value in {**STEP, "SLURM_NTASKS": "2", "SLURM_STEP_NUM_TASKS": "2", "SLURM_STEP_NODELIST": "vm",
                       "SLURM_PROCID": str(index)}.items():
        monkeypatch.setenv(key, value)
    calls = []
    monkeypatch.setattr(distributed, "initialize", lambda group, log: calls.append(group.index) or True)
    return calls


def pack(store, tmp_path) -> Pack:
    check = get("cluster-check").validate
    tasks = (PointTask("a", "cluster-check", check({"seed": 1})), PointTask("b", "cluster-check", check({"seed": 2})))
    return Pack(store, str(tmp_path / "s.jobs"), tasks)


def test_process_0_chooses_the_points_and_alone_writes(store, tmp_path, monkeypatch):
    job = pack(store, tmp_path)
    calls = as_process(monkeypatch, 1)
    group = process_group()
    plan = distributed.plan_path(job.work_dir, group, job.point_ids)
    distributed.share_plan(plan, ["b"])  # as process 0 would: "a" is already in the store
    assert run_pack(job) == {"a": "skipped", "b": COMPUTED}
    assert calls == [1] and point_states(store) == {}  # computed, nothing written

    calls = as_process(monkeypatch, 0)
    plan.unlink()
    assert run_pack(job) == {"a": "complete", "b": "complete"} and calls == [0, 0]
    assert json.loads(plan.read_text()) == {"run": ["a", "b"]}
    assert read_point_attrs(store, "b")["processes"] == {"count": 2, "index": 0, "nodes": ["vm"],
                                                         "distributed": True}


def test_another_process_stops_when_its_part_fails(store, tmp_path, monkeypatch):
    """A point that fails on process 1 stops that process (it must not start the next point's collectives
    while process 0 waits in this one's); it writes nothing."""
    check = get("cluster-check").validate
    job = Pack(store, str(tmp_path / "s.jobs"), (PointTask("x", "cluster-check", check({"fail": True})),))
    as_process(monkeypatch, 1)
    distributed.share_plan(distributed.plan_path(job.work_dir, process_group(), job.point_ids), ["x"])
    with pytest.raises(RuntimeError, match="point x failed on process 1 of 2"):
        runner.run_pack(job)
    assert point_states(store) == {}
    [note] = distributed.failures(job.work_dir, process_group(), "x")  # left for process 0's watch
    assert note["process"] == 1 and "cluster-check asked to fail" in note["error"]


def test_process_0_records_a_point_failed_on_another_process_promptly(store, tmp_path, monkeypatch):
    """Process 0, still in the point (here: sleeping 3 s, as if blocked in a collective), sees process 1's
    note within its watch's period, records the point as failed naming process 1, and ends its process."""
    import time

    check = get("cluster-check").validate
    task = PointTask("x", "cluster-check", check({"seconds": 3.0}))
    work_dir = str(tmp_path / "s.jobs")
    as_process(monkeypatch, 0)
    ended = []
    monkeypatch.setattr(distributed, "end_process", lambda code=1: ended.append((code, time.perf_counter())))
    group = process_group()
    distributed.report_failure(work_dir, distributed.ProcessGroup(1, 2, group.nodes, True, "", group.job), "x",
                               "Traceback ...\nRuntimeError: RESOURCE_EXHAUSTED on process 1")
    started = time.perf_counter()
    assert runner.run_point(store, work_dir, task) == "failed"
    assert ended and ended[0][0] == 1 and ended[0][1] - started < 3.0  # before the point's own end
    attrs = read_point_attrs(store, "x")
    assert attrs["status"] == "failed" and attrs["error"].startswith("process 1 of 2 failed while process 0")
    assert "RESOURCE_EXHAUSTED on process 1" in attrs["error"] and attrs["processes"]["count"] == 2


def test_two_real_processes_record_a_failure_on_process_1_promptly_naming_it(tmp_path):
    """Two local processes joined by jax.distributed (srun's variables set by hand): process 1's part of a
    train_step point fails before its collective. Process 0 records the point as failed within its watch's
    period, naming process 1 and its error, and ends (without the watch, measured: a gloo key-value timeout
    after 30 s, 51 s into the point, naming no process)."""
    import random
    import subprocess
    import sys
    import time
    from pathlib import Path

    store = str(create_store(tmp_path / "s.zarr", {"name": "t", "experiment": "cluster-check"}, {"created": "x"}))
    worker, job = Path(__file__).with_name("distributed_worker.py"), str(random.randrange(1, 4096))
    started = time.perf_counter()
    procs = [subprocess.Popen([sys.executable, str(worker), str(i), store, str(tmp_path / "jobs"), job],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for i in (0, 1)]
    logs = [p.communicate(timeout=240)[0] for p in procs]
    assert procs[0].returncode == 1, logs[0][-3000:]  # ended by its watch, out of the collective
    attrs = read_point_attrs(store, "p")
    assert attrs["status"] == "failed" and attrs["error"].startswith("process 1 of 2 failed"), attrs["error"]
    assert "process 1's part failed before its collective" in attrs["error"]
    assert attrs["wall_seconds"] < 20 and time.perf_counter() - started < 120, (attrs["wall_seconds"], logs[0])
