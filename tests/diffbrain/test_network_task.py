"""Evidence accumulation: timings, determinism from keys, labels from the cues, the recall-period loss."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from diffbrain.experiments.base import ParamError
from diffbrain.network.config import TaskConfig
from diffbrain.network.task import EvidenceTask, accuracy, step_loss

CFG = TaskConfig(t_interval=4.0, t_cue=6.0, t_delay=10.0, t_recall=5.0, num_cue=5, n_per_group=3,
                 cue_rate=40.0, noise_rate=10.0)


def test_timings_in_steps():
    task = EvidenceTask(CFG, dt=1.0)
    assert task.n_steps == 5 * (4 + 6) + 10 + 5 == 65
    assert task.recall_start == 60 and task.n_recall == 5 and task.n_in == 12
    assert EvidenceTask(CFG, dt=0.5).n_steps == 130
    with pytest.raises(ParamError) as info:
        EvidenceTask(TaskConfig(t_recall=0.4), dt=1.0).n_steps  # noqa: B018
    assert info.value.field == "t_recall"


def test_rates_follow_the_cue_sides():
    task = EvidenceTask(CFG, dt=1.0)
    cue_left = jnp.array([True, False, True, True, False])
    rates = np.asarray(task.rates(cue_left))
    p, noise = 40.0 / 1000.0, 10.0 / 1000.0
    for k, left in enumerate(np.asarray(cue_left)):
        start = 4 + k * 10  # after the interval
        cue = slice(start, start + 6)
        assert np.allclose(rates[cue, 0:3], p if left else 0.0)
        assert np.allclose(rates[cue, 3:6], 0.0 if left else p)
        assert np.allclose(rates[k * 10 : start, 0:6], 0.0)  # silent interval
    assert np.allclose(rates[50:60, 0:9], 0.0)  # delay
    assert np.allclose(rates[60:, 6:9], p) and np.allclose(rates[:60, 6:9], 0.0)  # recall cue
    assert np.allclose(rates[:, 9:12], noise)


def test_same_key_same_batch_and_labels_are_the_majority_side():
    # rates near one spike per step make the cue sides readable from the spikes themselves
    cfg = TaskConfig(t_interval=2.0, t_cue=20.0, t_delay=5.0, t_recall=5.0, num_cue=7, prob=0.3,
                     n_per_group=4, cue_rate=900.0, noise_rate=0.0)
    task = EvidenceTask(cfg, dt=1.0)
    xs, labels = task.sample(jax.random.PRNGKey(7), 64)
    xs2, labels2 = task.sample(jax.random.PRNGKey(7), 64)
    assert np.array_equal(np.asarray(xs), np.asarray(xs2)) and np.array_equal(labels, labels2)
    xs3, _ = task.sample(jax.random.PRNGKey(8), 64)
    assert not np.array_equal(np.asarray(xs), np.asarray(xs3))
    assert xs.shape == (task.n_steps, 64, 16) and set(np.unique(np.asarray(xs))) <= {0.0, 1.0}
    x = np.asarray(xs)
    left_cues = np.zeros(64, dtype=int)
    for k in range(7):
        cue = slice(2 + k * 22, 22 + k * 22)
        left_cues += x[cue, :, 0:4].sum(axis=(0, 2)) > x[cue, :, 4:8].sum(axis=(0, 2))
    assert np.array_equal(np.asarray(labels), (left_cues > 3.5).astype(int))
    assert 10 < int(np.sum(labels)) < 54  # both classes appear


def test_step_loss_and_accuracy_by_hand():
    logits = jnp.array([[2.0, 0.0], [0.0, 1.0]])
    labels = jnp.array([0, 0])
    expected = -0.5 * (np.log(np.exp(2) / (np.exp(2) + 1)) + np.log(1 / (1 + np.e)))
    assert float(step_loss(logits, labels)) == pytest.approx(expected, rel=1e-6)
    recall = jnp.array([[[1.0, 0.0], [0.0, 1.0]], [[0.5, 0.0], [3.0, 0.0]]])  # [T=2, B=2, 2]
    assert float(accuracy(recall, jnp.array([0, 0]))) == pytest.approx(1.0)  # sums: [1.5, 0], [3, 1]
    assert float(accuracy(recall, jnp.array([1, 0]))) == pytest.approx(0.5)
