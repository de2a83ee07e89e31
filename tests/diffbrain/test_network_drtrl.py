"""The chunked D-RTRL (``diag``) computes braintrace's ``D_RTRL`` gradients, dense and sparse, for any chunk."""

import brainstate
import jax
import numpy as np
import pytest

from diffbrain.network.config import NetworkConfig, TaskConfig
from diffbrain.network.drtrl import DEFAULT_CHUNK, DRTRL
from diffbrain.network.gradients import Inputs, online_gradients
from diffbrain.network.memory import DRTRL_CHUNK, estimate
from diffbrain.network.model import EINetwork
from diffbrain.network.task import EvidenceTask

TASK = TaskConfig(t_interval=5.0, t_cue=10.0, t_delay=10.0, t_recall=10.0, num_cue=3, n_per_group=6,
                  cue_rate=80.0, noise_rate=20.0)
NET = dict(n_rec=10, tau_neu=30.0, tau_a=100.0, ff_scale=6.0, rec_scale=2.0, conn_prob=0.4)


@pytest.mark.parametrize("conn_method", ["dense", "rand"])
def test_chunked_drtrl_equals_braintrace_d_rtrl(conn_method):
    task = EvidenceTask(TASK, 1.0)  # 65 steps, recall from step 55
    xs, labels = task.sample(jax.random.PRNGKey(4), 2)
    cfg = NetworkConfig(**NET, conn_method=conn_method, sparse_impl="event")  # traces on the non-zeros
    results = {}
    for name, chunk in (("braintrace", None), ("chunk 4", 4)):  # recall at 55 = 13*4 + 3: full chunks and a rest
        model = EINetwork(cfg, task.n_in, 2, seed=2, online=True)
        if chunk is None:
            fn = lambda xs, ys, m=model: online_gradients(m, "diag", xs, ys, task.recall_start)  # noqa: E731
        else:
            fn = lambda xs, ys, m=model, c=chunk: DRTRL(m, c).gradients(Inputs.of(xs), ys, task.recall_start)  # noqa: E731
        grads, losses, recall = brainstate.transform.jit(fn)(xs, labels)
        results[name] = ({k: np.asarray(v) for k, v in grads.items()}, np.asarray(losses), np.asarray(recall))
    reference, ref_losses, ref_recall = results.pop("braintrace")
    assert model.exc.impl == model.inh.impl == ("event" if conn_method == "rand" else "dense")
    for name, (grads, losses, recall) in results.items():
        np.testing.assert_allclose(losses, ref_losses, rtol=1e-6, err_msg=name)
        np.testing.assert_allclose(recall, ref_recall, rtol=1e-5, atol=1e-6, err_msg=name)
        for weight, ref in reference.items():
            scale = float(np.abs(ref).max())
            assert scale > 0, weight
            np.testing.assert_allclose(grads[weight], ref, rtol=1e-3, atol=1e-4 * scale, err_msg=f"{name} {weight}")


def test_traces_live_only_on_the_states_a_projection_reaches():
    model = EINetwork(NetworkConfig(**NET), 4 * 6, 2, seed=0, online=True)
    learner = DRTRL(model)
    states = {name: i for i, name in enumerate(model.STATES)}
    active = [model.STATES[i] for i in learner.active]
    own = [{active[i] for i in own} for own in learner.own]
    # an input or excitatory weight moves g_exc, the membrane, the readout trace and (through the spike's
    # surrogate gradient) the adaptation current, never g_inh; symmetrically for an inhibitory weight
    exc_states, inh_states = {"g_exc", "V", "trace", "I_a"}, {"g_inh", "V", "trace", "I_a"}
    assert [p.name for p in learner.projections] == ["ff", "exc", "inh"]
    assert own == [exc_states, exc_states, inh_states]
    pd = learner.pd
    assert not pd[active.index("g_exc"), active.index("V")]  # conductances decay on their own
    assert pd[active.index("I_a"), active.index("V")]  # spike-triggered adaptation
    assert pd[active.index("V"), active.index("V")] and states["trace"] == 4


def test_memory_estimate_follows_the_chunked_traces():
    """The estimate planning uses: dense traces grow with n_rec^2, CSR ones with the synapses (same chunk)."""
    assert DRTRL_CHUNK == DEFAULT_CHUNK
    dense = estimate(200, 8000, n_in=40, batch=32, method="diag", impl="masked_dense").training
    sparse = estimate(200, 8000, n_in=40, batch=32, method="diag", impl="event").training
    # XLA's temporaries measured at n_rec 200, batch 32, density 0.2: 162.7 MB dense, 1.0 GB on the non-zeros
    assert 140e6 < dense < 200e6 and 0.8e9 < sparse < 1.3e9
    assert estimate(200, 400, n_in=40, batch=32, method="diag", impl="event").training < dense
