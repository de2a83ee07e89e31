"""One point computed by two processes on the test cluster: ``tasks_per_node = 2``, both started by srun
(submitit's batch script), each with two forced host devices; they join ``jax.distributed`` and split one
training batch across the four devices. The loss and gradients equal those of one process on one device,
and process 0 alone writes the point."""

import textwrap
import time

import numpy as np
import pytest
import xarray as xr
from cli_runner import run_cli

from analysis.store import COMPLETE, point_states, read_point_attrs
from diffbrain import experiments
from diffbrain.context import RunContext
from slurm.resources import jobs_dir_for

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

SWEEP = """
name = "two"
experiment = "cluster-check"
store = "two.zarr"
[params]
jax = true
train_step = true
step_method = "diag"  # compiles in about a third of expsm_diag's time (28 s against 89 s at load 13)
samples = 2
[resources]
executor = "slurm"
partition = "{cpu}"
tasks_per_node = 2
timeout_min = 5
setup = ["export XLA_FLAGS=--xla_force_host_platform_device_count=2"]
"""
WAIT_S = 420


def test_two_tasks_compute_one_step_and_process_0_writes(slurm_cluster, capsys):
    folder = slurm_cluster.job_folder("two")
    path = folder / "two.toml"
    path.write_text(textwrap.dedent(SWEEP.format(cpu=slurm_cluster.default_partition)))
    code, out, err = run_cli(["sweep", "submit", path], capsys)
    assert code == 0 and "submitted 1 of 1 points to slurm" in out, out + err
    store = folder / "two.zarr"

    # meanwhile, the same point as one process on one device (this one)
    exp = experiments.get("cluster-check")
    one = exp.run(exp.validate({"jax": True, "train_step": True, "step_method": "diag", "samples": 2}), RunContext())
    assert one.attrs["n_devices"] == 1 and one.attrs["n_processes"] == 1

    deadline = time.monotonic() + WAIT_S
    while not point_states(store) and time.monotonic() < deadline:
        time.sleep(2)
    (pid, state), = point_states(store).items()
    attrs = read_point_attrs(store, pid)
    assert state == COMPLETE, attrs.get("error")
    assert attrs["processes"] == {"count": 2, "index": 0, "nodes": [slurm_cluster.hostname], "distributed": True}
    two = xr.open_zarr(store, group=f"points/{pid}", consolidated=False).compute()
    assert (two.attrs["n_processes"], two.attrs["n_devices"], two.attrs["parallel_layout"]) == (2, 4, "data")
    assert len(attrs["devices"]) == 4  # every process's devices

    reference = one["step_gradient"].values
    assert np.linalg.norm(reference) > 0 and np.count_nonzero(reference) > reference.size // 2
    relative = np.max(np.abs(two["step_gradient"].values - reference)) / np.max(np.abs(reference))
    assert relative <= 1e-5, relative
    assert float(two["step_loss"]) == pytest.approx(float(one["step_loss"]), rel=1e-5)

    # the other process computed its part and wrote nothing (its own log says so)
    logs = {p.name.split("_")[1]: p.read_text() for p in (jobs_dir_for(store) / "submitit").glob("*/*_log.out")}
    assert set(logs) == {"0", "1"}, sorted(logs)
    assert "process 1 of 2 on" in logs["1"] and "process 0 of 2 on" in logs["0"]
    assert f"{pid}: process 1 of 2 computed its part; process 0 writes the point" in logs["1"]
    assert f"{pid} complete after" in logs["0"]
