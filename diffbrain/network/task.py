"""Evidence accumulation (Morcos & Harvey 2016), as in the brainscale paper, generated in JAX from keys.

Four input groups of ``n_per_group`` Poisson neurons: left cue, right cue, recall cue, background
noise. A trial shows ``num_cue`` cues (each preceded by ``t_interval`` of silence), each on the left
or the right; the majority side is the label (1 = left). After ``t_delay`` the recall group fires for
``t_recall``; the loss and the accuracy use the recall period only. Trials depend on the key alone:
same key, same batch. Inputs are plain float arrays (0/1), time-major ``[T, B, n_in]``; the spikes of
step ``t`` depend only on the trial's key and ``t``, so training loops generate them step by step.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import jax
import jax.numpy as jnp

from diffbrain.network.config import TaskConfig


class Trials(NamedTuple):
    """A batch of trials: cue sides ``[B, num_cue]`` (True = left), labels ``[B]``, spike keys ``[B, ...]``."""

    cue_left: jax.Array
    labels: jax.Array
    spike_keys: jax.Array


@dataclass(frozen=True)
class EvidenceTask:
    """A sampler for one configuration; ``sample(key, batch)`` is pure and jit-friendly."""

    config: TaskConfig
    dt: float

    @property
    def n_in(self) -> int:
        return self.config.n_in

    @property
    def n_out(self) -> int:
        return 2

    @property
    def n_steps(self) -> int:
        return self.config.n_steps(self.dt)

    @property
    def n_recall(self) -> int:
        return self.config.steps(self.dt)["t_recall"]

    @property
    def recall_start(self) -> int:
        """Index of the first recall step (the steps before it carry no loss)."""
        return self.n_steps - self.n_recall

    def rates_at(self, t, cue_left: jax.Array) -> jax.Array:
        """Spike probability of every input neuron ``[n_in]`` at step ``t`` for one trial's cue sides."""
        cfg, s = self.config, self.config.steps(self.dt)
        period = s["t_interval"] + s["t_cue"]
        cue_index = t // period
        in_cue = (cue_index < cfg.num_cue) & ((t % period) >= s["t_interval"])
        # (a one-hot selection rather than a dynamic index: XLA 0.12's CPU fusion emitter failed on the
        # dynamic slice inside the simulation loop, "Failed to translate module to LLVM IR")
        left_now = jnp.any((jnp.arange(cfg.num_cue) == cue_index) & cue_left)
        p_cue = cfg.cue_rate * self.dt / 1000.0
        groups = jnp.stack([
            jnp.where(in_cue & left_now, p_cue, 0.0),
            jnp.where(in_cue & ~left_now, p_cue, 0.0),
            jnp.where(t >= self.recall_start, p_cue, 0.0),
            jnp.asarray(cfg.noise_rate * self.dt / 1000.0),
        ])
        return jnp.repeat(groups, cfg.n_per_group).astype(jnp.float32)

    def rates(self, cue_left: jax.Array) -> jax.Array:
        """Spike probabilities of a whole trial ``[T, n_in]``."""
        return jax.vmap(self.rates_at, in_axes=(0, None))(jnp.arange(self.n_steps), cue_left)

    def trials(self, key: jax.Array, batch: int) -> Trials:
        """Draw a batch of trials: the cue sides, the labels and the keys of their input spikes."""
        cfg = self.config

        def one(k):
            k_side, k_cues, k_spikes = jax.random.split(k, 3)
            majority_left = jax.random.uniform(k_side) < 0.5
            p_right = jnp.where(majority_left, cfg.prob, 1.0 - cfg.prob)
            cue_left = jax.random.uniform(k_cues, (cfg.num_cue,)) >= p_right
            label = (jnp.sum(cue_left) > cfg.num_cue / 2).astype(jnp.int32)
            return cue_left, label, k_spikes

        cue_left, labels, keys = jax.vmap(one)(jax.random.split(key, batch))
        return Trials(cue_left, labels, keys)

    def inputs_at(self, trials: Trials, t) -> jax.Array:
        """Input spikes ``[B, n_in]`` (float 0/1) at step ``t``; a function of the trial keys and ``t`` only,
        so a trial's inputs can be generated step by step (memory independent of T) or all at once."""

        def one(cue_left, key):
            u = jax.random.uniform(jax.random.fold_in(key, t), (self.n_in,))
            return (u < self.rates_at(t, cue_left)).astype(jnp.float32)

        return jax.vmap(one)(trials.cue_left, trials.spike_keys)

    def sample(self, key: jax.Array, batch: int) -> tuple[jax.Array, jax.Array]:
        """A materialised batch: inputs ``[T, batch, n_in]`` and labels ``[batch]`` (same spikes as
        :meth:`inputs_at` step by step)."""
        trials = self.trials(key, batch)
        xs = jax.vmap(lambda t: self.inputs_at(trials, t))(jnp.arange(self.n_steps))
        return xs, trials.labels


def step_loss(logits: jax.Array, labels: jax.Array) -> jax.Array:
    """Softmax cross-entropy of one recall step, mean over the batch (``logits [B, 2]``)."""
    logp = jax.nn.log_softmax(logits, axis=-1)
    return -jnp.mean(jnp.take_along_axis(logp, labels[:, None], axis=-1))


def accuracy(recall_logits: jax.Array, labels: jax.Array) -> jax.Array:
    """Fraction of trials whose summed recall output picks the label (``recall_logits [T_recall, B, 2]``)."""
    pred = jnp.argmax(jnp.sum(recall_logits, axis=0), axis=-1)
    return jnp.mean((pred == labels).astype(jnp.float32))
