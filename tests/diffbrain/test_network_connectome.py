"""Connectome-constrained networks: sources (hand-written files, the cect datasets offline), wiring, signs
(Dale's law per neuron), the task interface and bad input; no JAX here (the trained network is in
test_network_connectome_training.py)."""

import json
import socket
from dataclasses import replace

import numpy as np
import pytest

from diffbrain.network.config import NetworkConfig
from diffbrain.network.connectome import build_wiring, load_connectome
from diffbrain.network.connectome_cect import datasets
from diffbrain.params import ParamError

NODES = "name,class,transmitter\nA,sensory,\nB,inter,\nC,inter,GABA\nD,motor,glutamate\nE,motor,\n"
EDGES = ("pre,post,weight,transmitter\n"
         "A,B,2,acetylcholine\n"
         "A,C,1,ACh\n"
         "B,D,3,glutamate\n"
         "B,D,1,glutamate\n"  # a repeated pair adds up
         "B,C,1,gaba\n"  # B: glutamate 4 synapses, GABA 1 -> glutamate by majority (mixed)
         "C,A,5,\n"  # C's transmitter comes from the node table (GABA)
         "D,E,2,\n"
         "E,B,0,acetylcholine\n"  # a zero count is no synapse
         "A,E,3,gap\n"  # gap junctions: symmetric, the larger direction wins
         "E,A,1,gap\n"
         "E,D,1,acetylcholine\n")


def write(tmp_path, nodes=NODES, edges=EDGES):
    (tmp_path / "nodes.csv").write_text(nodes)
    (tmp_path / "edges.csv").write_text(edges)
    return str(tmp_path / "edges.csv"), str(tmp_path / "nodes.csv")


@pytest.fixture
def offline(monkeypatch):
    """Any network access fails the test."""
    def refuse(*args, **kwargs):
        raise AssertionError("network access")
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def test_hand_written_edge_list_gives_the_expected_csr(tmp_path):
    edges, nodes = write(tmp_path)
    conn = load_connectome(edges, nodes)
    assert conn.names.tolist() == list("ABCDE")
    #             A->B, A->C | B->C, B->D | C->A | D->E | E->D
    assert conn.chemical.indptr.tolist() == [0, 2, 4, 5, 6, 7]
    assert conn.chemical.indices.tolist() == [1, 2, 2, 3, 0, 4, 3]
    assert conn.counts.tolist() == [2, 1, 1, 4, 5, 2, 1]
    assert conn.gap.indptr.tolist() == [0, 1, 1, 1, 1, 2] and conn.gap.indices.tolist() == [4, 0]
    assert conn.gap_counts.tolist() == [3, 3]
    # the node table's transmitter wins; else the majority of the node's synapses; unknown without either
    assert conn.transmitters.tolist() == ["acetylcholine", "glutamate", "gaba", "glutamate", "acetylcholine"]
    assert conn.n_transmitters.tolist() == [1, 2, 0, 0, 1]
    assert conn.transmitter_share[1] == pytest.approx(0.8)


def test_npz_csr_arrays_give_the_same_connectome(tmp_path):
    edges, nodes = write(tmp_path)
    csv_conn = load_connectome(edges, nodes)
    path = tmp_path / "graph.npz"
    np.savez(path, indptr=csv_conn.chemical.indptr, indices=csv_conn.chemical.indices, data=csv_conn.counts,
             gap_indptr=csv_conn.gap.indptr, gap_indices=csv_conn.gap.indices, gap_data=csv_conn.gap_counts)
    conn = load_connectome(str(path), nodes)
    assert np.array_equal(conn.chemical.indptr, csv_conn.chemical.indptr)
    assert np.array_equal(conn.chemical.indices, csv_conn.chemical.indices)
    assert np.array_equal(conn.counts, csv_conn.counts) and np.array_equal(conn.gap_counts, csv_conn.gap_counts)
    assert conn.transmitters.tolist()[2:4] == ["gaba", "glutamate"]  # from the node table (no edge transmitters)


def test_wiring_orders_excitatory_first_and_signs_follow_transmitters(tmp_path):
    edges, nodes = write(tmp_path)
    cfg = NetworkConfig(conn_method="connectome", connectome=edges, connectome_nodes=nodes, connectome_classes="all",
                        input_neurons="A", output_neurons="motor")
    w = build_wiring(cfg)
    assert w.names.tolist() == ["A", "B", "D", "E", "C"] and w.n_exc == 4  # GABA's C last
    assert w.inputs.tolist() == [0] and w.outputs.tolist() == [2, 3]
    # the model's pattern, mapped back to node order, is the source's exactly
    source = load_connectome(edges, nodes)
    rec, counts = w.recurrent()
    back = np.zeros((5, 5))
    pre, post = rec.pre_post()
    back[w.order[pre], w.order[post]] = counts
    assert np.array_equal(back, source.chemical.to_dense(source.counts))
    # overriding glutamate to inhibitory moves B and D behind the excitatory neurons
    w2 = build_wiring(replace(cfg, transmitter_signs="glutamate=-"))
    assert w2.names.tolist() == ["A", "E", "B", "C", "D"] and w2.n_exc == 2


@pytest.mark.parametrize("name", ["Cook2019Herm", "Witvliet8", "Wang2024Herm"])
def test_cect_datasets_load_offline_and_counts_match_the_json(offline, name):
    conn = load_connectome(name.lower())  # names are case-insensitive
    assert conn.source == name
    data = json.loads(datasets()[name].read_text())
    assert conn.names.tolist() == data["nodes"]
    m = data["connections"]
    if name == "Wang2024Herm":  # one binary matrix per transmitter; the monoamine ones are extrasynaptic
        for transmitter, nnz in (("Acetylcholine", 2756), ("Glutamate", 1334), ("GABA", 506)):
            assert np.count_nonzero(m[transmitter]) == nnz
        fast = [np.asarray(v) for k, v in m.items() if k not in ("Dopamine", "Serotonin", "Tyramine", "Octopamine")]
        expected = (np.max(fast, axis=0) > 0).astype(float)
    else:
        expected = np.asarray(m["Generic_CS"])
    assert np.array_equal(conn.chemical.to_dense(conn.counts), expected)
    if name == "Cook2019Herm":
        assert len(data["nodes"]) == 473 and conn.chemical.nnz == 4879
        gap = np.asarray(m["Generic_GJ"])
        np.fill_diagonal(gap, 0)
        assert np.array_equal(conn.gap.to_dense(conn.gap_counts), np.maximum(gap, gap.T))
        # transmitters from Wang 2024: the GABAergic D-type motor neurons and RIS, cholinergic AVA
        tx = dict(zip(conn.names.tolist(), conn.transmitters.tolist(), strict=True))
        assert tx["DD1"] == tx["VD5"] == tx["RIS"] == "gaba" and tx["AVAL"] == "acetylcholine"


def test_every_witvliet_stage_builds_a_network_with_both_signs():
    sizes = []
    for stage in range(1, 9):
        w = build_wiring(NetworkConfig(conn_method="connectome", connectome=f"Witvliet{stage}"))
        assert 0 < w.n_exc < w.n and w.exc.nnz > 0 and w.inh.nnz > 0
        assert w.inputs.size > 0 and w.outputs.size > 0
        assert set(w.classes[w.inputs]) == {"sensory"} and set(w.classes[w.outputs]) <= {"inter", "motor"}
        # Dale's law: every presynaptic neuron is in exactly one projection, by its transmitter's sign
        assert (w.transmitters[: w.n_exc] != "gaba").all() and (w.transmitters[w.n_exc:] == "gaba").all()
        sizes.append(w.nnz)
    assert sizes[-1] > 2 * sizes[0]  # the adult has many more synapses than the L1 larva


def _error(cfg) -> ParamError:
    with pytest.raises(ParamError) as info:
        build_wiring(cfg)
    return info.value


@pytest.mark.parametrize("edit, field, words", [
    ("B,Z,1,acetylcholine\n", "connectome", ["line 3", "unknown node 'Z'"]),
    ("B,C,-2,acetylcholine\n", "connectome", ["line 3", "negative count"]),
    ("B,C,two,acetylcholine\n", "connectome", ["line 3", "not a number"]),
    ("B,C\n", "connectome", ["line 3", "2 fields where the header has 4"]),
])
def test_bad_edge_lists_name_the_line(tmp_path, edit, field, words):
    lines = EDGES.splitlines(keepends=True)
    edges, nodes = write(tmp_path, edges="".join(lines[:2] + [edit] + lines[2:]))
    err = _error(NetworkConfig(conn_method="connectome", connectome=edges, connectome_nodes=nodes))
    assert err.field == field and all(w in err.problem for w in words), err.problem


def test_bad_names_and_selections(tmp_path):
    err = _error(NetworkConfig(conn_method="connectome", connectome="Witvliet9"))
    assert err.field == "connectome" and "Witvliet8" in err.fix and "Cook2019Herm" in err.fix
    err = _error(NetworkConfig(conn_method="connectome", connectome="Cook2019Herm", input_neurons="AWCL,NOPE"))
    assert err.field == "input_neurons" and "'NOPE'" in err.problem and "sensory" in err.fix
    err = _error(NetworkConfig(conn_method="connectome", connectome="Cook2019Herm", output_neurons="pm1"))
    assert err.field == "output_neurons" and "not in the network" in err.problem  # a pharyngeal muscle
    err = _error(NetworkConfig(conn_method="connectome", connectome="Cook2019Herm", transmitter_signs="gaba=maybe"))
    assert err.field == "transmitter_signs"
    edges, nodes = write(tmp_path, nodes=NODES + "A,inter,\n")
    err = _error(NetworkConfig(conn_method="connectome", connectome=edges, connectome_nodes=nodes))
    assert err.field == "connectome_nodes" and "line 7" in err.problem and "repeats line 2" in err.problem


def test_a_large_edge_list_streams_without_a_dense_matrix(tmp_path):
    # 2,000 nodes and 60,000 edges: a dense count matrix would be 2000^2; the loader holds O(edges)
    rng = np.random.default_rng(0)
    n, m = 2000, 60_000
    names = [f"n{i}" for i in range(n)]
    (tmp_path / "nodes.csv").write_text("name,class,transmitter\n" + "".join(
        f"{x},{'sensory' if i < 200 else 'inter'},{'gaba' if i % 5 == 0 else 'acetylcholine'}\n"
        for i, x in enumerate(names)))
    pre, post, w = rng.integers(0, n, m), rng.integers(0, n, m), rng.integers(1, 5, m)
    with open(tmp_path / "edges.csv", "w") as f:
        f.write("pre,post,weight\n")
        f.writelines(f"n{a},n{b},{c}\n" for a, b, c in zip(pre, post, w, strict=True))
    conn = load_connectome(str(tmp_path / "edges.csv"), str(tmp_path / "nodes.csv"))
    dense = np.zeros((n, n))
    np.add.at(dense, (pre, post), w)
    assert conn.chemical.nnz == np.count_nonzero(dense)
    assert np.array_equal(conn.chemical.to_dense(conn.counts), dense)
