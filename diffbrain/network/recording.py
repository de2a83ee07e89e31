"""What a run records: test trials with spikes as events, firing rates, membrane traces, weight histograms.

Spikes leave the device as a dense raster of the few recorded trials only and are stored as events
(time index, neuron index, per-trial offsets), never as rasters. Weight histograms count the
effective recurrent conductances ``|w|`` on fixed bins chosen before training, separately for
excitatory and inhibitory presynaptic neurons.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import brainstate
import brainunit as u
import jax
import jax.numpy as jnp
import numpy as np

from diffbrain.network.model import EINetwork
from diffbrain.network.task import EvidenceTask, accuracy, step_loss
from diffbrain.network.training import CompiledProgram


@dataclass
class SimResult:
    """Fresh test trials run without learning."""

    loss: float
    accuracy: float
    raster: np.ndarray  # bool [T, recorded trials, n_rec]
    v_trace: np.ndarray  # mV [T, recorded neurons], first recorded trial
    v_neurons: np.ndarray  # int indices of the traced neurons
    outputs: np.ndarray  # [T, recorded trials, 2] readout of the recorded trials


class Simulator:
    """Fresh test trials without learning, compiled once; weights are read from the model at call time."""

    def __init__(self, model: EINetwork, task: EvidenceTask, batch: int, record_trials: int, record_neurons: int):
        self.model, self.task, self.batch = model, task, batch
        self.record_trials = min(record_trials, batch)
        self.v_idx = np.unique(np.linspace(0, model.n_rec - 1, max(record_neurons, 0)).astype(int))
        self._run = CompiledProgram(self._simulate)

    def _simulate(self, key):
        model, task, r = self.model, self.task, self.record_trials
        trials = task.trials(key, self.batch)
        labels = trials.labels
        brainstate.nn.init_all_states(model, batch_size=self.batch)

        def step(t):
            out = model(task.inputs_at(trials, t))
            return out, model.spikes()[:r] > 0, model.V.value[0, self.v_idx].to_decimal(u.mV)

        outs, spikes, v = brainstate.transform.for_loop(step, jnp.arange(task.n_steps))
        recall = outs[task.recall_start:]
        loss = jnp.mean(jax.vmap(step_loss, in_axes=(0, None))(recall, labels))
        return loss, accuracy(recall, labels), spikes, v, outs[:, :r]

    def compile(self):
        """Compile now; returns :class:`~diffbrain.network.training.CompileStats` of the simulation."""
        return self._run.compile(jax.random.PRNGKey(0))

    def __call__(self, key) -> SimResult:
        loss, acc, spikes, v, outs = self._run(key)
        return SimResult(float(loss), float(acc), np.asarray(spikes), np.asarray(v, dtype=np.float32), self.v_idx,
                         np.asarray(outs, dtype=np.float32))


def spike_events(raster: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Events of a raster ``[T, trials, N]``: int32 time, int32 neuron, int64 offsets (len trials + 1)."""
    times, neurons, offsets = [], [], [0]
    for k in range(raster.shape[1]):
        t, n = np.nonzero(raster[:, k])
        times.append(t.astype(np.int32))
        neurons.append(n.astype(np.int32))
        offsets.append(offsets[-1] + t.size)
    cat = lambda parts: np.concatenate(parts) if parts else np.zeros(0, np.int32)
    return cat(times), cat(neurons), np.asarray(offsets, dtype=np.int64)


def firing_rates(raster: np.ndarray, dt_ms: float) -> np.ndarray:
    """Mean rate per neuron (Hz) over the recorded trials."""
    return (raster.mean(axis=(0, 1)) * 1000.0 / dt_ms).astype(np.float32)


@dataclass
class WeightRecorder:
    """Fixed-bin histograms of the effective recurrent weights at chosen iterations.

    Bins: ``bins`` equal bins over ``[0, 2 x the initial largest weight]``; larger values are counted in
    the last bin so every synapse is counted. "Small" means below 1% of the population's initial mean.
    """

    edges: np.ndarray
    small_exc: float
    small_inh: float
    iterations: list[int] = field(default_factory=list)
    hist_exc: list[np.ndarray] = field(default_factory=list)
    hist_inh: list[np.ndarray] = field(default_factory=list)
    mean_exc: list[float] = field(default_factory=list)
    mean_inh: list[float] = field(default_factory=list)
    frac_small_exc: list[float] = field(default_factory=list)
    frac_small_inh: list[float] = field(default_factory=list)

    @classmethod
    def for_model(cls, model: EINetwork, bins: int) -> WeightRecorder:
        exc, inh = model.effective_recurrent()
        top = 2.0 * float(max(exc.max(initial=0.0), inh.max(initial=0.0), 1e-12))
        return cls(np.linspace(0.0, top, bins + 1).astype(np.float32),
                   0.01 * float(exc.mean()), 0.01 * float(inh.mean()))

    def _hist(self, w: np.ndarray) -> np.ndarray:
        return np.histogram(np.minimum(w, self.edges[-1]), bins=self.edges)[0].astype(np.int64)

    def snapshot(self, iteration: int, model: EINetwork) -> None:
        exc, inh = model.effective_recurrent()
        if self.iterations and self.iterations[-1] == iteration:
            return
        self.iterations.append(int(iteration))
        self.hist_exc.append(self._hist(exc))
        self.hist_inh.append(self._hist(inh))
        self.mean_exc.append(float(exc.mean()))
        self.mean_inh.append(float(inh.mean()))
        self.frac_small_exc.append(float(np.mean(exc < self.small_exc)))
        self.frac_small_inh.append(float(np.mean(inh < self.small_inh)))

    def to_arrays(self) -> dict[str, np.ndarray]:
        return {
            "iterations": np.asarray(self.iterations, dtype=np.int64),
            "hist_exc": np.asarray(self.hist_exc, dtype=np.int64).reshape(-1, len(self.edges) - 1),
            "hist_inh": np.asarray(self.hist_inh, dtype=np.int64).reshape(-1, len(self.edges) - 1),
            "mean_exc": np.asarray(self.mean_exc, dtype=np.float32),
            "mean_inh": np.asarray(self.mean_inh, dtype=np.float32),
            "frac_small_exc": np.asarray(self.frac_small_exc, dtype=np.float32),
            "frac_small_inh": np.asarray(self.frac_small_inh, dtype=np.float32),
        }

    def restore(self, arrays: dict) -> None:
        """Continue from a checkpoint's snapshots (``to_arrays`` output)."""
        self.iterations = [int(i) for i in arrays["iterations"]]
        self.hist_exc = list(arrays["hist_exc"])
        self.hist_inh = list(arrays["hist_inh"])
        for name in ("mean_exc", "mean_inh", "frac_small_exc", "frac_small_inh"):
            setattr(self, name, [float(v) for v in arrays[name]])
