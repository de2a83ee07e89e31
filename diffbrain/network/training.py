"""One training configuration: the network, the task, Adam with a schedule, and one compiled step.

The whole iteration — sampling a fresh batch from ``fold_in(key, iteration)``, the gradient (BPTT,
D-RTRL or ES-D-RTRL), L1/L2, clipping and the Adam update — is one jitted program, compiled once per
configuration and reused for every iteration. Batches depend only on the seed and the iteration,
so a resumed run sees the same batches as an uninterrupted one.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import brainstate
import jax
import jax.numpy as jnp
import numpy as np
import optax

from diffbrain.network.config import NetworkConfig, TaskConfig, TrainConfig
from diffbrain.network.gradients import Inputs, bptt_gradients, compare, gradients
from diffbrain.network.memory import compiled_bytes
from diffbrain.network.model import EINetwork
from diffbrain.network.parallel import Layout, data_parallel, mesh_of
from diffbrain.network.task import EvidenceTask, Trials, accuracy

TRAIN_STREAM, TEST_STREAM = 1, 2


def learning_rate(cfg: TrainConfig) -> optax.Schedule:
    """Linear warm-up to ``lr`` over ``warmup`` iterations, then constant, exponential or cosine decay."""
    if cfg.lr_schedule == "exponential":
        after = optax.exponential_decay(cfg.lr, cfg.lr_decay_steps, cfg.lr_decay)
    elif cfg.lr_schedule == "cosine":
        after = optax.cosine_decay_schedule(cfg.lr, max(1, cfg.iterations - cfg.warmup))
    else:
        after = optax.constant_schedule(cfg.lr)
    if cfg.warmup <= 0:
        return after
    warm = optax.linear_schedule(cfg.lr / cfg.warmup, cfg.lr, max(cfg.warmup - 1, 1))  # lr (i+1)/warmup
    return optax.join_schedules([warm, after], [cfg.warmup])


def make_optimizer(cfg: TrainConfig) -> optax.GradientTransformation:
    """Gradient-norm clipping (if ``clip_norm`` > 0), then Adam with the schedule; the readout's steps are
    scaled by ``readout_lr_scale`` (Adam's step is proportional to its rate, so this is the readout's rate)."""
    parts = [optax.clip_by_global_norm(cfg.clip_norm)] if cfg.clip_norm > 0 else []
    parts.append(optax.adam(learning_rate(cfg)))
    if cfg.readout_lr_scale != 1.0:
        parts.append(optax.masked(optax.scale(cfg.readout_lr_scale), lambda p: {k: k == "readout" for k in p}))
    return optax.chain(*parts)


def regularized(grads: dict, weights: dict, l1: float, l2: float) -> dict:
    """Add the gradient of ``l1 * sum|w| + l2/2 * sum w^2`` (on the stored magnitudes) to ``grads``."""
    if l1 <= 0 and l2 <= 0:
        return grads
    return {k: g + l2 * weights[k] + l1 * jnp.sign(weights[k]) for k, g in grads.items()}


@dataclass(frozen=True)
class CompileStats:
    seconds: float
    temp_bytes: int
    argument_bytes: int
    output_bytes: int


class CompiledProgram:
    """A brainstate-jitted function compiled exactly once, for one argument signature.

    The ahead-of-time executable is kept and called directly (brainstate's state values threaded in and
    written back as ``brainstate.transform.jit`` does), so the program is compiled once and the memory
    analysis describes the very executable that runs. ``stats``: compile seconds and XLA's memory
    analysis (-1 where not reported). The first call may still pay one-time costs outside XLA (numba
    kernels of brainevent's event-driven operators are compiled on first use).
    """

    def __init__(self, fun):
        self.jitted = brainstate.transform.jit(fun)
        self.executable = None
        self.stats: CompileStats | None = None

    def compile(self, *args) -> CompileStats:
        if self.stats is None:
            start = time.perf_counter()
            trace = self.jitted.stateful_fun.get_state_trace(*args, compile_if_miss=True)
            lowered = self.jitted.jitted_fun.lower(trace.get_state_values(), *args)
            self.executable = lowered.compile()
            self.stats = CompileStats(time.perf_counter() - start, *compiled_bytes(self.executable))
        return self.stats

    def __call__(self, *args):
        self.compile(*args)
        trace = self.jitted.stateful_fun.get_state_trace(*args, compile_if_miss=True)
        read = trace.get_read_state_values(True)
        written, outs = self.executable(trace.get_state_values(), *args)
        trace.assign_state_vals_v2(read, written)
        return outs


def data_key(seed: int, stream: int) -> jax.Array:
    return jax.random.fold_in(jax.random.PRNGKey(seed), stream)


class Trainer:
    """The model, its optimiser state and the compiled training step of one configuration.

    ``layout`` (:mod:`diffbrain.network.parallel`): ``data`` splits each batch's trials across its devices
    inside the step (same batches, same loss and gradients as one device up to float rounding); ``neurons``
    splits the neurons (:mod:`diffbrain.network.neuron_parallel`: the step trains ``shards``, whose weights
    are blocks on the devices; ``model`` keeps the one-device network, brought up to date by
    :meth:`synced_model`); None or ``none``: one device.
    """

    def __init__(self, net_cfg: NetworkConfig, task_cfg: TaskConfig, train_cfg: TrainConfig, seed: int = 0,
                 layout: Layout | None = None):
        self.net_cfg, self.task_cfg, self.train_cfg, self.seed = net_cfg, task_cfg, train_cfg, seed
        self.layout = layout if layout is not None and layout.kind in ("data", "neurons") else None
        self.task = EvidenceTask(task_cfg, net_cfg.dt)
        self.model = EINetwork(net_cfg, self.task.n_in, self.task.n_out, seed=seed,
                               online=train_cfg.method != "bptt", method=train_cfg.method)
        self.shards = None  # the neuron layout's network (blocks on the devices), else None
        self._sharded = None
        if self.layout is not None and self.layout.kind == "neurons":
            from diffbrain.network.neuron_parallel import NeuronShardNetwork, neuron_gradients

            self.shards = NeuronShardNetwork(self.model, self.layout, train_cfg.method)
            self._sharded = neuron_gradients(self.shards, self._local_gradients, 3)
        elif self.layout is not None:
            self._sharded = data_parallel(self._local_gradients, self.layout, 3)
        self.trained = self.shards or self.model  # the network the step updates
        self.optimizer = make_optimizer(train_cfg)
        self.opt_state = brainstate.State(self.optimizer.init(self.trained.weight_values()))
        self.train_key = data_key(seed, TRAIN_STREAM)
        self._step = CompiledProgram(self._train_step)
        self._check = CompiledProgram(self._check_gradients)
        self._replicate()

    def _replicate(self) -> None:
        """Data layout: the weights and the optimiser state live replicated on the layout's devices from the
        start, so every compiled program (the step, the gradient check) is compiled for, and called with, one
        placement (an executable compiled for one device refuses arrays on the mesh)."""
        if self.layout is None or self.shards is not None:
            return
        from jax.sharding import NamedSharding, PartitionSpec

        replicated = NamedSharding(mesh_of(self.layout), PartitionSpec())
        for state in self.model.weight_states().values():
            state.value = jax.device_put(state.value, replicated)
        self.opt_state.value = jax.device_put(self.opt_state.value, replicated)

    # -- the compiled step ------------------------------------------------------------------------

    def _batch(self, iteration):
        trials = self._trials(iteration)
        return Inputs(lambda t: self.task.inputs_at(trials, t), self.task.n_steps), trials.labels

    def _trials(self, iteration) -> Trials:
        return self.task.trials(jax.random.fold_in(self.train_key, iteration), self.train_cfg.batch_size)

    def _local_gradients(self, *trials):
        """The method's gradients on a batch of trials (the whole batch, or one device's share of it)."""
        cfg = self.train_cfg
        trials = Trials(*trials)
        inputs = Inputs(lambda t: self.task.inputs_at(trials, t), self.task.n_steps)
        return gradients(self.trained, cfg.method, inputs, trials.labels, self.task.recall_start, cfg.etrace_decay,
                         cfg.remat)

    def _train_step(self, iteration):
        cfg = self.train_cfg
        trials = self._trials(iteration)  # drawn whole, so every layout trains on the same trials
        labels = trials.labels
        grads, losses, recall = (self._sharded or self._local_gradients)(*trials)
        weights = self.trained.weight_values()
        grads = regularized(grads, weights, cfg.l1, cfg.l2)
        grad_norm = optax.global_norm(grads)
        updates, self.opt_state.value = self.optimizer.update(grads, self.opt_state.value, weights)
        self.trained.set_weights(optax.apply_updates(weights, updates))
        return jnp.mean(losses), accuracy(recall, labels), grad_norm

    def step(self, iteration: int) -> tuple[float, float, float]:
        """Run one iteration (batch ``iteration`` of the seed's stream); returns loss, accuracy, grad norm."""
        loss, acc, norm = self._step(jnp.asarray(iteration, dtype=jnp.int32))
        return float(loss), float(acc), float(norm)

    def compile(self) -> CompileStats:
        """Compile the step now (once); returns the compile time and XLA's memory analysis of it."""
        return self._step.compile(jnp.asarray(0, dtype=jnp.int32))

    def batch_gradients(self, iteration: int) -> tuple[dict[str, np.ndarray], float]:
        """The method's gradients and mean loss on batch ``iteration`` at the current weights, computed as the
        step computes them (under the trainer's layout); nothing is updated."""
        fn = self._sharded or self._local_gradients
        grads, losses, _ = brainstate.transform.jit(lambda it: fn(*self._trials(it)))(
            jnp.asarray(iteration, dtype=jnp.int32))
        return {k: np.asarray(v) for k, v in grads.items()}, float(jnp.mean(losses))

    # -- gradient check against BPTT -----------------------------------------------------------------

    def _check_gradients(self, iteration):
        cfg = self.train_cfg
        inputs, labels = self._batch(iteration)
        reference = bptt_gradients(self.model, inputs, labels, self.task.recall_start, cfg.remat)[0]
        estimate = gradients(self.model, cfg.method, inputs, labels, self.task.recall_start, cfg.etrace_decay)[0]
        return reference, estimate

    def gradient_check(self, iteration: int) -> dict[str, dict[str, float]]:
        """Per projection (``ff``, ``exc``, ``inh``, ``readout``): cosine and norm ratio of this method's
        gradient against BPTT's, on batch ``iteration`` at the current weights (nothing is updated)."""
        self.synced_model()
        reference, estimate = self._check(jnp.asarray(iteration, dtype=jnp.int32))
        split = self.model.split_named
        return compare(split(reference), split(estimate))

    # -- state for checkpoints --------------------------------------------------------------------

    def weights(self) -> dict[str, np.ndarray]:
        """The trained weights in the one-device model's format (host copies)."""
        if self.shards is not None:
            return self.shards.to_base(self.shards.weight_values(), self.model)
        return {k: np.asarray(v) for k, v in self.model.weight_values().items()}

    def set_weights(self, values: dict) -> None:
        self.model.set_weights(values)
        if self.shards is not None:
            self.shards.set_weights(self.shards.from_base(values, self.model))
        self._replicate()

    def synced_model(self) -> EINetwork:
        """The one-device network with the trained weights (the neuron layout trains blocks on the devices)."""
        if self.shards is not None:
            self.model.set_weights(self.weights())
        return self.model

    def _per_weight(self, tree, convert):
        """``tree`` (the optimiser state) with ``convert`` applied to every per-weight dict in it."""
        names = set(self.model.weight_states())
        is_weights = lambda x: isinstance(x, dict) and set(x) == names  # noqa: E731
        return jax.tree.map(lambda x: convert(x) if is_weights(x) else x, tree, is_leaf=is_weights)

    def optimizer_leaves(self) -> list[np.ndarray]:
        """The optimiser state's leaves, per-weight ones in the one-device model's format."""
        state = self.opt_state.value
        if self.shards is not None:
            state = self._per_weight(state, lambda d: self.shards.to_base(d, self.model))
        return [np.asarray(leaf) for leaf in jax.tree.leaves(state)]

    def set_optimizer_leaves(self, leaves: list) -> None:
        state = self.opt_state.value
        if self.shards is not None:
            state = self._per_weight(state, lambda d: self.shards.to_base(d, self.model))
        treedef = jax.tree.structure(state)
        current = jax.tree.leaves(state)
        if len(leaves) != len(current) or any(np.shape(a) != np.shape(b) for a, b in zip(leaves, current, strict=True)):
            raise ValueError("optimizer state does not match this configuration")
        state = jax.tree.unflatten(treedef, [jnp.asarray(a, dtype=b.dtype)
                                             for a, b in zip(leaves, current, strict=True)])
        if self.shards is not None:
            state = self._per_weight(state, lambda d: self.shards.from_base(d, self.model))
        self.opt_state.value = state
        self._replicate()
