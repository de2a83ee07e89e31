"""`sweep plan` refuses a bad connectome point before anything runs: exit 2, one line naming the field (and
the file's line), nothing written; a relative edge-list path is relative to the sweep file."""

import os

import pytest
from cli_runner import run_cli

NODES = "name,class,transmitter\nA,sensory,acetylcholine\nB,inter,gaba\nC,motor,glutamate\n"
EDGES = "pre,post,weight\nA,B,1\nB,C,2\nC,A,1\n"


def sweep(folder, params: str, grid: str = "") -> str:
    (folder / "s.toml").write_text('name = "s"\nexperiment = "train-network"\nstore = "out.zarr"\n'
                                   f'[params]\nconn_method = "connectome"\niterations = 1\n{params}\n'
                                   + (f'[grid]\n{grid}\n' if grid else '') + '[resources]\nexecutor = "debug"\n')
    return str(folder / "s.toml")


def listing(folder):
    return sorted((p, os.path.getsize(os.path.join(folder, p))) for p in os.listdir(folder))


@pytest.mark.parametrize("params, grid, words", [
    ("", 'connectome = ["Witvliet8", "Witvliet9"]', ["connectome", "unknown dataset 'Witvliet9'", "Witvliet1"]),
    ('connectome = "Cook2019Herm"\ninput_neurons = "AWCL,XYZ"', "", ["input_neurons", "'XYZ'"]),
    ('connectome = "data/edges.csv"\nconnectome_nodes = "data/nodes.csv"', "", ["connectome", "line 4",
                                                                               "negative count '-2'"]),
    ('connectome = "data/edges.csv"\nconnectome_nodes = "data/missing.csv"', "",
     ["connectome_nodes", "no such file"]),
])
def test_plan_refuses_a_bad_connectome_point(tmp_path, capsys, params, grid, words):
    data = tmp_path / "data"
    data.mkdir()
    (data / "nodes.csv").write_text(NODES)
    (data / "edges.csv").write_text(EDGES.replace("C,A,1", "C,A,-2"))
    path = sweep(tmp_path, params, grid)
    before = listing(tmp_path)
    code, out, err = run_cli(["sweep", "plan", path], capsys)
    assert code == 2 and err.startswith("error: ") and err.count("\n") == 1, err
    assert all(w in err for w in words), err
    assert listing(tmp_path) == before


def test_plan_accepts_an_edge_list_relative_to_the_sweep_file(tmp_path, capsys, monkeypatch):
    data = tmp_path / "data"
    data.mkdir()
    (data / "nodes.csv").write_text(NODES)
    (data / "edges.csv").write_text(EDGES)
    path = sweep(tmp_path, 'connectome = "data/edges.csv"\nconnectome_nodes = "data/nodes.csv"',
                 'transmitter_signs = ["", "glutamate=-"]')
    monkeypatch.chdir("/")
    code, out, err = run_cli(["sweep", "plan", path], capsys)
    assert code == 0, err
    assert "2 points" in out
