"""A user's connectome from files: a CSV edge list or NPZ CSR arrays, with a CSV node table.

- **Node table** (``connectome_nodes``): CSV with a header naming ``name`` and optionally ``class`` and
  ``transmitter``; one row per node, node i on data row i (the order of an NPZ's rows). Names are unique.
- **Edge list** (``connectome = edges.csv``): CSV with a header naming ``pre``, ``post``, ``weight`` and
  optionally ``transmitter`` (other columns are ignored). ``weight`` is the synapse count (>= 0; a zero row is
  no synapse; repeated pairs add up). A ``transmitter`` of ``gap`` (or ``electrical``) marks a gap junction:
  symmetric, a pair's count is the larger of its two directions. The file is read in blocks by pyarrow's
  streaming CSV reader and mapped to node indices in C (``pyarrow.compute.index_in``): memory grows with the
  edges (a few tens of bytes per edge while building the CSR), never with nodes squared.
- **NPZ** (``connectome = graph.npz``): ``indptr`` (n + 1), ``indices`` and ``data`` (counts) of the chemical
  synapses, rows presynaptic, and optionally ``gap_indptr``/``gap_indices``/``gap_data``; read without pickle.

A neuron's transmitter is the node table's where given, else the majority of its outgoing edges'
``transmitter`` column (:data:`~diffbrain.network.connectome.TRANSMITTER_RULE`), else ``unknown``. Bad input
raises :class:`ParamError` naming the file and line (or array entry): unknown nodes, negative or non-numeric
counts, malformed rows, duplicate node names. Line numbers are located by a plain re-read of the file, done
only once a problem is known.
"""

from __future__ import annotations

import csv
import math
import os
from functools import lru_cache
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

GAP_WORDS = {"gap", "electrical", "gj", "gap_junction", "generic_gj"}
EDGE_COLUMNS = ("pre", "post", "weight")
BLOCK_BYTES = 1 << 24


def _stamp(path: str) -> tuple:
    st = os.stat(path)
    return (st.st_size, st.st_mtime_ns)


def load_file(path: str, nodes: str) -> Connectome:
    """The connectome in ``path`` (``.npz``, else CSV) with the node table ``nodes`` (cached per file state)."""
    for field, value in (("connectome", path), ("connectome_nodes", nodes)):
        if not value:
            raise ParamError("connectome_nodes", "not set: a connectome file needs its node table",
                             "give a CSV with a header name,class,transmitter (one row per node)")
        if not os.path.isfile(value):
            raise ParamError(field, f"no such file: {value}", "give the path of an existing file")
    return _load(path, _stamp(path), nodes, _stamp(nodes))


@lru_cache(maxsize=2)
def _load(path: str, _path_stamp: tuple, nodes: str, _nodes_stamp: tuple) -> Connectome:
    names, classes, table_tx = read_nodes(nodes)
    if path.lower().endswith(".npz"):
        chem, counts, gap, gap_counts = read_npz(path, names.size)
        pre_tx = None
    else:
        chem, counts, gap, gap_counts, pre_tx = read_edges(path, names)
    n = names.size
    if pre_tx is not None:
        pre, codes, weights, code_names = pre_tx
        tx, share, n_tx = majority_transmitters(n, pre, weights, codes, code_names)
    else:
        tx, share, n_tx = np.full(n, UNKNOWN).astype(str), np.full(n, np.nan, np.float32), np.zeros(n, np.int32)
    given = table_tx != UNKNOWN
    transmitters = np.where(given, table_tx, tx).astype(str)
    share = np.where(given, np.float32(np.nan), share).astype(np.float32)
    words = f"transmitters from the node table {nodes} (column transmitter)"
    if pre_tx is not None:
        words += f"; for nodes without one, from the edge list's transmitter column: {TRANSMITTER_RULE}"
    return Connectome(source=path, names=names, classes=classes, transmitters=transmitters, transmitter_share=share,
                      n_transmitters=n_tx, chemical=chem, counts=counts, gap=gap, gap_counts=gap_counts,
                      transmitter_source=words)


# -- the node table --------------------------------------------------------------------------------


def _problem(field: str, path: str, line: int | None, problem: str, fix: str) -> ParamError:
    where = f"{path} line {line}" if line is not None else path
    return ParamError(field, f"{where}: {problem}", fix)


def read_nodes(path: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(names, classes, transmitters) of a node table; ``unknown`` where a class or transmitter is empty."""
    field, fix = "connectome_nodes", "write a CSV with a header name,class,transmitter and one row per node"
    try:
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.reader(f)
            header = [h.strip().lower() for h in next(reader, [])]
            if "name" not in header:
                raise _problem(field, path, 1, f"the header {','.join(header)!r} has no 'name' column", fix)
            col = {h: header.index(h) for h in ("name", "class", "transmitter") if h in header}
            names, classes, transmitters, seen = [], [], [], {}
            for row in reader:
                line = reader.line_num
                if not row or all(not c.strip() for c in row):
                    continue
                if len(row) != len(header):
                    raise _problem(field, path, line, f"{len(row)} fields where the header has {len(header)}", fix)
                name = row[col["name"]].strip()
                if not name:
                    raise _problem(field, path, line, "empty node name", "give every node a name")
                if name in seen:
                    raise _problem(field, path, line, f"node {name!r} repeats line {seen[name]}",
                                   "list each node once")
                seen[name] = line
                names.append(name)
                classes.append(row[col["class"]].strip() or UNKNOWN if "class" in col else UNKNOWN)
                transmitters.append(canonical_transmitter(row[col["transmitter"]]) if "transmitter" in col else UNKNOWN)
    except UnicodeDecodeError as err:
        raise _problem(field, path, None, f"not UTF-8 text ({err.reason})", fix) from None
    except csv.Error as err:
        raise _problem(field, path, None, f"not CSV ({err})", fix) from None
    if not names:
        raise _problem(field, path, None, "no nodes", fix)
    return np.asarray(names, dtype=str), np.asarray(classes, dtype=str), np.asarray(transmitters, dtype=str)


# -- the CSV edge list -------------------------------------------------------------------------------


def _edge_header(path: str) -> list[str]:
    fix = "write a header line pre,post,weight[,transmitter]"
    try:
        with open(path, newline="", encoding="utf-8") as f:
            header = [h.strip().lower() for h in next(csv.reader(f), [])]
    except UnicodeDecodeError as err:
        raise _problem("connectome", path, None, f"not UTF-8 text ({err.reason})", fix) from None
    missing = [c for c in EDGE_COLUMNS if c not in header]
    if missing:
        raise _problem("connectome", path, 1, f"the header {','.join(header)!r} lacks {', '.join(missing)}", fix)
    return header


def _row_problem(row: list[str], header: list[str], index: dict[str, int]) -> str | None:
    """What is wrong with one data row of an edge list (None: nothing)."""
    if len(row) != len(header):
        return f"{len(row)} fields where the header has {len(header)}"
    get = {h: row[i].strip() for i, h in enumerate(header)}
    for end in ("pre", "post"):
        if not get[end]:
            return f"empty {end} node"
        if get[end] not in index:
            return f"unknown node {get[end]!r} ({end}), not in the node table"
    try:
        weight = float(get["weight"])
    except ValueError:
        return f"weight {get['weight']!r} is not a number"
    if not math.isfinite(weight):
        return f"weight {get['weight']!r} is not finite"
    if weight < 0:
        return f"negative count {get['weight']!r}"
    return None


def _locate(path: str, header: list[str], names: np.ndarray, fallback: str) -> ParamError:
    """The first bad line of an edge list, found by reading it again row by row (only on the error path)."""
    index = {name: i for i, name in enumerate(names.tolist())}
    fix = "fix that line: pre,post,weight[,transmitter] with nodes of the node table and a count >= 0"
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        next(reader, None)
        try:
            for row in reader:
                if not row:  # empty lines are skipped, as the fast reader does
                    continue
                problem = _row_problem(row, header, index)
                if problem:
                    return _problem("connectome", path, reader.line_num, problem, fix)
        except csv.Error as err:
            return _problem("connectome", path, reader.line_num, f"malformed CSV ({err})", fix)
    return _problem("connectome", path, None, fallback, fix)


class _InvalidRow(Exception):
    pass


def read_edges(path: str, names: np.ndarray):
    """Chemical CSR and counts, gap CSR and counts (or None), and the per-synapse transmitter data
    ``(pre, codes, weights, code names)`` (or None without a transmitter column) of a CSV edge list."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.csv as pcsv

    header = _edge_header(path)
    has_tx = "transmitter" in header
    columns = [*EDGE_COLUMNS, *(["transmitter"] if has_tx else [])]
    value_set = pa.array(names.tolist(), type=pa.string())
    types = {"pre": pa.string(), "post": pa.string(), "weight": pa.float64(), "transmitter": pa.string()}
    pre_parts, post_parts, w_parts, code_parts = [], [], [], []
    codes: dict[str, int] = {}
    try:
        reader = pcsv.open_csv(
            path, read_options=pcsv.ReadOptions(block_size=BLOCK_BYTES, column_names=header, skip_rows=1),
            parse_options=pcsv.ParseOptions(invalid_row_handler=lambda row: "error"),
            convert_options=pcsv.ConvertOptions(column_types={c: types[c] for c in columns}, include_columns=columns,
                                                strings_can_be_null=False, quoted_strings_can_be_null=False))
        for batch in reader:
            ends = [pc.index_in(pc.utf8_trim_whitespace(batch.column(c)), value_set=value_set) for c in ("pre", "post")]
            weight = batch.column("weight")
            if any(e.null_count for e in ends) or weight.null_count:
                raise _InvalidRow("unknown node or missing count")
            w = weight.to_numpy(zero_copy_only=False)
            if not np.isfinite(w).all() or (w < 0).any():
                raise _InvalidRow("a count that is negative or not finite")
            pre_parts.append(ends[0].to_numpy(zero_copy_only=False).astype(np.int32))
            post_parts.append(ends[1].to_numpy(zero_copy_only=False).astype(np.int32))
            w_parts.append(w.astype(np.float32))
            if has_tx:
                enc = pc.dictionary_encode(pc.utf8_lower(pc.utf8_trim_whitespace(batch.column("transmitter"))))
                local = [codes.setdefault(str(v), len(codes)) for v in enc.dictionary.to_pylist()]
                code_parts.append(np.asarray(local, dtype=np.int32)[enc.indices.to_numpy(zero_copy_only=False)]
                                  if local else np.zeros(0, np.int32))
    except (_InvalidRow, pa.ArrowInvalid, pa.ArrowTypeError, UnicodeDecodeError) as err:
        raise _locate(path, header, names, str(err)) from None
    n = names.size
    cat = lambda parts, dtype: np.concatenate(parts) if parts else np.zeros(0, dtype)  # noqa: E731
    pre, post, weights = cat(pre_parts, np.int32), cat(post_parts, np.int32), cat(w_parts, np.float32)
    del pre_parts, post_parts, w_parts
    if has_tx:
        code = cat(code_parts, np.int32)
        code_names = list(codes)
        is_gap = np.isin(code, [c for name, c in codes.items() if name in GAP_WORDS])
    else:
        code, code_names, is_gap = None, [], np.zeros(pre.size, dtype=bool)
    gap = gap_counts = None
    if is_gap.any():
        g_pre, g_post, g_w = pre[is_gap], post[is_gap], weights[is_gap]
        off_diagonal = g_pre != g_post  # a junction of a cell with itself couples nothing
        g_pre, g_post, g_w = g_pre[off_diagonal], g_post[off_diagonal], g_w[off_diagonal]
        gap, gap_counts = csr_from_edges(n, n, np.concatenate([g_pre, g_post]), np.concatenate([g_post, g_pre]),
                                         np.concatenate([g_w, g_w]), combine="max")
        chem_rows = ~is_gap
        pre, post, weights = pre[chem_rows], post[chem_rows], weights[chem_rows]
        code = code[chem_rows] if code is not None else None
    chem, counts = csr_from_edges(n, n, pre, post, weights)
    if chem.nnz == 0:
        raise _problem("connectome", path, None, "no chemical synapse (every count is 0, or every row is a gap "
                       "junction)", "give rows pre,post,weight with counts > 0")
    tx = None
    if code is not None:
        chemical_codes = [c for name, c in codes.items() if name not in GAP_WORDS]
        keep = np.isin(code, chemical_codes) & (weights > 0)
        tx = (pre[keep], code[keep], weights[keep], code_names)
    return chem, counts, gap, gap_counts, tx


# -- NPZ CSR arrays ------------------------------------------------------------------------------------


def _csr_arrays(z, prefix: str, n: int, path: str, required: bool):
    keys = [f"{prefix}indptr", f"{prefix}indices", f"{prefix}data"]
    present = [k in z.files for k in keys]
    fix = f"store {', '.join(keys)} (CSR rows presynaptic, counts >= 0) for the node table's {n} nodes"
    if not any(present) and not required:
        return None, None
    if not all(present):
        lacking = ", ".join(k for k, p in zip(keys, present, strict=True) if not p)
        raise _problem("connectome", path, None, f"lacks {lacking}", fix)
    try:
        indptr, indices, data = (np.asarray(z[k]) for k in keys)
    except ValueError as err:  # object arrays need pickle, which is never allowed
        raise _problem("connectome", path, None, f"unreadable arrays ({err})", fix) from None
    if indptr.ndim != 1 or indptr.size != n + 1 or not np.issubdtype(indptr.dtype, np.integer):
        raise _problem("connectome", path, None, f"{keys[0]} must be {n + 1} integers (n nodes + 1), got "
                       f"{indptr.shape} {indptr.dtype}", fix)
    if indices.ndim != 1 or not np.issubdtype(indices.dtype, np.integer) or data.shape != indices.shape:
        raise _problem("connectome", path, None, f"{keys[1]} (integers) and {keys[2]} must be 1-D of one length",
                       fix)
    steps = np.diff(indptr)
    if indptr[0] != 0 or (steps < 0).any() or indptr[-1] != indices.size:
        raise _problem("connectome", path, None, f"{keys[0]} must start at 0, never decrease and end at "
                       f"len({keys[1]}) = {indices.size}", fix)
    bad = np.flatnonzero((indices < 0) | (indices >= n))
    if bad.size:
        raise _problem("connectome", path, None, f"{keys[1]}[{bad[0]}] = {indices[bad[0]]} is not a node index "
                       f"(0..{n - 1})", fix)
    values = data.astype(np.float64)
    bad = np.flatnonzero(~np.isfinite(values) | (values < 0))
    if bad.size:
        raise _problem("connectome", path, None, f"{keys[2]}[{bad[0]}] = {data[bad[0]]} is not a count >= 0", fix)
    pre = np.repeat(np.arange(n, dtype=np.int64), steps)
    return pre, indices.astype(np.int64), values.astype(np.float32)


def read_npz(path: str, n: int):
    """Chemical CSR and counts, gap CSR and counts (or None) of an NPZ of CSR arrays over ``n`` nodes."""
    try:
        z = np.load(Path(path), allow_pickle=False)
    except (OSError, ValueError) as err:
        raise _problem("connectome", path, None, f"not an NPZ archive ({err})", "give a .npz of CSR arrays") from None
    with z:
        pre, post, data = _csr_arrays(z, "", n, path, True)
        chem, counts = csr_from_edges(n, n, pre, post, data)
        g_pre, g_post, g_data = _csr_arrays(z, "gap_", n, path, False)
    if chem.nnz == 0:
        raise _problem("connectome", path, None, "no chemical synapse (all counts are 0)", "store counts > 0")
    gap = gap_counts = None
    if g_pre is not None:
        off = g_pre != g_post
        g_pre, g_post, g_data = g_pre[off], g_post[off], g_data[off]
        gap, gap_counts = csr_from_edges(n, n, np.concatenate([g_pre, g_post]), np.concatenate([g_post, g_pre]),
                                         np.concatenate([g_data, g_data]), combine="max")
    return chem, counts, gap, gap_counts
