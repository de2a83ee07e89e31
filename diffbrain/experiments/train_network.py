"""``train-network``: train (or simulate) the conductance-based E/I network on evidence accumulation.

Parameters follow the brainscale paper's script (snake_case); see :mod:`diffbrain.network.config`.
Checkpoints go to ``ctx.checkpoint_dir`` every ``checkpoint_every`` iterations; a requeued point
resumes from the last one and ends with the same loss trajectory as an uninterrupted run.
"""

from __future__ import annotations

from diffbrain.experiments.base import Experiment, RunContext
from diffbrain.network.config import ALL_PARAMS


def run(params: dict, ctx: RunContext):
    from diffbrain.network.run import run_network, to_dataset

    return to_dataset(run_network(params, ctx))


EXPERIMENT = Experiment(
    name="train-network",
    params=ALL_PARAMS,
    run=run,
    help="Train a conductance-based E/I spiking network on evidence accumulation (bptt, diag or expsm_diag).",
    must_be_finite=("loss", "test_loss"),
)
