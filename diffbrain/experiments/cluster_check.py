"""``cluster-check``: a cheap experiment that shows what a node gives a point.

Run it as a sweep before spending GPU hours: it reports the host, the JAX devices and a timing,
and can be told to sleep, fail or return NaN so that timeouts, requeues and failure handling can be
checked on a real cluster.
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
    return xr.Dataset(
        {
            "value": ((), np.float32(np.nan if params["return_nan"] else params["value"]), {"units": "1"}),
            "noise": (("sample",), rng.standard_normal(params["samples"]).astype(np.float32), {"units": "1"}),
            "slept_seconds": ((), np.float32(time.perf_counter() - start), {"units": "s"}),
        },
        attrs={"host": socket.gethostname(), "devices": devices},
    )


EXPERIMENT = Experiment(
    name="cluster-check",
    params=(
        Param("seconds", float, 0.0, "seconds to sleep", low=0.0),
        Param("value", float, 1.0, "value to return"),
        Param("return_nan", bool, False, "return NaN as the value (the runner records the point as failed)"),
        Param("fail", bool, False, "raise an error instead of returning"),
        Param("samples", int, 8, "length of the random 'noise' array (seeded)", low=0),
        Param("jax", bool, False, "import JAX and list its devices"),
    ),
    run=run,
    must_be_finite=("value",),
    help="Report host and devices, optionally sleep, fail or return NaN (checks a cluster set-up).",
)
