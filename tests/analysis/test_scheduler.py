"""The dask path: the same numbers on a LocalCluster and through a scheduler address; bad --scheduler values."""

import numpy as np
import pytest
from test_fits import GRID, fit_sweep
from test_scaling import scaling_sweep
from test_spikes import check as check_spikes
from test_spikes import two_point_sweep
from test_weights import check_points as check_weights
from test_weights import sweep as weight_sweep

from analysis.fits import loss_vs_time_by_group
from analysis.scaling import scaling_table
from analysis.scheduler import SchedulerError, SchedulerOptions, dask_client, parse_scheduler, workers_of
from analysis.spikes import spike_statistics
from analysis.weights import weight_statistics


@pytest.fixture(scope="module")
def local_client():
    """One LocalCluster for the module, with worker processes as `--scheduler local` starts it."""
    messages = []
    with dask_client("local", SchedulerOptions(workers=2, processes=True), status=messages.append) as client:
        assert "local dask cluster" in messages[0]
        yield client
    assert client.status == "closed"


def test_statistics_on_a_local_cluster_match_the_hand_computed_values(local_client):
    assert len(workers_of(local_client)) == 2
    spikes = spike_statistics(two_point_sweep().chunk({"point": 1}), bin_ms=20.0)
    future = local_client.compute(spikes)  # runs on the cluster's workers
    check_spikes(future.result())
    check_weights(weight_statistics(weight_sweep().chunk({"point": 1})).compute())  # the default scheduler
    curves = loss_vs_time_by_group(fit_sweep().chunk({"point": 1}), GRID).compute()
    nan = np.nan
    np.testing.assert_allclose(curves["median"].values, [[nan, 1.5, 1.15, 0.4, 0.4], [nan, nan, 3.25, 3.25, 1.75]])
    table = scaling_table(scaling_sweep().chunk({"point": 2}))
    np.testing.assert_allclose(table["step_bytes"].sel({"method": "bptt", "conn_method": "dense"}).values / 1e6,
                               [[13, 21], [21, 41]])


def test_an_existing_scheduler_is_used_and_left_running(local_client):
    address = local_client.scheduler.address
    with dask_client(address.removeprefix("tcp://") if address.startswith("tcp://") else address) as client:
        assert client is not local_client
        assert len(workers_of(client)) == 2
        check_spikes(spike_statistics(two_point_sweep().chunk({"point": 1}), bin_ms=20.0).compute())
    assert local_client.submit(sum, [1, 2]).result() == 3  # the scheduler we did not start still runs


def test_no_scheduler_means_dask_threads():
    with dask_client(None) as client:
        assert client is None
        check_spikes(spike_statistics(two_point_sweep().chunk({"point": 1}), bin_ms=20.0).compute())


@pytest.mark.parametrize("spec, normalised", [
    ("local", "local"), ("slurm", "slurm"), ("tcp://10.0.0.1:8786", "tcp://10.0.0.1:8786"),
    ("node12:8786", "tcp://node12:8786"), ("", None), (None, None),
])
def test_parse_scheduler(spec, normalised):
    assert parse_scheduler(spec) == normalised


@pytest.mark.parametrize("spec", ["locla", "tcp://host", "host:99999", "ftp://host:21"])
def test_bad_scheduler_values_name_the_option(spec):
    with pytest.raises(SchedulerError, match="--scheduler.*local, slurm"):
        parse_scheduler(spec)


def test_unreachable_address_is_one_clear_error():
    with pytest.raises(SchedulerError, match="no dask scheduler answers at tcp://127.0.0.1:9"):
        with dask_client("127.0.0.1:9", SchedulerOptions(wait_seconds=1)):
            pass


def test_slurm_without_sbatch_is_one_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(SchedulerError, match="sbatch"):
        with dask_client("slurm"):
            pass
