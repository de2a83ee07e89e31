"""The C. elegans connectomes of the ``cect`` wheel (C. elegans Connectome Toolbox), read offline.

cect ships every dataset as JSON under ``cect/cache/``: ``{"nodes": [...], "connections": {TYPE: dense
matrix}}``. Its declared dependencies pin old versions (numpy < 2.4, plotly < 6, pyneuroml, ...), so the
toolkit installs it without them (``pip install --no-deps``, a step of ``make install``) and never imports
its readers: the JSON files are located through the installed distribution's file list
(``importlib.metadata``) and parsed here; the cell classes come from ``cect.Cells``, which imports only
pandas and cect's own light modules.

Names: a dataset is named after its reader without the ``Reader`` / ``DataReader`` suffix
(``Cook2019HermReader.json`` -> ``Cook2019Herm``, ``WitvlietDataReader8.json`` -> ``Witvliet8``),
case-insensitive. Datasets without chemical synapses (contactomes, peptidergic or monoaminergic
extrasynaptic networks, functional connectivity) are not offered.

Matrices: ``Generic_CS`` holds chemical synapse counts; a dataset split by transmitter holds one matrix per
transmitter (a co-transmitting synapse appears in each, so a pair's count is the largest of them, not their
sum); ``Generic_GJ`` holds gap-junction counts (symmetric; self-junctions, which couple nothing, are dropped).
In Wang et al. 2024 (``Wang2024Herm``/``Male``) the dopamine, serotonin, tyramine and octopamine matrices are
Bentley et al. 2016's extrasynaptic receptor network (cect's own description), not synapses: they are left
out, and Wang's matrices are binary (no counts). Transmitters: from the dataset's own per-transmitter
matrices where it has them, otherwise from Wang et al. 2024 (``Wang2024Herm``, then ``Wang2024Male`` for the
male-only neurons, or the other way round for a male dataset), each neuron taking the majority transmitter of
its synapses there (:data:`~diffbrain.network.connectome.TRANSMITTER_RULE`).
"""

from __future__ import annotations

import json
import re
from functools import cache, lru_cache
from pathlib import Path

import numpy as np

from diffbrain.network.connectome import (
    TRANSMITTER_RULE,
    UNKNOWN,
    Connectome,
    canonical_transmitter,
    csr_from_edges,
    majority_transmitters,
)
from diffbrain.params import ParamError

CHEMICAL_GENERIC = "Generic_CS"
GAP = "Generic_GJ"
# matrix types that are not synapses (cect's extrasynaptic and non-synaptic classes)
NOT_SYNAPTIC = {"Peptidergic", "Contact", "Functional"}
WANG_EXTRASYNAPTIC = {"Dopamine", "Serotonin", "Tyramine", "Octopamine"}
WANG_HERM, WANG_MALE = "Wang2024Herm", "Wang2024Male"
# network neurons by default; muscles and other cells are left out unless connectome_classes says otherwise
DEFAULT_NETWORK_CLASSES = ("sensory", "inter", "motor", "polymodal", "other_neuron")
_NO_SYNAPSES = ("Bentley2016MA", "Bentley2016Pep", "Brittin", "RipollSanchezLongRange", "RipollSanchezMidRange",
                "RipollSanchezShortRange", "WormNeuroAtlasFunc", "Yim2024Contactome", "Yim2024ContactomeNonNorm")


def cache_folder() -> Path:
    """The installed cect wheel's ``cect/cache`` folder (no import of cect); ParamError when cect is missing."""
    from importlib.metadata import PackageNotFoundError, distribution

    try:
        folder = Path(distribution("cect").locate_file("cect/cache"))
    except PackageNotFoundError:
        folder = None
    if folder is None or not folder.is_dir():
        raise ParamError("connectome", "the cect package (C. elegans connectomes) is not installed",
                         "run make install, or pip install --no-deps cect==0.3.5")
    return folder


def dataset_name(file_stem: str) -> str:
    """``WitvlietDataReader8`` -> ``Witvliet8``, ``Cook2019HermReader`` -> ``Cook2019Herm``."""
    return re.sub(r"(data)?reader(\d*)$", r"\2", file_stem, flags=re.IGNORECASE)


@cache
def datasets() -> dict[str, Path]:
    """Dataset name -> JSON file, for every cect dataset with chemical synapses (sorted by name)."""
    out = {}
    for path in sorted(cache_folder().glob("*.json")):
        name = dataset_name(path.stem)
        if name not in _NO_SYNAPSES and name not in ("symmetry_measures", "Test"):
            out[name] = path
    return dict(sorted(out.items(), key=lambda item: item[0].lower()))


def resolve_name(name: str) -> str:
    """The dataset's spelling of ``name`` (case-insensitive); ParamError listing the known datasets."""
    known = datasets()
    lower = {k.lower(): k for k in known}
    key = name.strip().lower()
    if key not in lower:  # tolerate the reader's full name
        key = dataset_name(name.strip()).lower()
    if key not in lower:
        raise ParamError("connectome", f"unknown dataset {name!r}",
                         f"use one of: {', '.join(known)} (or an edge-list file path)")
    return lower[key]


@lru_cache(maxsize=4)
def raw(name: str) -> tuple[list[str], dict[str, np.ndarray]]:
    """(nodes, {matrix type: dense float64 matrix}) of a dataset as stored in its JSON."""
    data = json.loads(datasets()[name].read_text())
    return list(data["nodes"]), {k: np.asarray(v, dtype=np.float64) for k, v in data["connections"].items()}


def _chemical_types(name: str, matrices: dict) -> list[str]:
    skip = NOT_SYNAPTIC | {GAP} | (WANG_EXTRASYNAPTIC if name.startswith("Wang2024") else set())
    return [k for k in matrices if k not in skip]


@cache
def cell_classes() -> dict[str, str]:
    """Cell name -> class (sensory, inter, motor, polymodal, other_neuron, muscle) from ``cect.Cells``."""
    from cect import Cells as C

    table: dict[str, str] = {}
    groups = (
        ("muscle", list(C.PREFERRED_MUSCLE_NAMES) + list(C.BODY_WALL_MUSCLE_NAMES)),
        ("other_neuron", C.UNKNOWN_FUNCTION_NEURONS),
        ("polymodal", C.PHARYNGEAL_POLYMODAL_NEURONS),
        ("motor", C.MOTORNEURONS_COOK),
        ("inter", list(C.INTERNEURONS_COOK) + C.MALE_HEAD_INTERNEURONS + C.MALE_NON_HEAD_INTERNEURONS),
        ("sensory", list(C.SENSORY_NEURONS_COOK) + C.MALE_HEAD_SENSORY_NEURONS + C.MALE_NON_HEAD_SENSORY_NEURONS),
    )
    for cls, names in groups:  # later groups win (a neuron listed twice keeps its neuron class)
        table.update(dict.fromkeys(names, cls))
    return table


def classify(name: str) -> str:
    cls = cell_classes().get(name)
    if cls is not None:
        return cls
    from cect import Cells as C

    return "muscle" if C.is_potential_muscle(name) else "other"


def _edges(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    pre, post = np.nonzero(matrix)
    return pre, post, matrix[pre, post]


def _own_transmitters(name: str) -> dict[str, np.ndarray] | None:
    """The per-transmitter matrices when the dataset splits its chemical synapses by transmitter."""
    _, matrices = raw(name)
    types = [t for t in _chemical_types(name, matrices) if t != CHEMICAL_GENERIC]
    return {t: matrices[t] for t in types} if types else None


def _majority_table(nodes: list[str], by_type: dict[str, np.ndarray]) -> dict[str, tuple[str, float, int]]:
    pre, weights, codes = [], [], []
    for code, matrix in enumerate(by_type.values()):
        p, _, w = _edges(matrix)
        pre.append(p)
        weights.append(w)
        codes.append(np.full(p.size, code))
    transmitters, share, count = majority_transmitters(
        len(nodes), np.concatenate(pre), np.concatenate(weights), np.concatenate(codes), list(by_type))
    return {node: (str(transmitters[i]), float(share[i]), int(count[i]))
            for i, node in enumerate(nodes) if transmitters[i] != UNKNOWN}


@cache
def reference_transmitters(name: str) -> tuple[dict[str, tuple[str, float, int]], str]:
    """Neuron -> (transmitter, share, number of transmitters) and the rule in words.

    From the dataset's own per-transmitter matrices where it has them, else from Wang et al. 2024. A neuron
    without fast-transmitter synapses in Wang's data takes the monoamine it releases there (Bentley's
    extrasynaptic matrices, by the same majority rule), e.g. ADE dopamine, NSM serotonin.
    """
    own = _own_transmitters(name)
    if own is not None and not name.startswith("Wang2024"):
        return _majority_table(raw(name)[0], own), f"transmitters from {name}'s own per-transmitter matrices: " \
            + TRANSMITTER_RULE
    if own is not None:
        order: tuple[str, ...] = (name,)
        words = f"transmitters from {name}'s own matrices: {TRANSMITTER_RULE}"
    else:
        male = "male" in name.lower() and "herm" not in name.lower()
        order = (WANG_MALE, WANG_HERM) if male else (WANG_HERM, WANG_MALE)
        words = (f"{name} has no transmitters: each neuron's comes from {order[0]} (then {order[1]} for neurons "
                 f"absent from it), where {TRANSMITTER_RULE}")
    words += "; a neuron without fast-transmitter synapses there takes its monoamine (Bentley et al. 2016 matrices)"
    table: dict[str, tuple[str, float, int]] = {}
    for ref in reversed(order):  # the first reference wins
        nodes, matrices = raw(ref)
        table.update(_majority_table(nodes, {t: matrices[t] for t in WANG_EXTRASYNAPTIC if t in matrices}))
        table.update(_majority_table(nodes, _own_transmitters(ref)))
    return table, words


@lru_cache(maxsize=8)
def load_dataset(spec: str) -> Connectome:
    """The cect dataset ``spec`` (case-insensitive name) as a :class:`Connectome`, all nodes kept."""
    name = resolve_name(spec)
    nodes, matrices = raw(name)
    types = _chemical_types(name, matrices)
    if not types:
        raise ParamError("connectome", f"{name} has no chemical synapses (matrices: {', '.join(matrices)})",
                         "choose a dataset with synapses, e.g. Cook2019Herm")
    n = len(nodes)
    if CHEMICAL_GENERIC in types:
        chemical = matrices[CHEMICAL_GENERIC]
    else:  # a co-transmitting synapse is in each of its transmitters' matrices: the largest count
        chemical = np.max([matrices[t] for t in types], axis=0)
    if name.startswith("Wang2024"):  # binary: a connection, not a count
        chemical = (chemical > 0).astype(np.float64)
    structure, counts = csr_from_edges(n, n, *_edges(chemical))
    gap = gap_counts = None
    if GAP in matrices:
        g = matrices[GAP].copy()
        np.fill_diagonal(g, 0.0)
        g = np.maximum(g, g.T)
        gap, gap_counts = csr_from_edges(n, n, *_edges(g))
    table, words = reference_transmitters(name)
    found = [table.get(node) for node in nodes]
    transmitters = np.asarray([f[0] if f else UNKNOWN for f in found], dtype=str)
    share = np.asarray([f[1] if f else np.nan for f in found], dtype=np.float32)
    n_tx = np.asarray([f[2] if f else 0 for f in found], dtype=np.int32)
    classes = np.asarray([classify(node) for node in nodes], dtype=str)
    return Connectome(source=name, names=np.asarray(nodes, dtype=str), classes=classes,
                      transmitters=np.asarray([canonical_transmitter(t) for t in transmitters], dtype=str),
                      transmitter_share=share, n_transmitters=n_tx, chemical=structure, counts=counts, gap=gap,
                      gap_counts=gap_counts, transmitter_source=words)
