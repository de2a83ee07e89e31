"""What a connectome run records: its neurons, and weights and rates grouped by cell class and transmitter.

Every recurrent synapse belongs to its presynaptic neuron's cell class and transmitter (Dale's law: one
transmitter per neuron). Per group, the effective conductances ``|w|`` before and after training are
counted in fixed log-spaced bins (:func:`group_bin_edges`: synapse counts are heavy-tailed, so linear bins
would put most synapses in the first one; values outside the range are counted in the end bins) and
summarised by their mean; the firing rate of a group is the mean rate of its neurons over the
recorded test trials. Plain NumPy: the experiment module turns this into the point's dataset.
"""

from __future__ import annotations

import numpy as np

from diffbrain.network.connectome import TRANSMITTER_RULE, Wiring, excitatory_mask

GROUPINGS = ("class", "transmitter")


def _group_table(labels: np.ndarray, synapse_labels: np.ndarray, before: np.ndarray, after: np.ndarray,
                 rates: np.ndarray, edges: np.ndarray) -> dict[str, np.ndarray]:
    """Per distinct label (sorted): neurons, synapses, histograms and means before/after, mean rate."""
    names = np.unique(labels)
    low, top = edges[0], edges[-1]
    hist = np.zeros((2, names.size, edges.size - 1), dtype=np.int64)
    mean = np.full((2, names.size), np.nan, dtype=np.float32)
    synapses = np.zeros(names.size, dtype=np.int64)
    neurons = np.zeros(names.size, dtype=np.int64)
    rate = np.full(names.size, np.nan, dtype=np.float32)
    for k, name in enumerate(names):
        on = synapse_labels == name
        synapses[k] = int(on.sum())
        members = labels == name
        neurons[k] = int(members.sum())
        if rates.size:
            rate[k] = float(rates[members].mean())
        for stage, w in enumerate((before, after)):
            if synapses[k]:
                hist[stage, k] = np.histogram(np.clip(w[on], low, top), bins=edges)[0]
                mean[stage, k] = float(w[on].mean())
    return {"names": names.astype(str), "hist": hist, "mean": mean, "synapses": synapses, "neurons": neurons,
            "rate": rate}


def group_bin_edges(initial: np.ndarray, bins: int) -> np.ndarray:
    """``bins`` log-spaced bins from a tenth of the smallest to ten times the largest initial weight."""
    positive = np.asarray(initial, np.float64)
    positive = positive[positive > 0]
    low, high = (float(positive.min()), float(positive.max())) if positive.size else (1e-6, 1.0)
    return np.geomspace(low / 10.0, high * 10.0, bins + 1).astype(np.float32)


def connectome_record(wiring: Wiring, before: np.ndarray, after: np.ndarray, rates: np.ndarray,
                      bins: int, transmitter_signs: str = "") -> dict:
    """The record of a connectome run.

    ``before``/``after``: effective recurrent conductances (S) of every synapse, excitatory projection first
    (the order of :meth:`Wiring.synapse_pre`); ``rates``: Hz per model neuron; ``bins``: weight bins.
    """
    pre = wiring.synapse_pre()
    before, after = np.asarray(before, np.float64), np.asarray(after, np.float64)
    if before.shape != pre.shape or after.shape != pre.shape:
        raise ValueError(f"expected {pre.size} synapse weights, got {before.shape} and {after.shape}")
    edges = group_bin_edges(before, bins)
    groups = {
        "class": _group_table(wiring.classes, wiring.classes[pre], before, after, rates, edges),
        "transmitter": _group_table(wiring.transmitters, wiring.transmitters[pre], before, after, rates, edges),
    }
    excitatory = excitatory_mask(wiring.transmitters, transmitter_signs)
    return {
        "source": wiring.source,
        "names": wiring.names.astype(str),
        "classes": wiring.classes.astype(str),
        "transmitters": wiring.transmitters.astype(str),
        "transmitter_share": wiring.transmitter_share.astype(np.float32),
        "n_transmitters": wiring.n_transmitters.astype(np.int32),
        "source_index": wiring.order.astype(np.int64),
        "is_input": np.isin(np.arange(wiring.n), wiring.inputs),
        "is_output": np.isin(np.arange(wiring.n), wiring.outputs),
        "excitatory_by_transmitter": excitatory,
        "n_mixed": int((wiring.n_transmitters > 1).sum()),
        "transmitter_rule": TRANSMITTER_RULE,
        "transmitter_source": wiring.transmitter_source,
        "n_synapses": int(pre.size),
        "n_gap_junctions": 0 if wiring.gap is None else int(wiring.gap.nnz // 2),
        "bin_edges": edges,
        "groups": groups,
    }
