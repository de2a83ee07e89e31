"""``diffbrain simulate-network``: a small COBA run writes its dataset and raster; bad input and a network
that cannot fit exit 2 with one line, writing nothing."""

import pytest
import xarray as xr
from cli_runner import run_cli

from analysis.paths import local_store


def test_simulate_network_writes_dataset_and_raster(tmp_path, capsys):
    # '#', '?', ';' are plain characters of a path (zarr would read a string as a URL and cut it there),
    # and the sibling folder "sim" with a file in it must never be touched
    sibling = tmp_path / "sim"
    sibling.mkdir()
    (sibling / "notes.txt").write_text("mine")
    out = tmp_path / "sim#1?x;y é"
    code, stdout, stderr = run_cli(["simulate-network", "--preset", "coba", "--n", "800", "--duration-ms", "200",
                                    "--seed", "2", "--out", out], capsys)
    assert code == 0, stderr
    ds = xr.open_zarr(local_store(out / "run.zarr"), consolidated=False)
    assert ds.attrs["preset"] == "coba" and ds.sizes["neuron"] == 800 and int(ds["n_steps"]) == 2000
    assert float(ds["mean_rate"]) > 1.0 and ds.sizes["spike"] > 0
    assert (out / "raster.png").read_bytes()[:4] == b"\x89PNG"
    assert "s per simulated second" in stdout and "mean rate" in stdout
    assert not [p for p in out.iterdir() if p.name.startswith(".")]
    assert [p.name for p in sibling.iterdir()] == ["notes.txt"] and (sibling / "notes.txt").read_text() == "mine"


@pytest.mark.parametrize("args, field", [
    (["--n", "1000000000"], "n"),
    (["--syn-per-neuron", "0"], "syn_per_neuron"),
    (["--preset", "gif", "--n", "100", "--syn-per-neuron", "99.5"], "syn_per_neuron"),
    (["--conn-method", "ring"], "conn_method"),
    (["--memory-limit-gb", "0.0001"], "n"),
    (["--parallel", "data"], "parallel"),  # one trial: nothing to split
    (["--parallel", "rows"], "parallel"),
    (["--parallel", "neurons", "--devices", "2"], "devices"),  # this process sees one device
])
def test_bad_input_exits_2_and_writes_nothing(tmp_path, capsys, args, field):
    out = tmp_path / "sim"
    code, stdout, stderr = run_cli(["simulate-network", *args, "--out", out], capsys)
    assert code == 2, (stdout, stderr)
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and field in lines[0], stderr
    assert not out.exists()
