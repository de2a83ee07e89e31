"""``scaling-probe``: time and memory of one training configuration (method, T, n_rec, batch, connectivity).

After compiling the training step once (compile seconds and XLA's compiled memory analysis: temp,
argument and output bytes), it runs ``warmup`` untimed steps (first-use costs such as numba kernels
of the event-driven operators), then ``steps`` timed steps, and reports their median, the process'
peak RSS, the device's peak bytes where the device reports them (NaN on the CPU) and the loss after
the last step. The task is evidence accumulation scaled to ``n_steps`` time steps with the paper's
proportions (7 cues over 1050/2200 of the trial, recall 150/2200, the rest delay). The runner gives
every point a fresh process (``fresh_process``) so memory figures do not leak between points.
"""

from __future__ import annotations

from diffbrain.experiments.base import Experiment, Param, RunContext
from diffbrain.network.config import (
    CONN_METHODS,
    METHODS,
    NETWORK_PARAMS,
    SPARSE_IMPLS,
    TRAINING_PARAMS,
    probe_task,  # noqa: F401 (re-exported: the probe's task)
)

_SHARED = {p.name: p for p in NETWORK_PARAMS + TRAINING_PARAMS}

PARAMS = (
    Param("method", str, "bptt", "training method", choices=METHODS),
    Param("n_steps", int, 1000, "time steps per trial (T)", low=30),
    Param("n_rec", int, 200, "recurrent neurons", low=5),
    Param("batch_size", int, 32, "trials per step", low=1),
    Param("conn_method", str, "dense", "recurrent connectivity", choices=CONN_METHODS),
    Param("conn_prob", float, 0.2, "connection probability (rand, gaussian)", positive=True, high=1.0),
    Param("sparse_impl", str, "auto", "sparse operator (auto: from the measured crossover)", choices=SPARSE_IMPLS),
    Param("steps", int, 5, "timed training steps (k)", low=1),
    Param("warmup", int, 1, "untimed steps after compiling", low=0),
    Param("etrace_decay", float, 0.99, "ES-D-RTRL decay (expsm_diag)", positive=True, high=0.99999),
    Param("remat", bool, False, "bptt: gradient checkpointing"),
    Param("lr", float, 1e-3, "Adam learning rate", positive=True),
) + tuple(_SHARED[name] for name in ("parallel", "devices", "w_ei_ratio", "ff_scale", "rec_scale", "tau_neu",
                                     "tau_a", "tau_syn", "tau_out", "dt"))


def memory_shape(params) -> dict | None:
    """The point's shape for the memory planner (its training step; the task has the default 100 inputs)."""
    from diffbrain.network.config import TaskConfig
    from diffbrain.network.planner import request_of, shape_of

    shape = shape_of(params, params["method"], params["batch_size"], params["n_steps"], TaskConfig().n_in,
                     params["remat"])
    return None if shape is None else {**shape, **request_of(params)}


def run(params: dict, ctx: RunContext):
    import time

    import jax
    import numpy as np
    import xarray as xr

    from diffbrain.context import peak_rss_bytes
    from diffbrain.network.config import NetworkConfig, TaskConfig, TrainConfig
    from diffbrain.network.training import Trainer

    full = {**{p.name: p.default for p in NETWORK_PARAMS}, **params}
    net_cfg = NetworkConfig.from_params(full)
    task_cfg = TaskConfig(**probe_task(params["n_steps"], params["dt"])).check(params["dt"])
    train_cfg = TrainConfig(method=params["method"], etrace_decay=params["etrace_decay"], remat=params["remat"],
                            lr=params["lr"], batch_size=params["batch_size"],
                            iterations=params["warmup"] + params["steps"])
    from diffbrain.network.device_fit import analytic_need, layout_estimate, step_fit
    from diffbrain.network.memory import ensure_fits, network_estimate
    from diffbrain.network.parallel import choose_layout, device_peak_bytes, device_record
    from diffbrain.network.planner import planned_bytes

    available = list(ctx.devices) or jax.devices()
    estimate = network_estimate(net_cfg, task_cfg.n_in, 2, params["method"], params["batch_size"], params["n_steps"])
    ensure_fits(estimate, field="n_rec", what=f"the network of n_rec={params['n_rec']}", check_device=False)
    # the layout whose bytes per device fit a device: the planner's cached figure, else the analytic one (the
    # rule sweep plan applies)
    fit = step_fit(memory_shape(params), analytic_need(net_cfg, task_cfg.n_in, params["method"],
                                                       params["batch_size"], params["n_steps"]), available)
    layout = choose_layout(params["parallel"], params["devices"], available, params["batch_size"], params["n_rec"],
                           params["method"], memory=fit)
    share = layout_estimate(net_cfg, task_cfg.n_in, params["method"], params["batch_size"], params["n_steps"], 0,
                            layout.kind, layout.n_devices)
    limit = fit.limit(layout.n_devices)
    trainer = Trainer(net_cfg, task_cfg, train_cfg, seed=params["seed"], layout=layout)
    assert trainer.task.n_steps == params["n_steps"], (trainer.task.n_steps, params["n_steps"])
    stats = trainer.compile()
    ctx.report(0.0, f"compiled in {stats.seconds:.1f} s")
    seconds, loss, acc = [], float("nan"), float("nan")
    for i in range(params["warmup"] + params["steps"]):
        start = time.perf_counter()
        loss, acc, _ = trainer.step(i)
        if i >= params["warmup"]:
            seconds.append(time.perf_counter() - start)
        ctx.report((i + 1) / train_cfg.iterations, f"step {i + 1}: loss {loss:.4f}")
    scalar = lambda v, units, dtype=np.float64: ((), np.asarray(v, dtype=dtype), {"units": units})
    return xr.Dataset(
        {
            "step_seconds_median": scalar(np.median(seconds), "s"),
            "step_seconds": (("step",), np.asarray(seconds, dtype=np.float64), {"units": "s"}),
            "compile_seconds": scalar(stats.seconds, "s"),
            "temp_bytes": scalar(stats.temp_bytes, "bytes", np.int64),
            "argument_bytes": scalar(stats.argument_bytes, "bytes", np.int64),
            "output_bytes": scalar(stats.output_bytes, "bytes", np.int64),
            "peak_rss_bytes": scalar(peak_rss_bytes(), "bytes", np.int64),
            "estimated_bytes": scalar(estimate.total, "bytes", np.int64),
            "estimated_device_bytes": scalar(share.total, "bytes", np.int64),
            "structure_bytes": scalar(trainer.model.structure_bytes(), "bytes", np.int64),
            "device_peak_bytes": scalar(device_peak_bytes(layout.devices), "bytes"),
            "planned_device_bytes": scalar(planned_bytes(memory_shape(params), layout.kind, layout.n_devices),
                                           "bytes"),
            "checked_device_bytes": scalar(fit.need(layout.kind, layout.n_devices), "bytes"),
            "device_limit_bytes": scalar(float("nan") if limit is None else limit, "bytes"),
            "loss": scalar(loss, "1"),
            "accuracy": scalar(acc, "1"),
            "n_steps": scalar(params["n_steps"], "1", np.int64),
        },
        attrs={"method": params["method"], "conn_method": params["conn_method"], "n_rec": params["n_rec"],
               "batch_size": params["batch_size"], "device": str(layout.devices[0]),
               "sparse_impl": trainer.model.sparse_impl,  # the operator auto resolved to
               **device_record(layout), "device_bytes_source": fit.source},
    )


EXPERIMENT = Experiment(
    name="scaling-probe",
    params=PARAMS,
    run=run,
    help="Seconds per training step, compile time and memory of one network configuration (fresh process).",
    fresh_process=True,
    must_be_finite=("loss", "step_seconds_median"),
    memory=memory_shape,
)
