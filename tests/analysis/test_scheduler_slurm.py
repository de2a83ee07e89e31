"""The dask path on workers started as SLURM jobs through dask-jobqueue (the one-node test cluster)."""

import subprocess
import time

import pytest
from test_spikes import check as check_spikes
from test_spikes import two_point_sweep
from test_weights import check_points as check_weights
from test_weights import sweep as weight_sweep

from analysis.scheduler import SchedulerOptions, dask_client, workers_of
from analysis.spikes import spike_statistics
from analysis.weights import weight_statistics

pytestmark = pytest.mark.slurm
JOB_NAME = "diffbrain-report"


def our_jobs() -> list[str]:
    result = subprocess.run(["squeue", "-h", "-n", JOB_NAME, "-o", "%i %T"], capture_output=True, text=True,
                            check=True, timeout=30)
    return [line for line in result.stdout.splitlines() if line.strip()]


def test_statistics_on_dask_jobqueue_workers_match_and_jobs_are_cancelled(slurm_cluster):
    options = SchedulerOptions(workers=1, cores=1, memory="1GiB", walltime="00:10:00",
                               queue=slurm_cluster.default_partition,
                               log_directory=str(slurm_cluster.job_folder("dask-report")), wait_seconds=180)
    messages = []
    with dask_client("slurm", options, status=messages.append) as client:
        assert "SLURM jobs" in messages[-1]
        assert len(workers_of(client)) == 1
        assert len(our_jobs()) == 1
        spikes = client.compute(spike_statistics(two_point_sweep().chunk({"point": 1}), bin_ms=20.0))
        check_spikes(spikes.result())
        check_weights(weight_statistics(weight_sweep().chunk({"point": 1})).compute())  # default scheduler
        hosts = client.run(lambda: __import__("os").environ.get("SLURM_JOB_ID"))
        assert all(hosts.values()), hosts  # the work ran inside SLURM jobs
    deadline = time.monotonic() + 60
    while our_jobs() and time.monotonic() < deadline:
        time.sleep(1)
    assert our_jobs() == []  # what we started is gone
