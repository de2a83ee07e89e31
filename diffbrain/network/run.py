"""A whole ``train-network`` run: train (or only simulate), checkpoint and record (plain NumPy records).

The loop resumes from ``<checkpoint_dir>/train-network.npz`` when it exists and was written by the
same configuration; the stored history makes the resumed run's loss trajectory identical to an
uninterrupted one (batches come from ``fold_in(key, iteration)``; the optimiser state is restored).
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import jax
import numpy as np

from diffbrain.context import RunContext
from diffbrain.errors import BadInput
from diffbrain.network import checkpoint as ckpt_io
from diffbrain.network.config import (
    NETWORK_PARAMS,
    PER_METHOD,
    NetworkConfig,
    TaskConfig,
    TrainConfig,
    fingerprint,
    resolve_training,
)
from diffbrain.network.device_fit import analytic_need, layout_estimate, step_fit
from diffbrain.network.memory import MemoryEstimate, ensure_fits, network_estimate
from diffbrain.network.parallel import (
    Layout,
    MemoryFit,
    choose_layout,
    device_peak_bytes,
    device_record,
)
from diffbrain.network.planner import planned_bytes, training_shape
from diffbrain.network.recording import Simulator, WeightRecorder
from diffbrain.network.training import TEST_STREAM, CompileStats, Trainer, data_key
from diffbrain.params import ParamError

# parameters that do not change the training trajectory (excluded from the resume fingerprint)
# (nor the devices: a data-parallel step equals one device's up to float rounding, so a requeued point may
# resume on another node's GPUs)
_NOT_TRAJECTORY = ("checkpoint_every", "test_batch", "record_trials", "record_neurons", "parallel", "devices")
_HISTORY = ("loss", "accuracy", "grad_norm", "step_seconds")
PROJECTIONS = ("ff", "exc", "inh", "readout")
# the gradient-check history: iteration, then cosine and norm ratio per projection (1-D, for checkpoints)
_CHECKS = ("iteration",) + tuple(f"{stat}_{p}" for stat in ("cosine", "norm_ratio") for p in PROJECTIONS)


def run_fingerprints(params: dict) -> tuple[str, str]:
    """(full configuration, network only) fingerprints of validated parameters; per-method defaults are
    resolved first, so leaving a parameter to the method's default and giving that value are one run."""
    full = {k: v for k, v in resolve_training(params).items() if k not in _NOT_TRAJECTORY}
    network = {p.name: params[p.name] for p in NETWORK_PARAMS}
    network.update(n_per_group=params["n_per_group"], seed=params["seed"])
    return fingerprint(full), fingerprint(network)


@dataclass
class RunRecord:
    """Everything the dataset is built from (plain NumPy and numbers)."""

    params: dict
    history: dict[str, np.ndarray]
    snapshots: dict[str, np.ndarray]
    bin_edges: np.ndarray
    compile: CompileStats
    test_loss: float
    test_accuracy: float
    raster: np.ndarray
    v_trace: np.ndarray
    v_neurons: np.ndarray
    is_excitatory: np.ndarray
    dt: float
    n_steps: int
    training: dict  # the optimiser settings the run used (per-method defaults resolved)
    defaults_used: tuple[str, ...]  # which of them came from the method's defaults
    grad_checks: dict[str, np.ndarray]  # _CHECKS -> values, one per check
    resumed_from: int = 0
    memory: dict | None = None  # bytes: estimate (before building), structure and states as built
    devices: dict | None = None  # the layout, device count and kind (parallel.device_record)
    connectome: dict | None = None  # conn_method = "connectome": connectome_records.connectome_record


def _restore(trainer: Trainer, recorder: WeightRecorder, ck: ckpt_io.Checkpoint, history: dict,
             checks: dict) -> None:
    try:
        trainer.set_weights(ck.weights)
        trainer.set_optimizer_leaves(ck.optimizer)
    except (KeyError, ValueError) as exc:
        raise BadInput("checkpoint", f"its arrays do not fit this configuration ({exc})",
                       "delete the checkpoint or use another checkpoint directory") from None
    trainer.train_key = jax.numpy.asarray(ck.rng_key)
    for name in _HISTORY:
        history[name] = [float(v) for v in ck.history.get(name, [])][: ck.iteration]
    kept = [float(v) < ck.iteration for v in ck.history.get("check_iteration", [])]
    for name in _CHECKS:
        checks[name] = [float(v) for v, keep in zip(ck.history.get(f"check_{name}", []), kept, strict=False) if keep]
    if ck.snapshots:
        recorder.restore(ck.snapshots)


def _save(path: Path, trainer: Trainer, recorder: WeightRecorder, params: dict, fps: tuple[str, str],
          iteration: int, history: dict, checks: dict) -> None:
    ckpt_io.save(path, ckpt_io.Checkpoint(
        params=params, fingerprint=fps[0], network_fingerprint=fps[1], iteration=iteration,
        weights=trainer.weights(), optimizer=trainer.optimizer_leaves(), rng_key=np.asarray(trainer.train_key),
        history={**{k: np.asarray(v, dtype=np.float64) for k, v in history.items()},
                 **{f"check_{k}": np.asarray(v, dtype=np.float64) for k, v in checks.items()}},
        snapshots=recorder.to_arrays()))


def _check(trainer: Trainer, iteration: int, checks: dict) -> None:
    """Record the method's gradient against BPTT's on this iteration's batch (before its update)."""
    stats = trainer.gradient_check(iteration)
    checks["iteration"].append(float(iteration))
    for stat in ("cosine", "norm_ratio"):
        for p in PROJECTIONS:
            checks[f"{stat}_{p}"].append(stats[p][stat])


@dataclass(frozen=True)
class RunPlan:
    """A run's layout and its memory figures: ``estimate`` (the whole run, analytic), ``share`` (one device's
    share of it, analytic), ``fit`` (what the layout was checked against; None for a simulation)."""

    layout: Layout
    estimate: MemoryEstimate
    share: MemoryEstimate
    fit: MemoryFit | None = None

    def record(self) -> dict:
        """The fit check's figures for the point's memory record: what it compared, and the limit (NaN unknown)."""
        if self.fit is None:  # a simulation: checked by the analytic estimate alone (ensure_fits)
            return {"checked_device_bytes": float("nan"), "device_limit_bytes": float("nan")}
        n = self.layout.n_devices
        limit = self.fit.limit(n)
        return {"checked_device_bytes": float(self.fit.need(self.layout.kind, n)),
                "device_limit_bytes": float("nan") if limit is None else float(limit)}


def plan_run(params: dict, available: Sequence) -> RunPlan:
    """The layout of a run of validated ``params`` on ``available`` devices and its memory check: the host's
    memory by the analytic estimate (:func:`ensure_fits`), and for training a layout whose bytes per device fit a
    device (:func:`choose_layout` with :func:`diffbrain.network.device_fit.step_fit`: the planner's cached fit of
    the point's family, else the analytic estimate: the rule ``sweep plan`` applies). BadInput / ParamError
    (``n_rec`` when nothing fits, ``parallel`` when the asked layout does not) otherwise."""
    net_cfg, task_cfg = NetworkConfig.from_params(params), TaskConfig.from_params(params)
    training = params["mode"] == "train"
    method = params["method"] if training else "simulation"
    n_steps = task_cfg.n_steps(net_cfg.dt)
    batch = params["batch_size"] if training else 1
    generated = params["conn_method"] != "connectome"
    if params["parallel"] == "neurons" and not generated:
        raise ParamError("parallel", "the neuron layout splits generated networks, not a connectome's wiring",
                         "use parallel data or none for conn_method connectome")
    estimate = network_estimate(net_cfg, task_cfg.n_in, 2, method, max(batch, params["test_batch"]), n_steps)
    what = f"the network of n_rec={net_cfg.n_rec} ({net_cfg.conn_method})"
    ensure_fits(estimate, field="n_rec", what=what, check_device=not training)  # a training step's: below
    fit = None
    if training:
        need = analytic_need(net_cfg, task_cfg.n_in, method, batch, n_steps, params["test_batch"])
        fit = step_fit(training_shape(params), need, available)
    layout = choose_layout(params["parallel"], params["devices"], available, batch, params["n_rec"],
                           params["method"], memory=fit, generated=generated)
    share = estimate if not training else layout_estimate(net_cfg, task_cfg.n_in, method, batch, n_steps,
                                                          params["test_batch"], layout.kind, layout.n_devices)
    return RunPlan(layout, estimate, share, fit)


def check_fits(params: dict, available: Sequence | None = None) -> RunPlan:
    """:func:`plan_run` on ``available`` devices (None: every device this process sees): what the command line
    checks before it creates ``--out``."""
    return plan_run(params, list(available) if available is not None else jax.devices())


def run_network(params: dict, ctx: RunContext) -> RunRecord:
    """Train (``mode=train``) or simulate (``mode=sim``) one configuration; validated ``params``."""
    net_cfg, task_cfg = NetworkConfig.from_params(params), TaskConfig.from_params(params)
    train_cfg = TrainConfig.from_params(params)
    training = params["mode"] == "train"
    fps = run_fingerprints(params)
    plan = plan_run(params, list(ctx.devices) or jax.devices())
    layout, estimate, share = plan.layout, plan.estimate, plan.share
    trainer = Trainer(net_cfg, task_cfg, train_cfg, seed=params["seed"], layout=layout)
    recorder = WeightRecorder.for_model(trainer.model, params["hist_bins"])
    history: dict[str, list[float]] = {k: [] for k in _HISTORY}
    checks: dict[str, list[float]] = {k: [] for k in _CHECKS}
    check_every = train_cfg.grad_check_every if train_cfg.method != "bptt" else 0  # BPTT is the reference

    if params["load_checkpoint"]:
        source = Path(params["load_checkpoint"])
        ck = ckpt_io.load(source, "load_checkpoint")
        ckpt_io.check_matches(ck, params, fps[0], source, True, fps[1], "load_checkpoint")
        trainer.set_weights(ck.weights)
    # a connectome's per-synapse weights before training (as initialised or loaded; taken before a resume)
    model = trainer.model
    before = np.concatenate(model.effective_recurrent()) if model.wiring is not None else None

    path = Path(ctx.checkpoint_dir) / ckpt_io.FILENAME if ctx.checkpoint_dir and training else None
    start = 0
    if path is not None and path.exists():
        ck = ckpt_io.load(path)
        ckpt_io.check_matches(ck, params, fps[0], path, False, fps[1])
        _restore(trainer, recorder, ck, history, checks)
        start = ck.iteration
    if not recorder.iterations:
        recorder.snapshot(0, trainer.model)

    iterations = train_cfg.iterations if training else 0
    simulate = Simulator(trainer.model, trainer.task, params["test_batch"], params["record_trials"],
                         params["record_neurons"])
    stats = trainer.compile() if training else simulate.compile()  # the step's figures, also when resumed at the end
    for it in range(start, iterations):
        if check_every and it % check_every == 0:
            _check(trainer, it, checks)
        t0 = time.perf_counter()
        loss, acc, norm = trainer.step(it)
        seconds = time.perf_counter() - t0
        for name, value in zip(_HISTORY, (loss, acc, norm, seconds), strict=True):
            history[name].append(value)
        done = it + 1
        if done % params["snapshot_every"] == 0:
            recorder.snapshot(done, trainer.synced_model())
        if path is not None and ctx.writes_checkpoints and (done % params["checkpoint_every"] == 0
                                                             or done == iterations):
            _save(path, trainer, recorder, params, fps, done, history, checks)
        ctx.report(done / max(iterations, 1), f"iteration {done}/{iterations}: loss {loss:.4f}, accuracy {acc:.3f}")
        if not math.isfinite(loss):
            for name in _HISTORY:  # a diverged run: stop, keep the shapes (the runner marks it failed)
                history[name].extend([math.nan] * (iterations - done))
            break
    if training:
        recorder.snapshot(iterations, trainer.synced_model())

    if trainer.layout is not None:  # the final test runs on one device: the weights leave the mesh (else every
        model.set_weights(trainer.weights())  # device of it would repeat the whole test)
    sim = simulate(data_key(params["seed"], TEST_STREAM))
    resolved = resolve_training(params)
    connectome = None
    if before is not None:
        from diffbrain.network.connectome_records import connectome_record
        from diffbrain.network.recording import firing_rates

        after = np.concatenate(model.effective_recurrent())
        connectome = connectome_record(model.wiring, before, after, firing_rates(sim.raster, net_cfg.dt),
                                       params["hist_bins"], params["transmitter_signs"])
    return RunRecord(
        params=params,
        history={k: np.asarray(v, dtype=np.float32) for k, v in history.items()},
        snapshots=recorder.to_arrays(), bin_edges=recorder.edges, compile=stats,
        test_loss=sim.loss, test_accuracy=sim.accuracy, raster=sim.raster, v_trace=sim.v_trace,
        v_neurons=sim.v_neurons, is_excitatory=trainer.model.is_excitatory(), dt=net_cfg.dt,
        n_steps=trainer.task.n_steps, training={k: resolved[k] for k in PER_METHOD},
        defaults_used=tuple(k for k in PER_METHOD if params.get(k) is None),
        grad_checks={k: np.asarray(v, dtype=np.float32) for k, v in checks.items()}, resumed_from=start,
        memory={"estimated_bytes": estimate.total, "estimated_device_bytes": share.total,
                # the memory planner's bytes per device for this layout (sweep plan's; NaN if never planned)
                "planned_device_bytes": planned_bytes(training_shape(params), layout.kind, layout.n_devices),
                # the figure the fit check compared (from device_bytes_source) and a device's limit
                **plan.record(),
                "device_peak_bytes": device_peak_bytes(layout.devices),
                "structure_bytes": trainer.model.structure_bytes(),
                "state_bytes": 5 * 4 * net_cfg.n_rec * max(train_cfg.batch_size, params["test_batch"])},
        devices={**device_record(layout), "device_bytes_source": plan.fit.source if plan.fit else "analytic"},
        connectome=connectome,
    )
