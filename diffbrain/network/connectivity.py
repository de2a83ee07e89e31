"""Recurrent connectivity in O(synapses): dense, random, fixed in-/out-degree, distance-dependent Gaussian.

Every sparse structure is drawn directly in CSR form (rows presynaptic, each row's targets sorted), in
chunks of rows, never as an N x N array, and deterministically from an explicit NumPy generator:

- ``rand``: each presynaptic row draws a Binomial(m, conn_prob) degree and that many distinct targets
  uniformly without replacement (m = N - 1 without self-synapses);
- ``fixed_out``: every presynaptic neuron has ``conn_num`` distinct targets;
- ``fixed_in``: every postsynaptic neuron has ``conn_num`` distinct sources (drawn per column, then
  counting-sorted into rows);
- ``gaussian``: neurons sit on a ring (evenly spaced slots in a random order); a pair at ring distance d
  is connected independently with probability ``conn_prob * exp(-d^2 / (2 conn_width^2))``. Each row
  draws its targets from that offset distribution by thinning: offsets are grouped into distance
  blocks, candidates are Binomial(block size, block maximum) distinct offsets of the block, each kept
  with its own probability over the block maximum. That is exact and costs O(synapses), not O(N^2).

A structure is also available as (pre, post) index arrays (:meth:`Structure.pre_post`), the form a
partition by postsynaptic neuron needs. Weights are stored as magnitudes (the model applies ``|w|``
and a population's reversal potential: Dale's law) and drawn for the non-zeros only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from diffbrain.network.config import NetworkConfig
from diffbrain.params import ParamError

# rows per chunk are chosen so that a chunk draws about this many synapses: temporaries stay a small
# fraction of the final structure (the chunks' index arrays are concatenated once at the end)
CHUNK_SYNAPSES = 1 << 20


@dataclass(frozen=True)
class Structure:
    """The fixed pattern of one projection ``[n_pre, n_post]``: CSR (``indptr``, ``indices``) or dense.

    A dense structure (``indptr is None``) connects every pair. The non-zero weight vector of a sparse
    structure is in CSR order (row-major, targets ascending within a row).
    """

    n_pre: int
    n_post: int
    indptr: np.ndarray | None = None  # int64 [n_pre + 1]
    indices: np.ndarray | None = None  # int32 [nnz]

    @classmethod
    def dense(cls, n_pre: int, n_post: int) -> Structure:
        return cls(n_pre, n_post)

    @property
    def sparse(self) -> bool:
        return self.indptr is not None

    @property
    def shape(self) -> tuple[int, int]:
        return self.n_pre, self.n_post

    @property
    def nnz(self) -> int:
        return int(self.indptr[-1]) if self.sparse else self.n_pre * self.n_post

    @property
    def out_degrees(self) -> np.ndarray:
        return np.diff(self.indptr) if self.sparse else np.full(self.n_pre, self.n_post)

    def in_degrees(self) -> np.ndarray:
        if not self.sparse:
            return np.full(self.n_post, self.n_pre)
        return np.bincount(self.indices, minlength=self.n_post)

    @property
    def mean_fan_in(self) -> float:
        return max(1.0, self.nnz / self.n_post)

    @property
    def density(self) -> float:
        return self.nnz / max(1, self.n_pre * self.n_post)

    @property
    def nbytes(self) -> int:
        """Host bytes of the pattern (0 for dense: nothing is stored)."""
        return int(self.indptr.nbytes + self.indices.nbytes) if self.sparse else 0

    def rows(self, start: int, stop: int) -> Structure:
        """The sub-projection of presynaptic rows ``[start, stop)`` (views of the index arrays)."""
        if not self.sparse:
            return Structure.dense(stop - start, self.n_post)
        lo, hi = int(self.indptr[start]), int(self.indptr[stop])
        return Structure(stop - start, self.n_post, self.indptr[start : stop + 1] - lo, self.indices[lo:hi])

    def pre_post(self) -> tuple[np.ndarray, np.ndarray]:
        """(presynaptic, postsynaptic) int32 index of every synapse, in CSR order."""
        if not self.sparse:
            pre, post = np.divmod(np.arange(self.nnz, dtype=np.int64), self.n_post)
            return pre.astype(np.int32), post.astype(np.int32)
        pre = np.repeat(np.arange(self.n_pre, dtype=np.int32), self.out_degrees)
        return pre, self.indices

    def mask(self) -> np.ndarray:
        """The dense boolean ``[n_pre, n_post]`` pattern (small networks and the masked-dense operator only)."""
        out = np.zeros(self.shape, dtype=bool)
        if not self.sparse:
            out[:] = True
            return out
        pre, post = self.pre_post()
        out[pre, post] = True
        return out

    def to_dense(self, data: np.ndarray) -> np.ndarray:
        """Scatter the non-zero vector (CSR order) into a dense matrix with zeros off the pattern."""
        data = np.asarray(data)
        if not self.sparse:
            return data.reshape(self.shape)
        dense = np.zeros(self.shape, dtype=data.dtype)
        pre, post = self.pre_post()
        dense[pre, post] = data
        return dense

    def dense_values(self, dense: np.ndarray) -> np.ndarray:
        """The entries of a dense ``[n_pre, n_post]`` array on the pattern, in CSR order."""
        if not self.sparse:
            return np.asarray(dense).reshape(-1)
        pre, post = self.pre_post()
        return np.asarray(dense)[pre, post]


# -- sampling distinct values without replacement, many rows at once -----------------------------------


def _sorted_unique(keys: np.ndarray) -> np.ndarray:
    """Sorted distinct values (a sort and a comparison: NumPy's hash-based ``unique`` is far slower here)."""
    keys.sort()
    if keys.size < 2:
        return keys
    keep = np.empty(keys.size, dtype=bool)
    keep[0] = True
    np.not_equal(keys[1:], keys[:-1], out=keep[1:])
    return keys[keep]


def _rejection_keys(counts: np.ndarray, m: int, rng: np.random.Generator) -> np.ndarray:
    """Sorted keys ``row * m + value``: ``counts[row]`` distinct values of ``[0, m)`` per row, each set
    uniform over the subsets (iid draws; duplicates redrawn until every row has its count)."""
    rows = np.arange(counts.size, dtype=np.int64)
    keys = _sorted_unique(np.repeat(rows, counts) * m + rng.integers(0, m, int(counts.sum())))
    while True:
        deficit = counts - np.bincount(keys // m, minlength=counts.size)
        missing = int(deficit.sum())
        if missing == 0:
            return keys
        fresh = np.repeat(rows, deficit) * m + rng.integers(0, m, missing)
        keys = _sorted_unique(np.concatenate([keys, fresh]))


def choose_distinct(counts: np.ndarray, m: int, rng: np.random.Generator) -> np.ndarray:
    """``counts[r]`` distinct values of ``[0, m)`` for every row r, uniform without replacement, returned
    concatenated row by row and ascending within a row (int64). O(sum(counts)) memory: a row asking for
    more than half of ``[0, m)`` draws the values it leaves out instead."""
    counts = np.asarray(counts, dtype=np.int64)
    flip = counts > m // 2
    keys = _rejection_keys(np.where(flip, m - counts, counts), m, rng)
    if flip.any():
        flipped = np.flatnonzero(flip)
        full = (flipped[:, None] * m + np.arange(m)[None, :]).ravel()
        is_flipped = flip[keys // m]
        left_out = keys[is_flipped]
        kept = full[~np.isin(full, left_out, assume_unique=True)]
        keys = np.sort(np.concatenate([keys[~is_flipped], kept]))
    return keys % m


def _row_chunks(n_rows: int, synapses_per_row: float):
    step = max(1, int(CHUNK_SYNAPSES // max(synapses_per_row, 1.0)))
    for start in range(0, n_rows, step):
        yield start, min(n_rows, start + step)


def _skip_self(values: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Map values drawn from ``[0, n - 1)`` to ``[0, n)`` without each row's own index."""
    return values + (values >= rows)


def _indptr(degrees: np.ndarray) -> np.ndarray:
    indptr = np.zeros(degrees.size + 1, dtype=np.int64)
    np.cumsum(degrees, out=indptr[1:])
    return indptr


def _by_row_degrees(n: int, degrees: np.ndarray, self_synapses: bool, rng: np.random.Generator) -> Structure:
    """Rows with given out-degrees, targets uniform without replacement (self excluded unless allowed),
    written chunk by chunk into the preallocated index array."""
    m = n if self_synapses else n - 1
    indptr = _indptr(degrees)
    indices = np.empty(int(indptr[-1]), dtype=np.int32)
    for start, stop in _row_chunks(n, float(degrees.mean()) if n else 0.0):
        counts = degrees[start:stop]
        values = choose_distinct(counts, m, rng)
        if not self_synapses:
            values = _skip_self(values, np.repeat(np.arange(start, stop, dtype=np.int64), counts))
        indices[indptr[start] : indptr[stop]] = values
    return Structure(n, n, indptr, indices)


def random_structure(n: int, prob: float, rng: np.random.Generator, self_synapses: bool = False) -> Structure:
    """``rand``: Binomial(m, prob) out-degree per row, targets without replacement."""
    degrees = rng.binomial(n if self_synapses else n - 1, prob, n).astype(np.int64)
    return _by_row_degrees(n, degrees, self_synapses, rng)


def fixed_out_structure(n: int, num: int, rng: np.random.Generator, self_synapses: bool = False) -> Structure:
    """``fixed_out``: every presynaptic neuron projects to ``num`` distinct targets."""
    return _by_row_degrees(n, np.full(n, num, dtype=np.int64), self_synapses, rng)


def fixed_in_structure(n: int, num: int, rng: np.random.Generator, self_synapses: bool = False) -> Structure:
    """``fixed_in``: every postsynaptic neuron receives ``num`` distinct sources, drawn per column and
    counting-sorted into CSR rows chunk by chunk (targets stay ascending within a row)."""
    sources = _by_row_degrees(n, np.full(n, num, dtype=np.int64), self_synapses, rng).indices  # column-major
    indptr = _indptr(np.bincount(sources, minlength=n).astype(np.int64))
    cursor = indptr[:-1].copy()
    targets = np.empty(sources.size, dtype=np.int32)
    for start, stop in _row_chunks(n, float(num)):
        src = sources[start * num : stop * num]
        order = np.argsort(src, kind="stable")
        src_sorted = src[order]
        first = np.flatnonzero(np.r_[True, src_sorted[1:] != src_sorted[:-1]])
        rank = np.arange(src.size) - np.repeat(first, np.diff(np.r_[first, src.size]))
        targets[cursor[src_sorted] + rank] = start + order // num
        cursor += np.bincount(src, minlength=n)
    return Structure(n, n, indptr, targets)


def ring_positions(n: int, rng: np.random.Generator) -> np.ndarray:
    """Positions in [0, 1) on a ring: evenly spaced, assigned to neurons in a random order (so E and I mix)."""
    return rng.permutation(n) / n


def ring_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    d = np.abs(a[:, None] - b[None, :])
    return np.minimum(d, 1.0 - d)


def _distance_blocks(n: int, width: float) -> list[tuple[int, int]]:
    """Blocks ``[lo, hi)`` of ring distances (in slots, 1 .. n//2): a quarter width each up to four widths,
    then doubling (the far tail is sparse, so few candidates are drawn there)."""
    sigma = width * n
    step = max(1, int(sigma / 4))
    blocks, lo, top = [], 1, n // 2 + 1
    while lo < top:
        hi = min(top, lo + step)
        blocks.append((lo, hi))
        if lo > 4 * sigma:
            step *= 2
        lo = hi
    return blocks


def gaussian_structure(n: int, prob: float, width: float, rng: np.random.Generator,
                       self_synapses: bool = False) -> Structure:
    """``gaussian``: P(i -> j) = prob * exp(-d_ij^2 / (2 width^2)), d the ring distance (fraction of the ring)."""
    slot_of = rng.permutation(n)  # neuron -> slot (position slot / n), the draw order of ring_positions
    neuron_at = np.empty(n, dtype=np.int64)
    neuron_at[slot_of] = np.arange(n)
    p_of = lambda d: prob * np.exp(-((d / n) ** 2) / (2.0 * width**2))  # d in slots
    blocks = _distance_blocks(n, width)
    n_both = (n + 1) // 2  # distances below this have two offsets (d and n - d)
    expected = 2.0 * sum(float(p_of(np.arange(lo, hi)).sum()) for lo, hi in blocks)
    degrees, parts = np.zeros(n, dtype=np.int64), []
    for start, stop in _row_chunks(n, expected):
        rows = np.arange(start, stop, dtype=np.int64)
        chunk_rows, chunk_slots = [], []
        if self_synapses:
            keep = rows[rng.random(rows.size) < prob]
            chunk_rows.append(keep)
            chunk_slots.append(slot_of[keep])
        for lo, hi in blocks:
            first, second = hi - lo, max(0, min(hi, n_both) - lo)
            size, top = first + second, float(p_of(lo))
            counts = rng.binomial(size, top, rows.size)
            picks = choose_distinct(counts, size, rng)
            owner = np.repeat(rows, counts)
            d = lo + np.where(picks < first, picks, picks - first)
            accept = rng.random(picks.size) * top < p_of(d)
            owner, d, picks = owner[accept], d[accept], picks[accept]
            offset = np.where(picks < first, d, n - d)
            chunk_rows.append(owner)
            chunk_slots.append((slot_of[owner] + offset) % n)
        owner = np.concatenate(chunk_rows)
        target = neuron_at[np.concatenate(chunk_slots)]
        keys = np.sort(owner * n + target)
        degrees[start:stop] = np.bincount(keys // n - start, minlength=stop - start)
        parts.append((keys % n).astype(np.int32))
    indices = np.concatenate(parts) if parts else np.zeros(0, np.int32)
    return Structure(n, n, _indptr(degrees), indices)


def expected_synapses(cfg: NetworkConfig) -> float:
    """Expected number of recurrent synapses of ``cfg`` (no structure drawn): what memory planning uses."""
    n = cfg.n_rec
    m = n if cfg.self_synapses else n - 1
    if cfg.conn_method == "dense":
        return float(n * n)
    if cfg.conn_method == "connectome":  # the data's synapses (the wiring is cached: loaded once)
        from diffbrain.network.connectome import build_wiring

        return float(build_wiring(cfg).nnz)
    if cfg.conn_method == "rand":
        return n * m * cfg.conn_prob
    if cfg.conn_method in ("fixed_in", "fixed_out"):
        return float(n * cfg.conn_num)
    d = np.arange(1, n, dtype=np.float64)
    d = np.minimum(d, n - d) / n
    per_row = cfg.conn_prob * (float(np.exp(-(d**2) / (2 * cfg.conn_width**2)).sum()) + float(cfg.self_synapses))
    return n * per_row


def recurrent_structure(cfg: NetworkConfig, rng: np.random.Generator) -> Structure:
    """The ``[n_rec, n_rec]`` recurrent structure (rows presynaptic; E neurons first, then I)."""
    n = cfg.n_rec
    if cfg.conn_method == "dense":
        return Structure.dense(n, n)
    if cfg.conn_method == "rand":
        return random_structure(n, cfg.conn_prob, rng, cfg.self_synapses)
    if cfg.conn_method == "fixed_out":
        return fixed_out_structure(n, cfg.conn_num, rng, cfg.self_synapses)
    if cfg.conn_method == "fixed_in":
        return fixed_in_structure(n, cfg.conn_num, rng, cfg.self_synapses)
    if cfg.conn_method == "gaussian":
        return gaussian_structure(n, cfg.conn_prob, cfg.conn_width, rng, cfg.self_synapses)
    raise ParamError("conn_method", f"unknown connectivity {cfg.conn_method!r}",
                     "use dense, rand, fixed_in, fixed_out or gaussian")


def recurrent_structures(cfg: NetworkConfig, rng: np.random.Generator) -> tuple[Structure, Structure]:
    """Excitatory-presynaptic and inhibitory-presynaptic projections onto all neurons."""
    full = recurrent_structure(cfg, rng)
    exc, inh = full.rows(0, cfg.n_exc), full.rows(cfg.n_exc, cfg.n_rec)
    fix = {"rand": "raise conn_prob or n_rec", "gaussian": "raise conn_prob, conn_width or n_rec"}
    for name, s in (("excitatory", exc), ("inhibitory", inh)):
        if s.nnz == 0:
            field = "conn_num" if cfg.conn_method.startswith("fixed") else "conn_prob"
            raise ParamError(field, f"the {name} projection drew no synapse at n_rec={cfg.n_rec} "
                             f"({cfg.conn_method})", fix.get(cfg.conn_method, "raise conn_num"))
    return exc, inh


def kaiming_magnitudes(rng: np.random.Generator, n: int, scale: float, fan_in: float) -> np.ndarray:
    """``|N(0, scale / fan_in)|`` samples (Kaiming normal with variance multiplier ``scale``, as the paper)."""
    out = rng.standard_normal(n, dtype=np.float32)
    np.abs(out, out=out)
    out *= np.float32(math.sqrt(scale / max(1.0, fan_in)))
    return out


@dataclass(frozen=True)
class InitialWeights:
    """Initial parameters (magnitudes): ``ff`` dense ``[n_in, n_rec]``; ``exc``/``inh`` the non-zero vectors
    of their structures (dense ones flattened row-major), ``readout`` ``[n_rec, n_out]``."""

    ff: np.ndarray
    exc: np.ndarray
    inh: np.ndarray
    readout: np.ndarray
    tau_adapt: np.ndarray  # ms, per neuron


def initial_weights(cfg: NetworkConfig, n_in: int, n_out: int, exc: Structure, inh: Structure,
                    rng: np.random.Generator) -> InitialWeights:
    """Draw the initial weights: Kaiming magnitudes over each projection's mean fan-in, as the paper's
    script; only the non-zeros are drawn."""
    n = cfg.n_rec
    ff = kaiming_magnitudes(rng, n_in * n, cfg.ff_scale, n_in).reshape(n_in, n)
    w_exc = kaiming_magnitudes(rng, exc.nnz, cfg.rec_scale, exc.mean_fan_in)
    w_inh = kaiming_magnitudes(rng, inh.nnz, cfg.rec_scale * cfg.w_ei_ratio, inh.mean_fan_in)
    readout = (rng.standard_normal((n, n_out)) * np.sqrt(2.0 / n)).astype(np.float32)
    # adaptation time constants around tau_a: uniform in [min(100 ms, tau_a), 2 tau_a] as the paper's script
    tau_adapt = rng.uniform(min(100.0, cfg.tau_a), 2.0 * cfg.tau_a, n).astype(np.float32)
    return InitialWeights(ff, w_exc, w_inh, readout, tau_adapt)
