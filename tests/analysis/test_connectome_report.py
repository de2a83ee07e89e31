"""The connectome records and their report section against hand-computed groups (no JAX): a five-neuron
edge list, known weights before/after and known rates, two points pooled per method."""

from types import SimpleNamespace

import numpy as np
import pytest
import xarray as xr

from analysis.connectome import FIGURES, connectome_section, group_table
from diffbrain.experiments.train_network import connectome_variables
from diffbrain.network.config import NetworkConfig
from diffbrain.network.connectome import build_wiring
from diffbrain.network.connectome_records import connectome_record

NODES = "name,class,transmitter\nA,sensory,acetylcholine\nB,inter,glutamate\nC,inter,gaba\nD,motor,acetylcholine\n"
EDGES = "pre,post,weight\nA,B,1\nA,C,3\nB,D,2\nC,A,1\nC,D,4\nD,B,1\n"


@pytest.fixture
def wiring(tmp_path):
    (tmp_path / "n.csv").write_text(NODES)
    (tmp_path / "e.csv").write_text(EDGES)
    return build_wiring(NetworkConfig(conn_method="connectome", connectome=str(tmp_path / "e.csv"),
                                      connectome_nodes=str(tmp_path / "n.csv"), input_neurons="A"))


def test_records_group_synapses_by_presynaptic_class_and_transmitter(wiring):
    assert wiring.names.tolist() == ["A", "B", "D", "C"]  # excitatory first, C (GABA) last
    pre = wiring.synapse_pre()  # A->B, A->C, B->D, D->B | C->A, C->D
    assert wiring.names[pre].tolist() == ["A", "A", "B", "D", "C", "C"]
    before = np.array([1.0, 3.0, 2.0, 1.0, 1.0, 4.0])
    after = before * np.array([2.0, 2.0, 1.0, 1.0, 0.5, 0.5])
    rates = np.array([10.0, 20.0, 30.0, 40.0])  # A, B, D, C
    rec = connectome_record(wiring, before, after, rates, bins=4)
    cls = rec["groups"]["class"]
    assert cls["names"].tolist() == ["inter", "motor", "sensory"]
    assert cls["synapses"].tolist() == [3, 1, 2] and cls["neurons"].tolist() == [2, 1, 1]
    np.testing.assert_allclose(cls["mean"], [[2.0 / 3 + 5.0 / 3, 1.0, 2.0], [(2 + 0.5 + 2) / 3, 1.0, 4.0]])
    np.testing.assert_allclose(cls["rate"], [30.0, 30.0, 10.0])
    tx = rec["groups"]["transmitter"]
    assert tx["names"].tolist() == ["acetylcholine", "gaba", "glutamate"]
    assert tx["synapses"].tolist() == [3, 2, 1]
    assert (cls["hist"].sum(axis=2) == cls["synapses"]).all()
    edges = rec["bin_edges"]
    assert edges[0] == pytest.approx(0.1) and edges[-1] == pytest.approx(40.0)


def test_report_section_pools_points_per_run_group(wiring, tmp_path):
    before = np.array([1.0, 3.0, 2.0, 1.0, 1.0, 4.0])
    points = []
    for factor, rate in ((2.0, 10.0), (4.0, 30.0)):
        rec = connectome_record(wiring, before, before * factor, np.full(4, rate), bins=4)
        data, coords, _ = connectome_variables(rec)
        points.append(xr.Dataset(data, coords=coords).expand_dims(point=[f"p{factor:g}"]))
    ds = xr.concat(points, dim="point", join="outer").assign_coords(
        method=("point", ["bptt", "bptt"]), connectome=("point", ["mine", "mine"]))
    tab = group_table(ds, "transmitter")
    one = tab.sel(run="mine", transmitter="gaba")
    assert float(one["mean_initial"]) == pytest.approx(2.5) and float(one["mean_final"]) == pytest.approx(7.5)
    assert float(one["rate"]) == pytest.approx(20.0) and int(one["n_points"]) == 2
    assert float(one["hist"].sel(stage="final").sum()) == 4  # two synapses in each of two points
    report = SimpleNamespace(figures={}, skipped={})
    lines = connectome_section(ds, tmp_path, report)
    assert set(report.figures) == set(FIGURES.values()) and all(p.exists() for p in report.figures.values())
    row = next(line for line in lines if line.startswith("| mine | gaba"))
    assert row.split(" | ")[2:6] == ["2", "2.5", "7.5", "200"]
