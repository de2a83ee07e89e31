"""One of two local processes started as srun would start them (SLURM's step variables set here, jax.distributed
for real, 2 forced CPU devices each) running a pack of one ``cluster-check`` train_step point; process 1's part
fails before its collective (its experiment is replaced by one that raises), process 0 is left in the point.

``python distributed_worker.py INDEX STORE WORK_DIR JOB_ID`` (the job id sets JAX's coordinator port)."""

import os
import sys

index, store, work_dir, job = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
os.environ.update({"SLURM_JOB_ID": job, "SLURM_NTASKS": "2", "SLURM_STEP_NUM_TASKS": "2", "SLURM_STEP_NUM_NODES": "1",
                   "SLURM_STEP_NODELIST": "localhost", "SLURM_JOB_NODELIST": "localhost", "SLURM_NODEID": "0",
                   "SLURM_PROCID": str(index), "SLURM_LOCALID": str(index), "JAX_PLATFORMS": "cpu",
                   "XLA_FLAGS": "--xla_force_host_platform_device_count=2"})

from diffbrain.experiments import get  # noqa: E402
from hpc import runner  # noqa: E402

experiment = get("cluster-check")
if index == 1:
    def fails(params, ctx):
        raise RuntimeError("process 1's part failed before its collective")

    object.__setattr__(experiment, "run", fails)
task = runner.PointTask("p", "cluster-check", experiment.validate({"train_step": True, "step_method": "diag"}))
print(runner.run_pack(runner.Pack(store, work_dir, (task,))), flush=True)
