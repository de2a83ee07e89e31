"""Connectome-constrained wiring: a fixed synaptic pattern from data and a transmitter (so a sign) per neuron.

A :class:`Connectome` holds nodes (name, cell class, transmitter) and two CSR structures with synapse
counts, rows presynaptic: chemical synapses, and gap junctions (symmetric). Sources: the C. elegans
datasets of the ``cect`` wheel (:mod:`diffbrain.network.connectome_cect`) or a user's CSV edge list / NPZ
CSR arrays with a node table (:mod:`diffbrain.network.connectome_files`). Every source ends in
:func:`csr_from_edges`: O(synapses) memory, never an N x N array.

:func:`build_wiring` turns a configuration into the E/I network's wiring:

1. the nodes of the chosen cell classes (``connectome_classes``; C. elegans default: the neurons) and the
   synapses among them (the induced subgraph);
2. each neuron's sign from its transmitter (:data:`DEFAULT_SIGNS`, overridden by ``transmitter_signs``):
   Dale's law per neuron, so a neuron with synapses of several transmitters takes the transmitter of the
   majority of its synapses (:data:`TRANSMITTER_RULE`);
3. the neurons ordered excitatory first, keeping the source's order within each group (the E/I network's
   layout; the names travel with the records);
4. the task interface: the neurons that receive the task input (``input_neurons``, default the sensory
   class) and those the readout sees (``output_neurons``, default inter- and motor neurons).

Initial magnitudes are proportional to synapse counts, scaled so that their mean equals the expected
magnitude of the ``rand`` network's Kaiming draw for the same fan-in (:func:`count_magnitudes`).
No JAX here: ``sweep plan`` checks connectomes with this module.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, replace
from functools import lru_cache

import numpy as np

from diffbrain.network.config import NetworkConfig
from diffbrain.network.connectivity import InitialWeights, Structure, kaiming_magnitudes
from diffbrain.params import ParamError

UNKNOWN = "unknown"
# transmitters spelled as in the data -> canonical lower-case names (FlyWire's abbreviations included)
TRANSMITTER_ALIASES = {
    "ach": "acetylcholine", "acetylcholine": "acetylcholine", "glu": "glutamate", "glut": "glutamate",
    "glutamate": "glutamate", "gaba": "gaba", "da": "dopamine", "dopamine": "dopamine", "ser": "serotonin",
    "5ht": "serotonin", "5-ht": "serotonin", "serotonin": "serotonin", "oct": "octopamine",
    "octopamine": "octopamine", "tyr": "tyramine", "tyramine": "tyramine", "excitatorychem": "excitatory",
    "inhibitorychem": "inhibitory", "": UNKNOWN,
}
# the sign of a presynaptic neuron's synapses by transmitter (+1 excitatory, -1 inhibitory); any other
# transmitter (monoamines, betaine, unknown) takes the sign of "other", excitatory unless overridden
DEFAULT_SIGNS = {"acetylcholine": 1, "glutamate": 1, "gaba": -1, "excitatory": 1, "inhibitory": -1}
OTHER = "other"
DEFAULT_OTHER_SIGN = 1
# ties in the majority rule go to the earlier of these, then to the alphabetically first
PREFERENCE = ("acetylcholine", "glutamate", "gaba", "excitatory", "inhibitory")
TRANSMITTER_RULE = ("each neuron takes the transmitter of the majority of its outgoing chemical synapses, "
                    "counted by synapse number where the data has counts (else by connections); ties go to "
                    "acetylcholine, glutamate, GABA, then alphabetical order")
DEFAULT_INPUTS = "sensory"
DEFAULT_OUTPUTS = "inter,motor"


def canonical_transmitter(name: str) -> str:
    """The canonical lower-case name of a transmitter as spelled in a data set or a parameter."""
    key = str(name).strip().lower()
    return TRANSMITTER_ALIASES.get(key, key)


def looks_like_file(value: str) -> bool:
    """Whether a ``connectome`` value names a file (a path separator or a data file suffix) rather than a
    dataset (dataset names are plain words such as ``Cook2019Herm``)."""
    return "/" in value or os.sep in value or value.lower().endswith((".csv", ".npz", ".csv.gz", ".tsv"))


# -- CSR from edges ---------------------------------------------------------------------------------


def csr_from_edges(n_pre: int, n_post: int, pre: np.ndarray, post: np.ndarray, data: np.ndarray,
                   combine: str = "sum") -> tuple[Structure, np.ndarray]:
    """A CSR structure (targets ascending within a row) and its values from edge arrays, O(edges) memory.

    Repeated (pre, post) pairs are merged: their values summed (``combine="sum"``) or the largest kept
    (``"max"``). Zero-valued edges are dropped (no synapse).
    """
    pre = np.asarray(pre, dtype=np.int64)
    post = np.asarray(post, dtype=np.int64)
    data = np.asarray(data, dtype=np.float32)
    keep = data != 0
    if not keep.all():
        pre, post, data = pre[keep], post[keep], data[keep]
    keys = pre * n_post + post
    order = np.argsort(keys)  # duplicates merge by sum or max: their order does not matter
    keys, data = keys[order], data[order]
    del order
    if keys.size:
        first = np.ones(keys.size, dtype=bool)
        np.not_equal(keys[1:], keys[:-1], out=first[1:])
        starts = np.flatnonzero(first)
        if starts.size != keys.size:
            ufunc = np.maximum if combine == "max" else np.add
            data = ufunc.reduceat(data, starts)
            keys = keys[starts]
    rows = keys // n_post
    indptr = np.zeros(n_pre + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=n_pre), out=indptr[1:])
    return Structure(n_pre, n_post, indptr, (keys % n_post).astype(np.int32)), data.astype(np.float32)


def relabel(structure: Structure, data: np.ndarray, new_index: np.ndarray, n_new: int) -> tuple[Structure, np.ndarray]:
    """The square structure with node i renamed ``new_index[i]`` (-1: dropped with its synapses)."""
    pre, post = structure.pre_post()
    new_pre, new_post = new_index[pre], new_index[post]
    keep = (new_pre >= 0) & (new_post >= 0)
    return csr_from_edges(n_new, n_new, new_pre[keep], new_post[keep], np.asarray(data)[keep])


# -- the connectome ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Connectome:
    """Nodes and synapses of one source. ``chemical``/``gap`` are CSR (rows presynaptic) with synapse counts
    ``counts``/``gap_counts`` in CSR order; ``gap`` is symmetric, or None when the source has none.

    Per node: ``names``, ``classes`` (cell class), ``transmitters`` (canonical names, ``unknown`` where none),
    ``transmitter_share`` (fraction of the node's outgoing synapses that carry its transmitter; NaN where the
    transmitter came from a table rather than from synapses), ``n_transmitters`` (transmitters among its
    synapses: > 1 is a mixed neuron resolved by the majority rule). ``transmitter_source`` says where the
    transmitters came from, in words.
    """

    source: str
    names: np.ndarray
    classes: np.ndarray
    transmitters: np.ndarray
    transmitter_share: np.ndarray
    n_transmitters: np.ndarray
    chemical: Structure
    counts: np.ndarray
    gap: Structure | None
    gap_counts: np.ndarray | None
    transmitter_source: str

    @property
    def n(self) -> int:
        return int(self.names.size)

    @property
    def class_names(self) -> list[str]:
        return sorted(set(self.classes.tolist()))

    def subset(self, keep: np.ndarray) -> Connectome:
        """The nodes where ``keep`` (bool [n]) and the synapses among them, in the same order."""
        keep = np.asarray(keep, dtype=bool)
        if keep.all():
            return self
        new_index = np.where(keep, np.cumsum(keep) - 1, -1)
        return self._reordered(new_index, int(keep.sum()))

    def permuted(self, order: np.ndarray) -> Connectome:
        """The nodes in the order ``order`` (new node k is old node ``order[k]``)."""
        new_index = np.empty(self.n, dtype=np.int64)
        new_index[order] = np.arange(order.size)
        return self._reordered(new_index, int(order.size))

    def _reordered(self, new_index: np.ndarray, n_new: int) -> Connectome:
        old = np.empty(n_new, dtype=np.int64)
        placed = new_index >= 0
        old[new_index[placed]] = np.flatnonzero(placed)
        chemical, counts = relabel(self.chemical, self.counts, new_index, n_new)
        gap, gap_counts = (None, None) if self.gap is None else relabel(self.gap, self.gap_counts, new_index, n_new)
        return replace(self, names=self.names[old], classes=self.classes[old], transmitters=self.transmitters[old],
                       transmitter_share=self.transmitter_share[old], n_transmitters=self.n_transmitters[old],
                       chemical=chemical, counts=counts, gap=gap, gap_counts=gap_counts)


def majority_transmitters(n: int, pre: np.ndarray, weights: np.ndarray, codes: np.ndarray,
                          code_names: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per node: the transmitter of the majority of its outgoing synapses (:data:`TRANSMITTER_RULE`), the share
    of its synapse weight that carries it, and how many transmitters its synapses carry.

    ``pre`` (node), ``weights`` (synapse count) and ``codes`` (index into ``code_names``) per synapse; a node
    without outgoing synapses is ``unknown`` with share NaN.
    """
    spelled = [canonical_transmitter(c) for c in code_names]  # spellings of one transmitter merge
    names = sorted(set(spelled) - {UNKNOWN}, key=lambda t: (PREFERENCE.index(t) if t in PREFERENCE
                                                           else len(PREFERENCE), t))
    k = max(1, len(names))
    # each code's column in preference order; synapses without a transmitter (unknown) are not counted
    position = np.asarray([names.index(t) if t != UNKNOWN else -1 for t in spelled] or [-1], dtype=np.int64)
    column = position[np.asarray(codes, np.int64)]
    counted = column >= 0
    table = np.bincount(np.asarray(pre, np.int64)[counted] * k + column[counted],
                        weights=np.asarray(weights, np.float64)[counted], minlength=n * k).reshape(n, k)
    total = table.sum(axis=1)
    best = table.argmax(axis=1)  # the first maximum: the preferred transmitter on ties
    ordered = np.asarray(names or [UNKNOWN], dtype=object)
    has = total > 0
    transmitters = np.where(has, ordered[best], UNKNOWN).astype(str)
    with np.errstate(invalid="ignore", divide="ignore"):
        share = np.where(has, table[np.arange(n), best] / total, np.nan)
    return transmitters, share.astype(np.float32), (table > 0).sum(axis=1).astype(np.int32)


# -- signs and selections -----------------------------------------------------------------------------

_SIGN_WORDS = {"+": 1, "exc": 1, "excitatory": 1, "+1": 1, "1": 1, "-": -1, "inh": -1, "inhibitory": -1, "-1": -1}


def parse_signs(text: str) -> tuple[dict[str, int], int]:
    """``transmitter_signs`` text (``"glutamate=-,other=+"``) over the defaults: (sign per transmitter, the sign
    of any other transmitter). Raises :class:`ParamError` naming the item."""
    signs, other = dict(DEFAULT_SIGNS), DEFAULT_OTHER_SIGN
    fix = "write NAME=+ or NAME=- items separated by commas (NAME a transmitter such as gaba, or 'other')"
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        name, sep, word = item.partition("=")
        if not sep or not name.strip():
            raise ParamError("transmitter_signs", f"{item!r} is not NAME=SIGN", fix)
        sign = _SIGN_WORDS.get(word.strip().lower())
        if sign is None:
            raise ParamError("transmitter_signs", f"{word.strip()!r} in {item!r} is not a sign",
                             "give + (excitatory) or - (inhibitory)")
        key = canonical_transmitter(name)
        if key == OTHER:
            other = sign
        else:
            signs[key] = sign
    return signs, other


def excitatory_mask(transmitters: np.ndarray, text: str) -> np.ndarray:
    """Whether each neuron is excitatory, from its transmitter and the sign rules ``text``."""
    signs, other = parse_signs(text)
    table = {t: signs.get(t, other) for t in set(transmitters.tolist())}
    return np.asarray([table[t] > 0 for t in transmitters.tolist()], dtype=bool)


def _items(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _by_class_or_name(conn: Connectome, items: list[str], field: str, full: Connectome | None = None) -> np.ndarray:
    """Bool mask of the nodes named by ``items`` (cell classes or node names, case-insensitive).

    ``full``: the connectome before the class selection, to say why a name it has is not in ``conn``.
    """
    classes = {c.lower(): c for c in conn.class_names}
    lower_names = np.char.lower(conn.names.astype(str))
    index = {name: i for i, name in enumerate(lower_names.tolist())}
    mask = np.zeros(conn.n, dtype=bool)
    for item in items:
        key = item.lower()
        if key in classes:
            mask |= conn.classes == classes[key]
        elif key in index:
            mask[index[key]] = True
        else:
            where = f"the connectome {conn.source}"
            if full is not None:
                hits = np.flatnonzero(np.char.lower(full.names.astype(str)) == key)
                if hits.size:
                    raise ParamError(field, f"neuron {item!r} (class {full.classes[hits[0]]}) is not in the network",
                                     "add its class to connectome_classes, or choose another neuron")
            examples = ", ".join(conn.names[: min(4, conn.n)].tolist())
            raise ParamError(field, f"{item!r} is neither a cell class nor a neuron of {where}",
                             f"use cell classes ({', '.join(conn.class_names)}) or neuron names (e.g. {examples})")
    return mask


def cell_selection(conn: Connectome, text: str, default_classes: tuple[str, ...]) -> np.ndarray:
    """Bool mask of the nodes that become network neurons: ``connectome_classes`` (``all``, or classes/names),
    default ``default_classes`` present in the source (all nodes when none is)."""
    items = _items(text)
    if [i.lower() for i in items] == ["all"]:
        return np.ones(conn.n, dtype=bool)
    if not items:
        present = [c for c in default_classes if c in conn.class_names]
        return np.isin(conn.classes, present) if present else np.ones(conn.n, dtype=bool)
    return _by_class_or_name(conn, items, "connectome_classes")


# -- the network's wiring ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Wiring:
    """The recurrent wiring of a connectome network, in the model's neuron order (excitatory first).

    ``exc``/``inh``: the projections of the excitatory / inhibitory presynaptic neurons onto all neurons (CSR
    rows are those neurons in model order), with synapse counts ``exc_counts``/``inh_counts``. ``gap``: the
    symmetric gap-junction structure with counts, or None. ``inputs``/``outputs``: model indices of the neurons
    that receive the task input / feed the readout. ``order[k]``: the connectome node (in the source's node
    order) of model neuron k.
    """

    source: str
    names: np.ndarray
    classes: np.ndarray
    transmitters: np.ndarray
    transmitter_share: np.ndarray
    n_transmitters: np.ndarray
    n_exc: int
    exc: Structure
    inh: Structure
    exc_counts: np.ndarray
    inh_counts: np.ndarray
    gap: Structure | None
    gap_counts: np.ndarray | None
    inputs: np.ndarray
    outputs: np.ndarray
    order: np.ndarray
    transmitter_source: str

    @property
    def n(self) -> int:
        return int(self.names.size)

    @property
    def nnz(self) -> int:
        return self.exc.nnz + self.inh.nnz

    @property
    def is_excitatory(self) -> np.ndarray:
        return np.arange(self.n) < self.n_exc

    def resolve(self, cfg: NetworkConfig) -> NetworkConfig:
        """``cfg`` with the connectome's size and E/I split (``n_rec`` is the connectome's)."""
        return replace(cfg, n_rec=self.n, exc_count=self.n_exc)

    def input_structure(self, n_in: int) -> Structure:
        """The input projection ``[n_in, n]``: every task input onto every input neuron (and no other)."""
        k = self.inputs.size
        indptr = np.arange(n_in + 1, dtype=np.int64) * k
        return Structure(n_in, self.n, indptr, np.tile(self.inputs.astype(np.int32), n_in))

    def recurrent(self) -> tuple[Structure, np.ndarray]:
        """The whole recurrent structure ``[n, n]`` (model order) and its counts."""
        indptr = np.concatenate([self.exc.indptr, self.exc.indptr[-1] + self.inh.indptr[1:]])
        return (Structure(self.n, self.n, indptr, np.concatenate([self.exc.indices, self.inh.indices])),
                np.concatenate([self.exc_counts, self.inh_counts]))

    def synapse_pre(self) -> np.ndarray:
        """Model index of every recurrent synapse's presynaptic neuron, excitatory projection first."""
        return self.recurrent()[0].pre_post()[0]


def wiring_from(conn: Connectome, cfg: NetworkConfig) -> Wiring:
    """The wiring of ``conn`` under ``cfg``'s class selection, sign rules and task interface (ParamError
    naming the field when they do not fit the connectome)."""
    from diffbrain.network.connectome_cect import DEFAULT_NETWORK_CLASSES

    selected = conn.subset(cell_selection(conn, cfg.connectome_classes, DEFAULT_NETWORK_CLASSES))
    if selected.n < 2:
        raise ParamError("connectome_classes", f"selects {selected.n} neuron(s) of {conn.source}",
                         f"choose classes with at least two neurons ({', '.join(conn.class_names)})")
    exc_mask = excitatory_mask(selected.transmitters, cfg.transmitter_signs)
    order = np.concatenate([np.flatnonzero(exc_mask), np.flatnonzero(~exc_mask)])
    net = selected.permuted(order)
    n_exc = int(exc_mask.sum())
    full, counts = net.chemical, net.counts
    exc, inh = full.rows(0, n_exc), full.rows(n_exc, net.n)
    cut = int(full.indptr[n_exc])
    for name, s in (("excitatory", exc), ("inhibitory", inh)):
        if s.nnz == 0:
            per = {t: int(c) for t, c in zip(*np.unique(net.transmitters, return_counts=True), strict=True)}
            raise ParamError("transmitter_signs", f"the network of {conn.source} has no {name} synapse (neurons "
                             f"by transmitter: {per})", "change transmitter_signs or connectome_classes so that "
                             "both signs have synapses")
    fields = (("input_neurons", cfg.input_neurons, DEFAULT_INPUTS), ("output_neurons", cfg.output_neurons,
                                                                      DEFAULT_OUTPUTS))
    chosen = []
    for field, text, default in fields:
        items = _items(text) or _items(default)
        try:
            mask = _by_class_or_name(net, items, field, full=conn)
        except ParamError as err:
            if text:
                raise
            raise ParamError(field, f"the default ({default}) does not fit {conn.source}: {err.problem}",
                             err.fix) from None
        if not mask.any():
            raise ParamError(field, f"{text or default!r} selects no neuron of the network",
                             "name other classes or neurons")
        chosen.append(np.flatnonzero(mask).astype(np.int32))
    # the source's node index of each model neuron
    kept = np.flatnonzero(cell_selection(conn, cfg.connectome_classes, DEFAULT_NETWORK_CLASSES))
    return Wiring(
        source=conn.source, names=net.names, classes=net.classes, transmitters=net.transmitters,
        transmitter_share=net.transmitter_share, n_transmitters=net.n_transmitters, n_exc=n_exc,
        exc=exc, inh=inh, exc_counts=counts[:cut], inh_counts=counts[cut:], gap=net.gap, gap_counts=net.gap_counts,
        inputs=chosen[0], outputs=chosen[1], order=kept[order], transmitter_source=conn.transmitter_source)


def load_connectome(spec: str, nodes: str = "") -> Connectome:
    """The connectome named ``spec`` (a cect dataset, case-insensitive) or stored in the file ``spec`` (CSV edge
    list or NPZ CSR arrays, with the node table ``nodes``); cached per file state. ParamError on bad input."""
    if not spec:
        raise ParamError("connectome", "not set (conn_method is connectome)",
                         "give a dataset name such as Cook2019Herm, or an edge-list file with connectome_nodes")
    if looks_like_file(spec):
        from diffbrain.network.connectome_files import load_file

        return load_file(spec, nodes)
    from diffbrain.network.connectome_cect import load_dataset

    return load_dataset(spec)


_WIRING_FIELDS = ("connectome", "connectome_nodes", "connectome_classes", "transmitter_signs", "input_neurons",
                  "output_neurons")


@lru_cache(maxsize=8)
def _wiring_cached(key: tuple) -> Wiring:
    values = dict(zip(_WIRING_FIELDS, key[: len(_WIRING_FIELDS)], strict=True))
    cfg = replace(NetworkConfig(), conn_method="connectome", **values)
    return wiring_from(load_connectome(cfg.connectome, cfg.connectome_nodes), cfg)


def _stamp(path: str) -> tuple:
    try:
        st = os.stat(path)
    except OSError:
        return (path,)
    return (path, st.st_size, st.st_mtime_ns)


def build_wiring(cfg: NetworkConfig) -> Wiring:
    """The wiring of a ``conn_method = "connectome"`` configuration (cached while its files are unchanged)."""
    values = tuple(getattr(cfg, f) for f in _WIRING_FIELDS)
    stamps = (_stamp(cfg.connectome) if looks_like_file(cfg.connectome) else (),
              _stamp(cfg.connectome_nodes) if cfg.connectome_nodes else ())
    return _wiring_cached(values + stamps)


def check_wiring(params: dict) -> None:
    """``sweep plan``'s check of a connectome point: the source loads and the selections fit it."""
    if params.get("conn_method") != "connectome":
        return
    build_wiring(NetworkConfig(**{f: params[f] for f in NetworkConfig.__dataclass_fields__ if f in params}))


# -- initial weights --------------------------------------------------------------------------------


def count_magnitudes(counts: np.ndarray, scale: float, fan_in: float) -> np.ndarray:
    """Magnitudes proportional to synapse counts whose mean is the expected ``|N(0, scale / fan_in)|``
    (the Kaiming draw of the ``rand`` network): ``counts / mean(counts) * sqrt(2 scale / (pi fan_in))``."""
    counts = np.asarray(counts, dtype=np.float64)
    mean = float(counts.mean()) if counts.size else 1.0
    target = math.sqrt(2.0 * scale / (math.pi * max(1.0, fan_in)))
    return (counts / max(mean, 1e-30) * target).astype(np.float32)


def connectome_weights(cfg: NetworkConfig, wiring: Wiring, n_in: int, n_out: int,
                       rng: np.random.Generator) -> InitialWeights:
    """Initial magnitudes: the input onto the input neurons (Kaiming, as ``rand``), the recurrent synapses in
    proportion to their counts, the readout ``[n outputs, n_out]`` (as ``rand``, over the outputs)."""
    ff = kaiming_magnitudes(rng, n_in * wiring.inputs.size, cfg.ff_scale, n_in)
    exc = count_magnitudes(wiring.exc_counts, cfg.rec_scale, wiring.exc.mean_fan_in)
    inh = count_magnitudes(wiring.inh_counts, cfg.rec_scale * cfg.w_ei_ratio, wiring.inh.mean_fan_in)
    k = wiring.outputs.size
    readout = (rng.standard_normal((k, n_out)) * np.sqrt(2.0 / k)).astype(np.float32)
    tau_adapt = rng.uniform(min(100.0, cfg.tau_a), 2.0 * cfg.tau_a, wiring.n).astype(np.float32)
    return InitialWeights(ff, exc, inh, readout, tau_adapt)
