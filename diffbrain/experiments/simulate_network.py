"""``simulate-network``: simulate a spiking network (no task, no training) and record its activity.

Presets: ``coba``, the Vogels-Abbott benchmark with its published parameters (:mod:`diffbrain.network.coba`),
and ``gif``, the paper's E/I GIF network (:class:`~diffbrain.network.model.EINetwork`) driven by Poisson
input. ``n`` neurons with ``syn_per_neuron`` synapses each on average (p = syn_per_neuron / (n - 1) for
``rand``; the degree for ``fixed_in``/``fixed_out``; the Gaussian's peak probability is set to give that
mean). The memory the network needs is computed first and a network that cannot fit is refused before
anything is allocated. The point records spikes as events, the population rate, per-neuron rates and
ISI CV, build / compile / run seconds, seconds per simulated second, and memory (estimate, structure,
states, XLA temporaries, peak RSS). Each point runs in a fresh process so its memory figures are its own.

``parallel``/``devices``: one device (``none``), or the neurons split across devices (``neurons``, each device
holding its neurons' states and incoming synapses: :mod:`diffbrain.network.simulate_parallel`); ``auto`` takes one
device when the network fits it, else the fewest devices (dividing ``n``) whose share fits. ``data`` is refused
(one trial: no batch to split).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from diffbrain.experiments.base import Experiment, Param, ParamError, RunContext
from diffbrain.network.config import NETWORK_PARAMS

if TYPE_CHECKING:
    import xarray as xr

_SHARED = {p.name: p for p in NETWORK_PARAMS}
PRESETS = ("coba", "gif")
DEFAULT_DT = {"coba": 0.1, "gif": 1.0}

PARAMS = (
    Param("preset", str, "coba", "coba (Vogels-Abbott benchmark) or gif (the paper's E/I GIF network)",
          choices=PRESETS),
    Param("n", int, 4000, "neurons (80% excitatory)", low=10),
    Param("syn_per_neuron", float, 80.0, "mean synapses per neuron", positive=True),
    Param("conn_method", str, "rand", "connectivity: rand, fixed_in, fixed_out, gaussian (gif only)",
          choices=("rand", "fixed_in", "fixed_out", "gaussian")),
    Param("conn_width", float, 0.1, "gaussian width, fraction of the ring", positive=True, high=10.0),
    Param("duration_ms", float, 1000.0, "simulated time, ms", positive=True),
    Param("dt", float, 0.0, "time step, ms (0: the preset's, 0.1 for coba and 1.0 for gif)", low=0.0),
    Param("input_rate", float, 20.0, "gif: rate of the Poisson input neurons, Hz", low=0.0),
    Param("n_input", int, 100, "gif: Poisson input neurons", low=1),
    Param("rate_bin_ms", float, 1.0, "bin of the recorded population rate, ms", positive=True),
    Param("max_chunk_steps", int, 1000, "time steps per compiled call (spikes leave the device per call)", low=1),
    Param("event_kernel", str, "auto", "event-driven operator: native (compiled C++ on the CPU), brainevent, "
          "or auto (native where it builds)", choices=("auto", "native", "brainevent")),
    Param("memory_limit_gb", float, 0.0, "refuse networks needing more than this (0: the memory available)",
          low=0.0),
    Param("parallel", str, "auto", "devices for the simulation: none (one device), neurons (the neurons split "
          "evenly across `devices`; it must divide n) or auto (one device when the network fits it, else the "
          "fewest devices dividing n whose share fits); data is refused (one trial)",
          check=lambda value, params: _check_parallel(value)),
    Param("devices", int, 0, "devices the simulation may use (0: every device this process sees)", low=0),
) + tuple(_SHARED[name] for name in ("ff_scale", "rec_scale", "w_ei_ratio", "tau_neu", "tau_a", "tau_syn"))


def _check_parallel(value: str) -> None:
    from diffbrain.network.simulate_parallel import check_parallel

    check_parallel(value)


def _dt(params: dict) -> float:
    return params["dt"] or DEFAULT_DT[params["preset"]]


def coba_config(params: dict):
    from diffbrain.network.coba import CobaConfig

    if params["conn_method"] == "gaussian":
        raise ParamError("conn_method", "the coba preset uses rand, fixed_in or fixed_out connectivity",
                         "use rand, fixed_in or fixed_out (or preset gif for gaussian)")
    return CobaConfig(n=params["n"], syn_per_neuron=params["syn_per_neuron"], conn_method=params["conn_method"],
                      dt=_dt(params)).check()


def gif_config(params: dict):
    """The :class:`NetworkConfig` of the gif preset, its connection parameter derived from syn_per_neuron."""
    from dataclasses import replace

    from diffbrain.network.config import NetworkConfig
    from diffbrain.network.connectivity import expected_synapses

    n, syn = params["n"], params["syn_per_neuron"]
    base = NetworkConfig(n_rec=n, conn_method=params["conn_method"], conn_width=params["conn_width"], dt=_dt(params),
                         conn_num=max(1, int(round(syn))), conn_prob=1.0,
                         **{k: params[k] for k in ("ff_scale", "rec_scale", "w_ei_ratio", "tau_neu", "tau_a",
                                                   "tau_syn")})
    if params["conn_method"] in ("rand", "gaussian"):
        prob = syn * n / expected_synapses(base)  # expected synapses scale linearly with the probability
        if prob > 1.0:
            raise ParamError("syn_per_neuron", f"{syn} synapses per neuron need a connection probability of "
                             f"{prob:.3g} at n={n}" + (f", conn_width={params['conn_width']}"
                                                       if params["conn_method"] == "gaussian" else ""),
                             "lower syn_per_neuron" + (" or widen conn_width" if params["conn_method"] == "gaussian"
                                                       else ""))
        base = replace(base, conn_prob=prob)
    return base.check()


def _record_bytes(n: int, duration_ms: float, chunk: int) -> int:
    """Spike events (int32 step and neuron) at up to 100 Hz per neuron, plus a packed chunk on the device."""
    return int(8 * n * 100 * duration_ms / 1000.0 + 2 * chunk * (n // 8 + 1))


def _shape(params: dict) -> tuple[int, float, int, int]:
    """(neurons, expected synapses, states per neuron, input neurons) of a point's network."""
    if params["preset"] == "coba":
        return params["n"], params["n"] * params["syn_per_neuron"], 4, 0
    from diffbrain.network.connectivity import expected_synapses

    return params["n"], expected_synapses(gif_config(params)), 5, params["n_input"]


def layout_of(params: dict, ctx: RunContext, estimate, limit: int | None, what: str):
    """(layout, one device's estimated bytes) for ``parallel``/``devices``; BadInput (field ``n``) when the
    network fits no layout, ParamError naming ``parallel``, ``devices`` or ``n`` when they cannot be met."""
    import jax

    from diffbrain.network.memory import ensure_fits
    from diffbrain.network.simulate import chunking
    from diffbrain.network.simulate_parallel import choose_simulation_layout, simulation_device_estimate

    n, synapses, states, n_input = _shape(params)
    n_steps = max(1, int(round(params["duration_ms"] / _dt(params))))
    chunk = chunking(n_steps, params["max_chunk_steps"])[1]
    on_device = estimate.total - estimate.weights // 2 - estimate.structure // 2  # what ensure_fits puts there

    def share(d: int):
        return estimate if d == 1 else simulation_device_estimate(n, synapses, d, states, n_input, chunk)

    def check(d: int) -> None:
        ensure_fits(estimate, limit, field="n", what=what + ("" if d == 1 else f" split across {d} devices"),
                    device_share=share(d).total / max(1, on_device) if d > 1 else 1.0)

    # this process's devices only: the packed spikes are read back by the host that simulates (a mesh spanning
    # several processes' devices would leave each process only its own blocks)
    here = jax.process_index()
    available = [d for d in (list(ctx.devices) or jax.devices()) if getattr(d, "process_index", here) == here]
    layout = choose_simulation_layout(params["parallel"], params["devices"], available, n, check)
    return layout, share(layout.n_devices)


def run(params: dict, ctx: RunContext):
    from diffbrain.network.memory import GB
    from diffbrain.network.parallel import device_peak_bytes
    from diffbrain.network.simulate import GifDrive, simulate_gif

    native = {"auto": None, "native": True, "brainevent": False}[params["event_kernel"]]
    if native:
        from diffbrain.network.events import native_available

        if not native_available():
            raise ParamError("event_kernel", "the native kernel cannot be built here (no C++ compiler, or not a CPU)",
                             "use event_kernel=auto or brainevent")
    limit = int(params["memory_limit_gb"] * GB) or None
    record = _record_bytes(params["n"], params["duration_ms"], params["max_chunk_steps"])
    args = (params["seed"], params["duration_ms"])
    if params["preset"] == "coba":
        from diffbrain.network import coba

        cfg = coba_config(params)
        est = coba.memory_estimate(cfg, record)
        layout, share = layout_of(params, ctx, est, limit, f"the coba network of n={cfg.n}")
        if layout.kind == "neurons":
            from diffbrain.network.simulate_parallel import simulate_coba_neurons

            rec = simulate_coba_neurons(cfg, *args, layout, params["max_chunk_steps"], native, ctx.report)
        else:
            rec = coba.simulate(cfg, *args, params["max_chunk_steps"], native, ctx.report)
    else:
        from diffbrain.network.simulate import gif_memory_estimate

        cfg = gif_config(params)
        est = gif_memory_estimate(cfg, params["n_input"])
        layout, share = layout_of(params, ctx, est, limit, f"the gif network of n={cfg.n_rec}")
        drive = GifDrive(params["n_input"], params["input_rate"])
        if layout.kind == "neurons":
            from diffbrain.network.simulate_parallel import simulate_gif_neurons

            rec = simulate_gif_neurons(cfg, drive, *args, layout, params["max_chunk_steps"], ctx.report, native)
        else:
            rec = simulate_gif(cfg, drive, *args, params["max_chunk_steps"], ctx.report, native)
    return to_dataset(rec, params, layout, share.total, device_peak_bytes(layout.devices))


def to_dataset(rec, params: dict, layout=None, device_bytes: int = -1, peak_bytes: float = float("nan")) -> xr.Dataset:
    """The ``simulate-network`` dataset of docs/store-format.md from a :class:`SimulationRecord` run on ``layout``
    (None: one device, not recorded), with one device's estimated bytes and the devices' measured peak."""
    import numpy as np
    import xarray as xr

    from diffbrain.context import peak_rss_bytes
    from diffbrain.network.simulate import cv_isi, firing_rates, population_rate

    rates, cv = firing_rates(rec), cv_isi(rec)
    exc = rec.is_excitatory.astype(bool)
    bins, pop = population_rate(rec, params["rate_bin_ms"])
    scalar = lambda value, units, dtype=np.float64: ((), np.asarray(value, dtype=dtype), {"units": units})
    mean = lambda a: float(a.mean()) if a.size else float("nan")
    data = {
        "spike_time": (("spike",), rec.spike_step, {"units": "1", "long_name": "time-step index"}),
        "spike_neuron": (("spike",), rec.spike_neuron, {"units": "1"}),
        "population_rate": (("rate_time",), pop, {"units": "Hz", "long_name": "spikes per neuron per second"}),
        "firing_rate": (("neuron",), rates, {"units": "Hz"}),
        "cv_isi": (("neuron",), cv, {"units": "1", "long_name": "ISI coefficient of variation (NaN: < 3 spikes)"}),
        "is_excitatory": (("neuron",), exc),
        "mean_rate": scalar(mean(rates), "Hz"),
        "mean_rate_exc": scalar(mean(rates[exc]), "Hz"),
        "mean_rate_inh": scalar(mean(rates[~exc]), "Hz"),
        "mean_cv_isi": scalar(float(np.nanmean(cv)) if np.isfinite(cv).any() else float("nan"), "1"),
        "build_seconds": scalar(rec.build_seconds, "s"),
        "compile_seconds": scalar(rec.compile_seconds, "s"),
        "run_seconds": scalar(rec.run_seconds, "s"),
        "seconds_per_sim_second": scalar(rec.seconds_per_sim_second, "s"),
        "n_synapses": scalar(rec.n_synapses, "1", np.int64),
        "estimated_bytes": scalar(rec.memory.total, "bytes", np.int64),
        "structure_bytes": scalar(rec.structure_bytes, "bytes", np.int64),
        "state_bytes": scalar(rec.state_bytes, "bytes", np.int64),
        "temp_bytes": scalar(rec.temp_bytes, "bytes", np.int64),
        "argument_bytes": scalar(rec.argument_bytes, "bytes", np.int64),
        "output_bytes": scalar(rec.output_bytes, "bytes", np.int64),
        "peak_rss_bytes": scalar(peak_rss_bytes(), "bytes", np.int64),
        "estimated_device_bytes": scalar(device_bytes, "bytes", np.int64),
        "device_peak_bytes": scalar(peak_bytes, "bytes"),
        "dt": scalar(rec.dt, "ms"),
        "n_steps": scalar(rec.n_steps, "1", np.int64),
    }
    coords = {
        "neuron": ("neuron", np.arange(rec.n_neurons, dtype=np.int64)),
        "rate_time": ("rate_time", bins, {"units": "ms"}),
    }
    attrs = {"preset": params["preset"], "conn_method": params["conn_method"], "n": int(params["n"]),
             "event_kernel": rec.event_kernel, **{k: str(v) for k, v in rec.info.items()}}
    if layout is not None:
        from diffbrain.network.parallel import device_record

        attrs.update(device_record(layout))
    return xr.Dataset(data, coords=coords, attrs=attrs)


EXPERIMENT = Experiment(
    name="simulate-network",
    params=PARAMS,
    run=run,
    help="Simulate a spiking network (COBA benchmark or the paper's E/I GIF network): spikes, rates, CV, time, memory.",
    fresh_process=True,
    must_be_finite=("mean_rate", "seconds_per_sim_second"),
)
