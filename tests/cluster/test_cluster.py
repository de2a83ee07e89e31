"""The local SLURM does what the toolkit needs: sbatch on both partitions, fake GPUs, accounting, and submitit
results, arrays, cancellation and timeout-requeue of a Checkpointable.

The timeout-requeue job takes about a minute, so a module fixture submits it before the first test and the
last test collects it; the other jobs run meanwhile on the second CPU.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import cloudpickle
import pytest
import submitit
from submitit.core.utils import UncompletedJobError

from cluster.fixture import SlurmCluster, run_slurm_command

pytestmark = pytest.mark.slurm

# Jobs unpickle the callables below in a fresh interpreter that cannot import this test module
# (pytest put tests/ on sys.path, not the job): ship this module's functions and classes by value.
cloudpickle.register_pickle_by_value(sys.modules[__name__])

JOB_WAIT_S = 240  # generous: other sessions may share the cluster's two CPUs


def executor(cluster: SlurmCluster, name: str, **parameters: object) -> submitit.AutoExecutor:
    """A submitit executor on the local cluster, logs under a fresh folder, short time limit by default."""
    ex = submitit.AutoExecutor(folder=cluster.job_folder(name) / "%j", cluster="slurm")
    ex.update_parameters(timeout_min=5, slurm_partition=cluster.default_partition, cpus_per_task=1)
    ex.update_parameters(**parameters)
    return ex


def sbatch(folder: Path, *options: str, script: str) -> str:
    """Submit a shell snippet with sbatch; return the job id."""
    out = run_slurm_command(
        ["sbatch", "--parsable", f"--output={folder}/%j.out", *options, f"--wrap={script}"], timeout_s=30
    )
    return out.strip().split(";")[0]


def wait_until(predicate, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not reached after {timeout_s:.0f} s")
        time.sleep(0.5)


# --- callables run inside jobs ---------------------------------------------------------------------------------


def sum_of_squares(n: int) -> dict[str, object]:
    """A known value plus where and how it ran."""
    return {
        "value": sum(i * i for i in range(n + 1)),
        "host": socket.gethostname(),
        "job_id": os.environ.get("SLURM_JOB_ID"),
        "array_job": os.environ.get("SLURM_ARRAY_JOB_ID"),
        "array_task": os.environ.get("SLURM_ARRAY_TASK_ID"),
        "partition": os.environ.get("SLURM_JOB_PARTITION"),
        "gpus": os.environ.get("SLURM_JOB_GPUS"),
        "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
        "python": sys.executable,
    }


def sleep_then_return(seconds: float) -> str:
    time.sleep(seconds)
    return "not cancelled"


class TimesOutOnce(submitit.helpers.Checkpointable):
    """First run: sleeps past its 1-minute limit; after the requeue (with this state), returns at once."""

    def __init__(self) -> None:
        self.runs: list[dict[str, str | None]] = []

    def __call__(self, sleep_s: float) -> list[dict[str, str | None]]:
        self.runs.append(
            {"job_id": os.environ.get("SLURM_JOB_ID"), "restart_count": os.environ.get("SLURM_RESTART_COUNT"),
             "started": str(time.time())}
        )
        if len(self.runs) == 1:
            time.sleep(sleep_s)  # interrupted by USR2 before the time limit; checkpoint() pickles self.runs
            raise AssertionError("the first run was not interrupted by the timeout signal")
        return self.runs

    def checkpoint(self, *args: object, **kwargs: object) -> submitit.helpers.DelayedSubmission:
        """Called by submitit's USR2 handler: note when, then requeue with this state."""
        self.runs[-1]["checkpointed"] = str(time.time())
        return super().checkpoint(*args, **kwargs)


# --- the long job, submitted first ------------------------------------------------------------------------------


@pytest.fixture(scope="module", autouse=True)
def requeue_job(slurm_cluster: SlurmCluster):
    """A Checkpointable with timeout_min=1 that sleeps 5 minutes: it must time out, requeue and then finish."""
    ex = executor(
        slurm_cluster, "requeue", timeout_min=1, slurm_signal_delay_s=10, slurm_additional_parameters={"requeue": True}
    )
    submitted = time.time()
    job = ex.submit(TimesOutOnce(), 300)
    yield job, submitted
    if not job.done():
        job.cancel(check=False)


# --- tests -----------------------------------------------------------------------------------------------------------


def test_fixture_describes_the_running_cluster(slurm_cluster: SlurmCluster) -> None:
    assert slurm_cluster.partitions == ("cpu", "gpu")
    assert slurm_cluster.default_partition == "cpu" and slurm_cluster.gpu_partition == "gpu"
    assert slurm_cluster.hostname == socket.gethostname().split(".")[0]
    assert slurm_cluster.cpus == os.cpu_count()
    assert slurm_cluster.gpus_per_node == 2
    assert slurm_cluster.submitit_dir.is_dir() and slurm_cluster.submitit_dir.parent == slurm_cluster.scratch_dir
    partitions = run_slurm_command(["sinfo", "-h", "-o", "%P|%D|%G"]).split()
    assert sorted(partitions) == ["cpu*|1|gpu:fake:2", "gpu|1|gpu:fake:2"]
    node = run_slurm_command(["scontrol", "show", "node", slurm_cluster.hostname])
    assert f"CPUTot={slurm_cluster.cpus}" in node and "Gres=gpu:fake:2" in node


def test_sbatch_on_both_partitions_sees_fake_gpus_and_sacct_reports_states(slurm_cluster: SlurmCluster) -> None:
    folder = slurm_cluster.job_folder("sbatch")
    show = 'echo "$SLURM_JOB_PARTITION|$(hostname -s)|${SLURM_JOB_GPUS-none}|${CUDA_VISIBLE_DEVICES-none}"'
    cpu_job = sbatch(folder, "--partition=cpu", script=show)
    one_gpu = sbatch(folder, "--partition=gpu", "--gres=gpu:1", script=show)
    two_gpus = sbatch(folder, "--partition=gpu", "--gres=gpu:2", script=show)
    failing = sbatch(folder, "--partition=cpu", script="exit 3")
    # a third GPU does not exist: the request is refused at submission
    refused = subprocess.run(
        ["sbatch", "--partition=gpu", "--gres=gpu:3", "--wrap=true"], capture_output=True, text=True, timeout=30
    )
    assert refused.returncode != 0 and "configuration is not available" in refused.stderr

    for job in (cpu_job, one_gpu, two_gpus, failing):
        slurm_cluster.wait_for_sacct(job, timeout_s=JOB_WAIT_S)
    lines = {job: (folder / f"{job}.out").read_text().strip() for job in (cpu_job, one_gpu, two_gpus)}
    host = slurm_cluster.hostname
    assert lines[cpu_job] == f"cpu|{host}|none|none"
    partition, job_host, gpus, visible = lines[one_gpu].split("|")
    assert (partition, job_host) == ("gpu", host)
    assert gpus in {"0", "1"} and visible == gpus  # one of the two fake GPUs, and CUDA sees that one
    assert lines[two_gpus] == f"gpu|{host}|0,1|0,1"

    # a record can show its final state a moment before its partition and TRES are filled in: poll for them
    rows: dict[str, list[str]] = {}

    def accounted() -> bool:
        out = run_slurm_command(
            ["sacct", "-X", "-n", "-P", "-o", "JobID,Partition,State,ExitCode,AllocTRES",
             "-j", ",".join((cpu_job, one_gpu, two_gpus, failing))]
        )
        rows.update({row.split("|")[0]: row.split("|")[1:] for row in out.splitlines()})
        return len(rows) == 4 and all(row[0] and row[3] for row in rows.values())

    wait_until(accounted, 60, "complete sacct records")
    assert rows[cpu_job][:3] == ["cpu", "COMPLETED", "0:0"] and "gres/gpu" not in rows[cpu_job][3]
    assert rows[one_gpu][:3] == ["gpu", "COMPLETED", "0:0"] and "gres/gpu=1" in rows[one_gpu][3]
    assert rows[two_gpus][:3] == ["gpu", "COMPLETED", "0:0"] and "gres/gpu=2" in rows[two_gpus][3]
    assert rows[failing][:3] == ["cpu", "FAILED", "3:0"]


def test_submitit_job_returns_its_result(slurm_cluster: SlurmCluster) -> None:
    cpu = executor(slurm_cluster, "result").submit(sum_of_squares, 10)
    gpu = executor(slurm_cluster, "result-gpu", slurm_partition="gpu", slurm_gres="gpu:1").submit(sum_of_squares, 3)
    on_cpu, on_gpu = cpu.result(), gpu.result()
    assert on_cpu["value"] == 385 and on_gpu["value"] == 14
    assert on_cpu["job_id"] == cpu.job_id and on_cpu["partition"] == "cpu" and on_cpu["gpus"] is None
    assert on_gpu["partition"] == "gpu" and on_gpu["gpus"] in {"0", "1"}
    assert on_cpu["host"].split(".")[0] == slurm_cluster.hostname
    assert on_cpu["python"] == sys.executable  # the job runs this virtualenv's interpreter
    assert slurm_cluster.wait_for_sacct(cpu.job_id) == {cpu.job_id: "COMPLETED"}
    assert cpu.get_info()["State"] == "COMPLETED"  # what submitit itself reads from sacct


def test_submitit_job_array_respects_parallelism(slurm_cluster: SlurmCluster) -> None:
    ex = executor(slurm_cluster, "array", slurm_array_parallelism=2)
    sizes = [1, 2, 3]  # the test cluster's MaxArraySize is 3
    jobs = ex.map_array(sum_of_squares, sizes)
    array_id = jobs[0].job_id.split("_")[0]
    assert [job.job_id for job in jobs] == [f"{array_id}_{i}" for i in range(len(sizes))]
    throttle = run_slurm_command(["scontrol", "show", "job", array_id])
    assert "ArrayTaskThrottle=2" in throttle
    results = [job.result() for job in jobs]
    assert [r["value"] for r in results] == [1, 5, 14]
    assert [r["array_task"] for r in results] == [str(i) for i in range(len(sizes))]
    assert {r["array_job"] for r in results} == {array_id}
    assert len({r["job_id"] for r in results}) == len(sizes)  # each task has its own SLURM_JOB_ID
    expected = {job.job_id: "COMPLETED" for job in jobs}
    seen: list[dict[str, str]] = []  # accounting may list a task a moment after the others
    try:
        wait_until(lambda: seen.append(slurm_cluster.sacct_states(array_id)) or seen[-1] == expected, 60, "sacct")
    except TimeoutError:
        pytest.fail(f"sacct of array {array_id}: {seen[-1]}, expected {expected}")


def test_cancelled_job_reports_cancelled_and_result_raises(slurm_cluster: SlurmCluster) -> None:
    job = executor(slurm_cluster, "cancel").submit(sleep_then_return, 600)
    wait_until(lambda: job.get_info().get("State") == "RUNNING", JOB_WAIT_S, f"job {job.job_id} RUNNING")
    job.cancel()
    assert slurm_cluster.wait_for_sacct(job.job_id) == {job.job_id: "CANCELLED"}

    outcome: dict[str, BaseException | object] = {}

    def collect() -> None:
        try:
            outcome["result"] = job.result()
        except BaseException as error:  # noqa: BLE001 - the test inspects it
            outcome["error"] = error

    waiter = threading.Thread(target=collect, daemon=True)
    waiter.start()
    waiter.join(timeout=120)
    assert not waiter.is_alive(), "result() of a cancelled job hangs"
    assert isinstance(outcome.get("error"), UncompletedJobError)
    assert job.get_info()["State"].startswith("CANCELLED")


def test_checkpointable_job_times_out_requeues_and_finishes(slurm_cluster: SlurmCluster, requeue_job) -> None:
    job, submitted = requeue_job
    runs = job.result()
    elapsed = time.time() - submitted
    assert len(runs) == 2
    first, second = runs
    assert first["job_id"] == second["job_id"] == job.job_id  # requeued, not resubmitted under a new id
    assert first["restart_count"] is None and second["restart_count"] == "1"
    # USR2 came within the 1-minute limit (up to ~30 s earlier than signal_delay_s asks), the checkpoint was
    # taken then, and the requeued job could start again only after cred_expire (10 s)
    warned_after = float(first["checkpointed"]) - float(first["started"])
    restarted_after = float(second["started"]) - float(first["checkpointed"])
    assert 0 < warned_after < 60, warned_after
    assert restarted_after > 5, restarted_after
    histories: list[list[str]] = []  # accounting may still say RUNNING a moment after result() returns

    def accounted_complete() -> bool:
        cmd = ["sacct", "-j", job.job_id, "-X", "-D", "-n", "-P", "-o", "State"]
        histories.append(run_slurm_command(cmd).split())
        return bool(histories[-1]) and histories[-1][-1] == "COMPLETED"

    try:
        wait_until(accounted_complete, 60, "sacct COMPLETED")
    except TimeoutError:
        pytest.fail(f"sacct history of job {job.job_id}: {histories[-1]}, expected REQUEUED then COMPLETED")
    assert "REQUEUED" in histories[-1][:-1], histories[-1]
    log = Path(job.paths.stdout).read_text()  # both runs append to the same log
    assert "this job is timed-out" in log and f"Requeued job {job.job_id}" in log
    assert log.count("Starting with JobEnvironment") == 2
    print(f"requeue round trip: {elapsed:.0f} s from submission; USR2 {warned_after:.0f} s after the start; "
          f"restart {restarted_after:.0f} s after the checkpoint")
