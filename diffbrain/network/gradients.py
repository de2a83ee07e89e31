"""Gradients of the recall-period objective by BPTT and by the online algorithms.

The objective is the *sum over recall steps* of the per-step loss (softmax cross-entropy, mean over
the batch) — the same for every method, so online gradients can be compared with BPTT directly
(``etrace_grad(..., reduction='sum')``). The steps before the recall period carry no loss: BPTT
differentiates through them; the online algorithms advance hidden states and eligibility traces over
them (braintrace's ``etrace_evolve`` for ES-D-RTRL; :mod:`diffbrain.network.drtrl` for D-RTRL, whose
braintrace version stays here as :func:`online_gradients` for cross-checks). Every function here must run
inside a brainstate transformation (jit).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass

import brainstate
import braintrace
import jax
import jax.numpy as jnp
import numpy as np

from diffbrain.network.drtrl import DRTRL
from diffbrain.network.model import EINetwork
from diffbrain.network.task import step_loss

ONLINE_ALGORITHMS = {"diag": braintrace.D_RTRL, "expsm_diag": braintrace.ES_D_RTRL}


@dataclass(frozen=True)
class Inputs:
    """The input of a batch of trials, one step at a time: ``at(t) -> [B, n_in]`` for ``t < n_steps``.

    Generated inside the time loop (see :meth:`EvidenceTask.inputs_at`), so online learning keeps a
    memory independent of the trial length; ``Inputs.of(xs)`` wraps a materialised ``[T, B, n_in]``.
    """

    at: Callable
    n_steps: int

    @staticmethod
    def of(xs) -> Inputs:
        return Inputs(lambda t: xs[t], xs.shape[0])


def _as_inputs(inputs) -> Inputs:
    return inputs if isinstance(inputs, Inputs) else Inputs.of(inputs)


def bptt_gradients(model: EINetwork, inputs, labels: jax.Array, recall_start: int, remat: bool = False):
    """``(grads, per_step_losses [T_recall], recall_outputs [T_recall, B, 2])`` by autodiff through time.

    ``remat`` recomputes the forward pass in the backward pass (brainstate's checkpointed loop), which
    trades time for memory on long trials.
    """
    inputs = _as_inputs(inputs)
    weights = model.weight_states()
    batch = labels.shape[0]
    loop = brainstate.transform.checkpointed_for_loop if remat else brainstate.transform.for_loop

    def objective():
        brainstate.nn.init_all_states(model, batch_size=batch)
        outs = loop(lambda t: model(inputs.at(t)), jnp.arange(inputs.n_steps))
        recall = outs[recall_start:]
        losses = jax.vmap(step_loss, in_axes=(0, None))(recall, labels)
        return jnp.sum(losses), (losses, recall)

    grads, (losses, recall) = brainstate.transform.grad(objective, weights, has_aux=True)()
    return grads, losses, recall


def compile_online(model: EINetwork, method: str, x0: jax.Array, etrace_decay: float = 0.99):
    """The braintrace learner for ``method`` over a batch shaped like ``x0 [B, n_in]`` (per-trial traces).

    ES-D-RTRL runs on batched states and traces (``vmap=False``), D-RTRL per trial (``vmap=True``):
    the same gradients either way, and measured here (n_rec 100, T 200, batch 16) batched was 1.5x
    faster for expsm_diag, per-trial 1.6x faster for braintrace's diag (training uses
    :class:`~diffbrain.network.drtrl.DRTRL`, 10-50x faster still).
    """
    options = {"decay_or_rank": etrace_decay} if method == "expsm_diag" else {}
    with warnings.catch_warnings():  # the readout is instantaneous: braintrace says so, and it is intended
        warnings.filterwarnings("ignore", message=".*has no connected hidden states.*")
        return braintrace.compile(model, ONLINE_ALGORITHMS[method], x0, batch_size=x0.shape[0],
                                  vmap=method == "diag", **options)


def online_gradients(model: EINetwork, method: str, inputs, labels: jax.Array, recall_start: int,
                     etrace_decay: float = 0.99):
    """``(grads, per_step_losses, recall_outputs)`` by braintrace's D-RTRL (``diag``) or ES-D-RTRL (``expsm_diag``)."""
    inputs = _as_inputs(inputs)
    learner = compile_online(model, method, inputs.at(0), etrace_decay)
    steps = jnp.arange(inputs.n_steps)
    if recall_start > 0:
        learner.etrace_evolve(steps[:recall_start], step_fn=lambda t: learner(inputs.at(t)))

    def step(t):
        out = learner(inputs.at(t))
        return step_loss(out, labels), out

    grads, losses, recall = learner.etrace_grad(
        steps[recall_start:], step_fn=step, weights=model.weight_states(), reduction="sum",
        has_aux=True, return_value=True, loss_output="per_step",
    )
    return grads, losses, recall


def gradients(model: EINetwork, method: str, inputs, labels, recall_start: int, etrace_decay: float = 0.99,
              remat: bool = False):
    """Dispatch to BPTT, D-RTRL (``diag``: the project's chunked implementation, equal to braintrace's
    ``D_RTRL`` and 10-50x faster here, see :mod:`diffbrain.network.drtrl`) or ES-D-RTRL (braintrace);
    ``inputs`` is an :class:`Inputs` or an array ``[T, B, n_in]``."""
    if method == "bptt":
        return bptt_gradients(model, inputs, labels, recall_start, remat)
    if method == "diag":
        return DRTRL(model).gradients(_as_inputs(inputs), labels, recall_start)
    return online_gradients(model, method, inputs, labels, recall_start, etrace_decay)


def compare(reference: dict, estimate: dict) -> dict[str, dict[str, float]]:
    """Per weight: cosine similarity and norm ratio ``|estimate| / |reference|`` (NaN where undefined)."""
    out = {}
    for name, ref in reference.items():
        a = np.ravel(np.asarray(ref, dtype=np.float64))
        b = np.ravel(np.asarray(estimate[name], dtype=np.float64))
        na, nb = np.linalg.norm(a), np.linalg.norm(b)
        cos = float(a @ b / (na * nb)) if na > 0 and nb > 0 else float("nan")
        out[name] = {"cosine": cos, "norm_ratio": float(nb / na) if na > 0 else float("nan")}
    return out
