"""Evidence accumulation (Morcos & Harvey 2016), as in the brainscale paper, generated in JAX from keys.

Four input groups of ``n_per_group`` Poisson neurons: left cue, right cue, recall cue, background
noise. A trial shows ``num_cue`` cues (each preceded by ``t_interval`` of silence), each on the left
or the right; the majority side is the label (1 = left). After ``t_delay`` the recall group fires for
``t_recall``; the loss and the accuracy use the recall period only. Trials depend on the key alone:
same key, same batch. Inputs are plain float arrays (0/1), time-major ``[T, B, n_in]``.
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp

from diffbrain.network.config import TaskConfig


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

    def rates(self, cue_left: jax.Array) -> jax.Array:
        """Spike probability per step and input neuron ``[T, n_in]`` for one trial's cue sides."""
        cfg, s = self.config, self.config.steps(self.dt)
        n, period = cfg.n_per_group, s["t_interval"] + s["t_cue"]
        t = jnp.arange(self.n_steps)
        cue_index = t // period
        in_cue = (cue_index < cfg.num_cue) & ((t % period) >= s["t_interval"])
        left_now = cue_left[jnp.clip(cue_index, 0, cfg.num_cue - 1)]
        p_cue = cfg.cue_rate * self.dt / 1000.0
        p_noise = cfg.noise_rate * self.dt / 1000.0
        left = jnp.where(in_cue & left_now, p_cue, 0.0)
        right = jnp.where(in_cue & ~left_now, p_cue, 0.0)
        recall = jnp.where(t >= self.recall_start, p_cue, 0.0)
        noise = jnp.full_like(left, p_noise)
        groups = jnp.stack([left, right, recall, noise], axis=1)  # [T, 4]
        return jnp.repeat(groups, n, axis=1).astype(jnp.float32)

    def trial(self, key: jax.Array) -> tuple[jax.Array, jax.Array]:
        """One trial: input spikes ``[T, n_in]`` (float 0/1) and the label (int32, 1 = left majority)."""
        cfg = self.config
        k_side, k_cues, k_spikes = jax.random.split(key, 3)
        majority_left = jax.random.uniform(k_side) < 0.5
        p_right = jnp.where(majority_left, cfg.prob, 1.0 - cfg.prob)
        cue_left = jax.random.uniform(k_cues, (cfg.num_cue,)) >= p_right
        x = (jax.random.uniform(k_spikes, (self.n_steps, self.n_in)) < self.rates(cue_left)).astype(jnp.float32)
        label = (jnp.sum(cue_left) > cfg.num_cue / 2).astype(jnp.int32)
        return x, label

    def sample(self, key: jax.Array, batch: int) -> tuple[jax.Array, jax.Array]:
        """A batch: inputs ``[T, batch, n_in]`` and labels ``[batch]``."""
        xs, labels = jax.vmap(self.trial)(jax.random.split(key, batch))
        return jnp.swapaxes(xs, 0, 1), labels


def step_loss(logits: jax.Array, labels: jax.Array) -> jax.Array:
    """Softmax cross-entropy of one recall step, mean over the batch (``logits [B, 2]``)."""
    logp = jax.nn.log_softmax(logits, axis=-1)
    return -jnp.mean(jnp.take_along_axis(logp, labels[:, None], axis=-1))


def accuracy(recall_logits: jax.Array, labels: jax.Array) -> jax.Array:
    """Fraction of trials whose summed recall output picks the label (``recall_logits [T_recall, B, 2]``)."""
    pred = jnp.argmax(jnp.sum(recall_logits, axis=0), axis=-1)
    return jnp.mean((pred == labels).astype(jnp.float32))
