"""``cluster-check``: a cheap experiment that shows what a node gives a point.

Run it as a sweep before spending GPU hours: it reports the host, the JAX devices and a timing,
and can be told to sleep, fail or return NaN so that timeouts, requeues and failure handling can be
checked on a real cluster. ``train_step`` computes the loss and gradients of one training batch of a small
E/I network, split across every device the point sees (every process's, when ``tasks_per_node`` or
``nodes`` start several): the same point run as one process on one device must give the same numbers.
"""

from __future__ import annotations

import socket
import time

from diffbrain.experiments.base import Experiment, Param, RunContext


def run(params: dict, ctx: RunContext):
    import numpy as np
    import xarray as xr

    if params["fail"]:
        raise RuntimeError(f"cluster-check asked to fail (value={params['value']})")
    devices = []
    if params["jax"]:
        import jax

        devices = [str(d) for d in (ctx.devices or jax.devices())]
    start = time.perf_counter()
    remaining = params["seconds"]
    while remaining > 0:  # sleep in slices so progress and signals get through
        nap = min(remaining, 1.0)
        time.sleep(nap)
        remaining -= nap
        ctx.report(1.0 - remaining / params["seconds"], "sleeping")
    rng = np.random.default_rng(ctx.seed)
    data = {
        "value": ((), np.float32(np.nan if params["return_nan"] else params["value"]), {"units": "1"}),
        "noise": (("sample",), rng.standard_normal(params["samples"]).astype(np.float32), {"units": "1"}),
        "slept_seconds": ((), np.float32(time.perf_counter() - start), {"units": "s"}),
    }
    attrs = {"host": socket.gethostname(), "devices": devices}
    if params["train_step"]:
        step, layout = train_step(params["step_method"], params["step_batch"], ctx)
        data.update(step)
        attrs.update(layout)
    return xr.Dataset(data, attrs=attrs)


def train_step(method: str, batch: int, ctx: RunContext) -> tuple[dict, dict]:
    """Loss and gradients (concatenated in the order exc, ff, inh, readout) of batch 0 of a small E/I network
    with recurrent spikes, with ``batch`` trials split across every device the point sees."""
    import jax
    import numpy as np

    from diffbrain.network.config import NetworkConfig, TaskConfig, TrainConfig
    from diffbrain.network.parallel import choose_layout, device_record
    from diffbrain.network.training import Trainer

    available = list(ctx.devices) or jax.devices()
    layout = choose_layout("data", 0, available, batch)
    net = NetworkConfig(n_rec=40, conn_method="rand", conn_prob=0.3, rec_scale=1.0, ff_scale=5.0, sparse_impl="event")
    task = TaskConfig(t_interval=5, t_cue=10, t_delay=20, t_recall=10, num_cue=3, n_per_group=3, noise_rate=50,
                      cue_rate=200)
    trainer = Trainer(net, task, TrainConfig.for_method(method, batch_size=batch, iterations=1), seed=ctx.seed,
                      layout=layout)
    started = time.perf_counter()
    grads, loss = trainer.batch_gradients(0)
    flat = np.concatenate([np.ravel(grads[k]) for k in sorted(grads)]).astype(np.float32)
    step = {"step_loss": ((), np.float32(loss), {"units": "1"}),
            "step_gradient": (("gradient_element",), flat, {"units": "1"}),
            "step_seconds": ((), np.float32(time.perf_counter() - started), {"units": "s"})}
    return step, {**device_record(layout), "n_processes": jax.process_count()}


EXPERIMENT = Experiment(
    name="cluster-check",
    params=(
        Param("seconds", float, 0.0, "seconds to sleep", low=0.0),
        Param("value", float, 1.0, "value to return"),
        Param("return_nan", bool, False, "return NaN as the value (the runner records the point as failed)"),
        Param("fail", bool, False, "raise an error instead of returning"),
        Param("samples", int, 8, "length of the random 'noise' array (seeded)", low=0),
        Param("jax", bool, False, "import JAX and list its devices"),
        Param("train_step", bool, False, "compute one training batch's loss and gradients of a small network, "
              "split across every device (of every process) the point sees"),
        Param("step_method", str, "expsm_diag", "gradient method of train_step",
              choices=("bptt", "expsm_diag", "diag")),
        Param("step_batch", int, 8, "trials of train_step's batch (a multiple of the device count)", low=1),
    ),
    run=run,
    must_be_finite=("value",),
    help="Report host and devices, optionally sleep, fail or return NaN (checks a cluster set-up).",
)
