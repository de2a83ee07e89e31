"""Run in a subprocess by test_network_parallel.py: ``python multidevice_worker.py N JOB`` with N forced host
devices (set here, before JAX is imported), then one or more JOBs; prints one JSON line {JOB: result}.

JOB ``gradients:METHOD:CONN``: one program computes the gradients of one batch on one device and split across
all N devices; prints, per weight, the largest difference relative to the largest one-device gradient, the
gradient norms, and the largest loss and recall-output differences. JOB ``training:METHOD:CONN``: three
training iterations on one device and on N; prints both loss histories and the largest relative weight
difference after them. JOB ``experiment:METHOD:CONN``: the train-network experiment with parallel = auto;
prints its device records. A fourth field ``:neurons`` runs a job under the neuron layout instead of the data
layout (``experiment:...:neurons``: parallel = neurons). JOB ``simulate:PRESET:CONN`` (simulate-network's preset
coba or gif, 200 steps): one device against the neuron layout on all N devices; prints the spike counts, whether
the spikes are identical, the first step where they differ, the mean rates and both programs' XLA bytes. JOB
``simulate-experiment:PRESET:CONN``: the simulate-network experiment with parallel = neurons and auto (its
records), and the fields its refusals name (n not a multiple of N, more devices than N, parallel = data).
"""

import json
import os
import sys

os.environ["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={int(sys.argv[1])}"

import brainstate  # noqa: E402
import jax  # noqa: E402
import numpy as np  # noqa: E402

from diffbrain.network.config import NetworkConfig, TaskConfig, TrainConfig  # noqa: E402
from diffbrain.network.parallel import choose_layout  # noqa: E402
from diffbrain.network.training import Trainer  # noqa: E402

BATCH = 8
N_REC = 40


def trainer(method: str, conn: str, layout) -> Trainer:
    # small, but with recurrent spikes in both populations (every gradient non-zero)
    impl = {"dense": "auto", "rand": "event", "rand-masked": "masked_dense"}[conn]  # rand-masked: rand wiring on
    net = NetworkConfig(n_rec=N_REC, conn_method=conn.split("-")[0], conn_prob=0.3, rec_scale=1.0, ff_scale=5.0,
                        sparse_impl=impl)  # the masked dense operator (the neuron layout: dense columns)
    task = TaskConfig(t_interval=5, t_cue=10, t_delay=20, t_recall=10, num_cue=3, n_per_group=3, noise_rate=50,
                      cue_rate=200)
    return Trainer(net, task, TrainConfig.for_method(method, batch_size=BATCH, iterations=3), seed=0, layout=layout)


def relative(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(a)), 1e-30))


def layout_of(kind: str, method: str):
    return choose_layout(kind, 0, jax.devices(), BATCH, N_REC, method)


def neuron_gradients(method: str, conn: str) -> dict:
    """The one-device gradient and the neuron layout's (its blocks gathered into the one-device format)."""
    one_device, split = trainer(method, conn, None), trainer(method, conn, layout_of("neurons", method))
    one = brainstate.transform.jit(lambda it: one_device._local_gradients(*one_device._trials(it)))(0)
    many = brainstate.transform.jit(lambda it: split._sharded(*split._trials(it)))(0)
    grads = split.shards.to_base(many[0], split.model)
    exc = split.shards.exc  # how one device holds the excitatory projection, and its block's shape
    return {"impl": one_device.model.sparse_impl, "n_devices": split.layout.n_devices,
            "exc_block": [type(exc).__name__, list(exc.weight.value.addressable_shards[0].data.shape)],
            "relative": {k: relative(one[0][k], grads[k]) for k in one[0]},
            "norm": {k: float(np.linalg.norm(np.asarray(v))) for k, v in one[0].items()},
            "loss": relative(one[1], many[1]), "recall": relative(one[2], many[2])}


def gradients(method: str, conn: str) -> dict:
    tr = trainer(method, conn, layout_of("data", method))
    both = brainstate.transform.jit(lambda it: (tr._local_gradients(*tr._trials(it)), tr._sharded(*tr._trials(it))))
    one, many = both(0)
    return {"impl": tr.model.sparse_impl, "n_devices": tr.layout.n_devices,
            "relative": {k: relative(one[0][k], many[0][k]) for k in one[0]},
            "norm": {k: float(np.linalg.norm(np.asarray(v))) for k, v in one[0].items()},
            "loss": relative(one[1], many[1]), "recall": relative(one[2], many[2])}


def training(method: str, conn: str, kind: str = "data") -> dict:
    runs = []
    for layout in (None, layout_of(kind, method)):
        tr = trainer(method, conn, layout)
        stats = tr.compile()
        runs.append((tr, [tr.step(i)[0] for i in range(3)], stats.temp_bytes))
    (a, loss_a, temp_a), (b, loss_b, temp_b) = runs
    return {"loss_one": loss_a, "loss_many": loss_b, "temp_bytes": [temp_a, temp_b],
            "weights": max(relative(a.weights()[k], b.weights()[k]) for k in a.weights())}


def experiment(method: str, conn: str, kind: str = "auto") -> dict:
    """The ``train-network`` experiment on every device (parallel = auto), with a gradient check before each
    iteration (a second compiled program, called with the weights on the mesh): its records."""
    from diffbrain.experiments import get

    ds = get("train-network")({"method": method, "conn_method": conn, "n_rec": 20, "batch_size": BATCH,
                               "iterations": 2, "test_batch": 4, "t_interval": 5.0, "t_cue": 10.0,
                               "t_delay": 20.0, "t_recall": 10.0, "num_cue": 3, "n_per_group": 3,
                               "grad_check_every": 1, "parallel": kind})
    keys = ("parallel_layout", "n_devices", "device_kind")
    return {**{k: ds.attrs[k] for k in keys},
            **{k: float(ds[k]) for k in ("estimated_bytes", "estimated_device_bytes", "temp_bytes",
                                         "device_peak_bytes", "test_loss")},
            "loss": [float(v) for v in ds["loss"].values], "checks": int(ds.sizes["grad_check"])}


def simulate(preset: str, conn: str, kernel: str = "auto") -> dict:
    """simulate-network's preset on one device and on every device (the neuron layout), 200 steps, small n;
    ``kernel`` auto (native where it builds) or brainevent."""

    from diffbrain.network import coba
    from diffbrain.network.simulate import GifDrive, simulate_gif
    from diffbrain.network.simulate_parallel import simulate_coba_neurons, simulate_gif_neurons

    layout = choose_layout("neurons", 0, jax.devices(), 1, 200)
    native = {"auto": None, "brainevent": False}[kernel]
    if preset == "coba":  # 20 ms at dt 0.1: the random initial potentials make the first spikes early
        cfg = coba.CobaConfig(n=200, syn_per_neuron=40.0, conn_method=conn, dt=0.1).check()
        one = coba.simulate(cfg, 0, 20.0, max_chunk=80, native=native)
        many = simulate_coba_neurons(cfg, 0, 20.0, layout, max_chunk=80, native=native)
    else:  # both event-driven (the one-device network would choose masked dense at this size)
        cfg = NetworkConfig(n_rec=200, conn_method=conn, conn_prob=0.1, conn_num=20, ff_scale=6.0, rec_scale=2.0,
                            sparse_impl="event").check()
        drive = GifDrive(100, 20.0)
        one = simulate_gif(cfg, drive, 0, 200.0, max_chunk=80, native=native)
        many = simulate_gif_neurons(cfg, drive, 0, 200.0, layout, max_chunk=80, native=native)
    same = (one.spike_step.size == many.spike_step.size and np.array_equal(one.spike_step, many.spike_step)
            and np.array_equal(one.spike_neuron, many.spike_neuron))
    first = -1
    if not same:
        raster = lambda r: {(int(t), int(i)) for t, i in zip(r.spike_step, r.spike_neuron, strict=True)}  # noqa: E731
        diff = raster(one) ^ raster(many)
        first = min(t for t, _ in diff)
    rate = lambda r: r.spike_step.size / (r.n_neurons * r.duration_s)  # noqa: E731
    return {"n_devices": layout.n_devices, "spikes": [int(one.spike_step.size), int(many.spike_step.size)],
            "identical": bool(same), "first_difference": first, "rate": [rate(one), rate(many)],
            "kernel": [one.event_kernel, many.event_kernel],
            "temp_bytes": [one.temp_bytes, many.temp_bytes], "argument_bytes": [one.argument_bytes,
                                                                                many.argument_bytes]}


def simulate_experiment(preset: str, conn: str) -> dict:
    from diffbrain.errors import UserError
    from diffbrain.experiments import get

    exp = get("simulate-network")
    base = {"preset": preset, "conn_method": conn, "n": 200, "syn_per_neuron": 20.0, "max_chunk_steps": 40,
            "duration_ms": 20.0 if preset == "coba" else 100.0, "ff_scale": 6.0}
    out = {}
    for parallel in ("neurons", "auto"):
        ds = exp({**base, "parallel": parallel})
        out[parallel] = {**{k: ds.attrs[k] for k in ("parallel_layout", "n_devices", "device_kind")},
                         **{k: float(ds[k]) for k in ("estimated_bytes", "estimated_device_bytes", "temp_bytes",
                                                      "argument_bytes", "device_peak_bytes", "mean_rate")},
                         "spikes": int(ds.sizes["spike"])}
    refused = {}
    for name, change in (("n", {"parallel": "neurons", "n": 202}), ("devices", {"devices": 8}),
                         ("data", {"parallel": "data"})):
        try:
            exp({**base, **change})
            refused[name] = None
        except UserError as err:
            refused[name] = err.field
    out["refused"] = refused
    return out


if __name__ == "__main__":
    jobs = {"gradients": gradients, "training": training, "experiment": experiment, "simulate": simulate}
    out = {}
    for job in sys.argv[2:]:
        kind, method, conn, *layout = job.split(":")
        if kind == "simulate-experiment":
            out[job] = simulate_experiment(method, conn)
        elif kind == "simulate":
            out[job] = simulate(method, conn, *layout)
        elif kind == "gradients" and layout[:1] == ["neurons"]:  # ":neurons:brainevent": without native kernels
            from diffbrain.network.events import kernel_choice

            with kernel_choice(False if layout[1:] == ["brainevent"] else None):
                out[job] = neuron_gradients(method, conn)
        else:
            out[job] = jobs[kind](method, conn, *layout)
    print(json.dumps(out))
