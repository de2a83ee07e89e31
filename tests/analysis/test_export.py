"""``diffbrain export STORE --to FILE.parquet|FILE.csv``: one row per point that round-trips with pandas and
matches the store's records and results."""

import math
import textwrap

import numpy as np
import pandas as pd
import pytest
from cli_runner import run_cli
from sweep_texts import cluster_check_sweep

from analysis import open_sweep
from analysis.export import points_table
from analysis.store import read_point_attrs
from sweeps.spec import load_sweep

SWEEP = cluster_check_sweep("ex", "ex.zarr", 1.5) + """
[resources]
executor = "debug"
"""


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    folder = tmp_path_factory.mktemp("export")
    path = folder / "s.toml"
    path.write_text(textwrap.dedent(SWEEP))
    from sweeps.cli import main

    main(["sweep", "submit", str(path)])  # the debug executor: the points have run when it returns
    return load_sweep(path).store


def test_table_matches_the_store(store):
    table = points_table(store).set_index("point_id")
    assert len(table) == 4 and sorted(table["status"]) == ["complete", "complete", "complete", "failed"]
    ds = open_sweep(store)
    for pid in ds["point"].values:
        attrs = read_point_attrs(store, str(pid))
        row = table.loc[str(pid)]
        assert row["wall_seconds"] == attrs["wall_seconds"] and row["peak_rss_bytes"] == attrs["peak_rss_bytes"]
        assert row["host"] == attrs["host"] and row["seed"] == attrs["params"]["seed"]
        assert row["value_param"] == attrs["params"]["value"]  # a parameter named like a result
        assert row["samples"] == 5 and row["fail"] == attrs["params"]["fail"]  # fixed ones too
        assert row["value"] == float(ds["value"].sel(point=pid))  # a scalar result
        assert row["slept_seconds"] == float(ds["slept_seconds"].sel(point=pid))
    assert "noise" not in table.columns  # arrays stay in the store
    failed = table[table["status"] == "failed"].iloc[0]
    assert math.isnan(failed["value"]) and "asked to fail" in failed["error"]


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_export_round_trips_with_pandas(store, tmp_path, capsys, suffix):
    target = tmp_path / f"points{suffix}"
    code, out, err = run_cli(["export", store, "--to", target], capsys)
    assert code == 0 and "wrote 4 points (3 complete, 1 failed)" in out, out + err
    back = pd.read_parquet(target) if suffix == ".parquet" else pd.read_csv(target)
    expected = points_table(store)
    assert list(back.columns) == list(expected.columns)
    for column in expected.columns:
        if suffix == ".csv" and expected[column].isna().all():
            continue
        if pd.api.types.is_float_dtype(expected[column]):
            np.testing.assert_allclose(back[column].astype(float), expected[column], rtol=1e-12)
        else:
            assert [None if pd.isna(v) else v for v in back[column]] == \
                   [None if pd.isna(v) else v for v in expected[column]], column
    assert sorted(p.name for p in tmp_path.iterdir()) == [target.name]  # no temporary file left


def test_bad_target_is_one_error_and_writes_nothing(store, tmp_path, capsys):
    code, out, err = run_cli(["export", store, "--to", tmp_path / "points.xlsx"], capsys)
    assert code == 2 and err.startswith("error: --to: points.xlsx is neither .parquet nor .csv"), err
    code, out, err = run_cli(["export", tmp_path, "--to", tmp_path / "p.csv"], capsys)
    assert code == 2 and "not a diffbrain result store" in err, err
    assert list(tmp_path.iterdir()) == []
