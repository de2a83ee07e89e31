"""The E/I network: event-driven sparse CSR equals the dense masked computation (forward and gradients,
in BPTT and in the online algorithms), and Dale's law holds after training."""

import brainstate
import brainunit as u
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from diffbrain.network.config import NetworkConfig, TaskConfig, TrainConfig
from diffbrain.network.gradients import gradients
from diffbrain.network.model import EINetwork
from diffbrain.network.task import EvidenceTask
from diffbrain.network.training import Trainer

TASK = TaskConfig(t_interval=5.0, t_cue=10.0, t_delay=10.0, t_recall=10.0, num_cue=3, n_per_group=6,
                  cue_rate=80.0, noise_rate=20.0)
NET = dict(n_rec=20, tau_neu=30.0, tau_a=100.0, tau_syn=5.0, ff_scale=6.0, rec_scale=2.0,
           conn_method="rand", conn_prob=0.4)


def sparse_and_masked(online: bool):
    event = EINetwork(NetworkConfig(**NET, sparse_impl="event"), 4 * 6, 2, seed=3, online=online)
    masked = EINetwork(NetworkConfig(**NET, sparse_impl="masked_dense"), 4 * 6, 2, seed=3, online=online)
    return event, masked


def masked_to_nnz(model: EINetwork, grads: dict) -> dict:
    """Gradients of the masked-dense model on the pattern (CSR order), and the largest off-pattern entry."""
    out, off = {}, 0.0
    for name, proj in (("exc", model.exc), ("inh", model.inh)):
        g, mask = np.asarray(grads[name]), proj.structure.mask()
        out[name] = g[mask]
        off = max(off, float(np.abs(g[~mask]).max(initial=0.0)))
    out["ff"], out["readout"] = np.asarray(grads["ff"]), np.asarray(grads["readout"])
    return out, off


@pytest.mark.parametrize("method", ["bptt", "diag", "expsm_diag"])
def test_sparse_csr_equals_masked_dense(method):
    task = EvidenceTask(TASK, 1.0)
    xs, labels = task.sample(jax.random.PRNGKey(0), 3)
    event, masked = sparse_and_masked(online=method != "bptt")
    assert event.exc.impl == "event" and masked.exc.impl == "masked_dense"
    assert event.exc.weight.value.ndim == 1  # the CSR non-zero vector
    results = {}
    for name, model in (("event", event), ("masked", masked)):
        fn = brainstate.transform.jit(lambda xs, ys, m=model: gradients(m, method, xs, ys, task.recall_start))
        grads, losses, recall = fn(xs, labels)
        results[name] = ({k: np.asarray(v) for k, v in grads.items()}, np.asarray(losses), np.asarray(recall))
    g_event, loss_event, out_event = results["event"]
    g_masked, off = masked_to_nnz(masked, results["masked"][0])
    np.testing.assert_allclose(out_event, results["masked"][2], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(loss_event, results["masked"][1], rtol=1e-5)
    assert off == 0.0  # absent synapses get no gradient
    for name in ("ff", "exc", "inh", "readout"):
        scale = np.abs(g_masked[name]).max()
        assert scale > 0, name
        np.testing.assert_allclose(g_event[name], g_masked[name], rtol=1e-4, atol=1e-5 * scale)


def one_step(model: EINetwork, v_mv: float, g_exc: np.ndarray, g_inh: np.ndarray) -> np.ndarray:
    """Membrane after one step from V = v_mv everywhere, given conductances, no input, no spikes."""
    n = model.n_rec
    brainstate.nn.init_all_states(model, batch_size=1)
    model.V.value = jnp.full((1, n), v_mv, dtype=jnp.float32) * u.mV
    model.g_exc.value = jnp.asarray(g_exc, dtype=jnp.float32)[None] * u.siemens
    model.g_inh.value = jnp.asarray(g_inh, dtype=jnp.float32)[None] * u.siemens
    model(jnp.zeros((1, model.n_in), dtype=jnp.float32))
    return np.asarray(model.V.value.to_decimal(u.mV))[0]


@pytest.mark.parametrize("conn_method", ["rand"])  # the sparse path; the dense one maps weights trivially
def test_dales_law_after_training(conn_method):
    net = NetworkConfig(**{**NET, "conn_method": conn_method})
    trainer = Trainer(net, TASK, TrainConfig(method="bptt", lr=0.05, batch_size=4, clip_norm=0.0), seed=1)
    before = {k: np.asarray(v) for k, v in trainer.model.weight_values().items()}
    for it in range(4):
        trainer.step(it)
    model = trainer.model
    raw = trainer.weights()
    assert any(not np.allclose(raw[k], before[k]) for k in raw)  # training moved the weights
    assert any((raw[k] < 0).any() for k in ("exc", "inh"))  # some stored values crossed zero ...
    exc, inh = model.effective_recurrent()
    assert (exc >= 0).all() and (inh >= 0).all()  # ... but every effective conductance is >= 0

    # every presynaptic neuron's synapses open its own population's channel, and only that one
    n, n_in = model.n_rec, model.n_in
    d_exc, d_inh = model.conductance_increment(jnp.zeros((n, n_in)), jnp.eye(n))
    d_exc, d_inh = np.asarray(d_exc.to_decimal(u.siemens)), np.asarray(d_inh.to_decimal(u.siemens))
    is_exc = model.is_excitatory()
    assert np.all(d_inh[is_exc] == 0) and np.all(d_exc[~is_exc] == 0)
    np.testing.assert_allclose(d_exc[is_exc], model.exc.effective_dense(), rtol=1e-6)
    np.testing.assert_allclose(d_inh[~is_exc], model.inh.effective_dense(), rtol=1e-6)
    assert np.array_equal(model.presynaptic_reversal(), np.where(is_exc, net.e_exc, net.e_inh))

    # and the channels have the reversal potentials e_exc = 5 mV and e_inh = -10 mV
    zero, g = np.zeros(n), np.full(n, 0.5)
    rest = one_step(model, 0.0, zero, zero)
    assert (one_step(model, 0.0, g, zero) > rest).all()  # excitatory: towards +5 mV
    assert (one_step(model, 0.0, zero, g) < rest).all()  # inhibitory: towards -10 mV
    below = one_step(model, -12.0, zero, zero)
    assert (one_step(model, -12.0, zero, g) > below).all()  # below e_inh the inhibitory channel depolarises
