"""``train-network``: train (or simulate) the conductance-based E/I network on evidence accumulation.

Parameters follow the brainscale paper's script (snake_case); see :mod:`diffbrain.network.config`.
Checkpoints go to ``ctx.checkpoint_dir`` every ``checkpoint_every`` iterations; a requeued point
resumes from the last one and ends with the same loss trajectory as an uninterrupted run.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from diffbrain.experiments.base import Experiment, RunContext
from diffbrain.network.config import ALL_PARAMS

if TYPE_CHECKING:
    import xarray as xr


def check_connectome(params) -> None:
    """At ``sweep plan``: a connectome point's source loads and its selections and sign rules fit it."""
    from diffbrain.network.connectome import check_wiring

    check_wiring(dict(params))


def memory_shape(params) -> dict | None:
    """The point's shape for the memory planner (training points; not a connectome's or a simulation's)."""
    from diffbrain.network.planner import training_shape

    return training_shape(params)


def run(params: dict, ctx: RunContext):
    from diffbrain.network.run import run_network

    return to_dataset(run_network(params, ctx))


def to_dataset(rec) -> xr.Dataset:
    """The ``train-network`` dataset of docs/store-format.md from a :class:`~diffbrain.network.run.RunRecord`."""
    import numpy as np
    import xarray as xr

    from diffbrain.context import peak_rss_bytes
    from diffbrain.network.recording import firing_rates, spike_events

    p = rec.params
    times, neurons, offsets = spike_events(rec.raster)
    snaps = rec.snapshots
    n_iter = len(rec.history["loss"])
    v_time = (np.arange(rec.v_trace.shape[0]) * rec.dt).astype(np.float32)
    scalar = lambda value, units, dtype=np.float32: ((), np.asarray(value, dtype=dtype), {"units": units})
    data = {
        "loss": (("iteration",), rec.history["loss"], {"units": "1", "long_name": "recall cross-entropy per step"}),
        "accuracy": (("iteration",), rec.history["accuracy"], {"units": "1"}),
        "grad_norm": (("iteration",), rec.history["grad_norm"], {"units": "1", "long_name": "gradient norm"}),
        "step_seconds": (("iteration",), rec.history["step_seconds"], {"units": "s"}),
        "test_loss": scalar(rec.test_loss, "1"),
        "test_accuracy": scalar(rec.test_accuracy, "1"),
        "compile_seconds": scalar(rec.compile.seconds, "s"),
        "temp_bytes": scalar(rec.compile.temp_bytes, "bytes", np.int64),
        "argument_bytes": scalar(rec.compile.argument_bytes, "bytes", np.int64),
        "output_bytes": scalar(rec.compile.output_bytes, "bytes", np.int64),
        "peak_rss_bytes": scalar(peak_rss_bytes(), "bytes", np.int64),
        **{name: scalar(value, "bytes", np.float64 if isinstance(value, float) else np.int64)
           for name, value in (rec.memory or {}).items()},
        "weight_bin_edges": (("w_edge",), rec.bin_edges.astype(np.float32), {"units": "S"}),
        "w_hist_exc": (("snapshot", "w_bin"), snaps["hist_exc"], {"units": "1"}),
        "w_hist_inh": (("snapshot", "w_bin"), snaps["hist_inh"], {"units": "1"}),
        "w_mean_exc": (("snapshot",), snaps["mean_exc"], {"units": "S"}),
        "w_mean_inh": (("snapshot",), snaps["mean_inh"], {"units": "S"}),
        "w_frac_small_exc": (("snapshot",), snaps["frac_small_exc"], {"units": "1"}),
        "w_frac_small_inh": (("snapshot",), snaps["frac_small_inh"], {"units": "1"}),
        "spike_time": (("spike",), times, {"units": "1", "long_name": "time-step index"}),
        "spike_neuron": (("spike",), neurons, {"units": "1"}),
        "spike_trial_offsets": (("trial_edge",), offsets, {"units": "1"}),
        "firing_rate": (("neuron",), firing_rates(rec.raster, rec.dt), {"units": "Hz"}),
        "is_excitatory": (("neuron",), rec.is_excitatory.astype(bool)),
        "v_trace": (("v_time", "v_neuron"), rec.v_trace, {"units": "mV"}),
        "dt": scalar(rec.dt, "ms"),
        "n_steps": scalar(rec.n_steps, "1", np.int64),
        # the optimiser settings the run used (a per-method default when the parameter was left unset)
        "train_lr": scalar(rec.training["lr"], "1"),
        "train_readout_lr_scale": scalar(rec.training["readout_lr_scale"], "1"),
        "train_lr_schedule": ((), np.asarray(rec.training["lr_schedule"])),
        "train_warmup": scalar(rec.training["warmup"], "1", np.int64),
        "train_clip_norm": scalar(rec.training["clip_norm"], "1"),
        "train_etrace_decay": scalar(rec.training["etrace_decay"], "1"),
    }
    checks = rec.grad_checks
    projections = ("ff", "exc", "inh", "readout")
    for stat, long_name in (("cosine", "cosine with BPTT's gradient"), ("norm_ratio", "|gradient| / |BPTT's|")):
        values = np.stack([checks[f"{stat}_{p}"] for p in projections], axis=-1).astype(np.float32)
        data[f"grad_{stat}"] = (("grad_check", "projection"), values.reshape(-1, len(projections)),
                                {"units": "1", "long_name": long_name + " on the same batch and weights"})
    coords = {
        "iteration": ("iteration", np.arange(n_iter, dtype=np.int64)),
        "snapshot": ("snapshot", snaps["iterations"]),
        "v_time": ("v_time", v_time, {"units": "ms"}),
        "v_neuron": ("v_neuron", rec.v_neurons.astype(np.int64)),
        "neuron": ("neuron", np.arange(rec.is_excitatory.size, dtype=np.int64)),
        "grad_check": ("grad_check", checks["iteration"].astype(np.int64)),
        "projection": ("projection", np.asarray(projections)),
    }
    attrs = {"method": p["method"], "conn_method": p["conn_method"], "n_rec": int(rec.is_excitatory.size),
             "mode": p["mode"], "resumed_from_iteration": int(rec.resumed_from),
             "method_defaults_used": ",".join(rec.defaults_used), **(rec.devices or {})}
    if rec.connectome is not None:
        extra_data, extra_coords, extra_attrs = connectome_variables(rec.connectome)
        data.update(extra_data)
        coords.update(extra_coords)
        attrs.update(extra_attrs)
    return xr.Dataset(data, coords=coords, attrs=attrs)


def connectome_variables(c: dict) -> tuple[dict, dict, dict]:
    """The connectome part of the dataset (docs/store-format.md): per neuron, and per cell class / transmitter
    of the presynaptic neuron before and after training."""
    import numpy as np

    data = {
        "neuron_name": (("neuron",), c["names"].astype(str)),
        "neuron_class": (("neuron",), c["classes"].astype(str)),
        "neuron_transmitter": (("neuron",), c["transmitters"].astype(str)),
        "transmitter_share": (("neuron",), c["transmitter_share"],
                              {"units": "1", "long_name": "share of the neuron's synapses carrying its transmitter"}),
        "n_transmitters": (("neuron",), c["n_transmitters"], {"units": "1"}),
        "source_index": (("neuron",), c["source_index"], {"units": "1", "long_name": "node index in the source"}),
        "is_input": (("neuron",), c["is_input"]),
        "is_output": (("neuron",), c["is_output"]),
        "w_group_bin_edges": (("wg_edge",), c["bin_edges"], {"units": "S", "long_name": "log-spaced weight bins"}),
    }
    coords = {"stage": ("stage", np.asarray(["initial", "final"]))}
    for grouping, dim in (("class", "cell_class"), ("transmitter", "transmitter")):
        g = c["groups"][grouping]
        coords[dim] = (dim, g["names"].astype(str))
        data[f"w_hist_{grouping}"] = (("stage", dim, "wg_bin"), g["hist"], {"units": "1"})
        data[f"w_mean_{grouping}"] = (("stage", dim), g["mean"], {"units": "S"})
        data[f"synapses_{grouping}"] = ((dim,), g["synapses"], {"units": "1"})
        data[f"neurons_{grouping}"] = ((dim,), g["neurons"], {"units": "1"})
        data[f"rate_{grouping}"] = ((dim,), g["rate"], {"units": "Hz"})
    attrs = {"connectome": c["source"], "transmitter_rule": c["transmitter_rule"],
             "transmitter_source": c["transmitter_source"], "n_mixed_transmitter_neurons": int(c["n_mixed"]),
             "n_synapses": int(c["n_synapses"]), "n_gap_junctions": int(c["n_gap_junctions"])}
    return data, coords, attrs


EXPERIMENT = Experiment(
    name="train-network",
    params=ALL_PARAMS,
    run=run,
    help="Train a conductance-based E/I spiking network on evidence accumulation (bptt, diag or expsm_diag).",
    must_be_finite=("loss", "test_loss"),
    check=check_connectome,
    memory=memory_shape,
)
