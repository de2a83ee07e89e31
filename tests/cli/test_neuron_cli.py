"""``diffbrain simulate`` -> ``diffbrain fit`` round trip, and every bad input of issue 2 item 10 (exit 2, nothing
written)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from cli_runner import run_cli

DIFFBRAIN = Path(sys.executable).with_name("diffbrain")


@pytest.mark.slow
def test_simulate_then_fit_round_trip_in_fresh_processes(tmp_path):
    env = {**os.environ, "DIFFBRAIN_NO_PROGRESS": "1", "JAX_PLATFORMS": "cpu"}
    target = tmp_path / "hh.npz"
    done = subprocess.run([str(DIFFBRAIN), "simulate", "hh", "--param", "gNa=22", "--param", "VT=-58",
                           "--duration", "6", "--out", str(target)], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    with np.load(target, allow_pickle=False) as data:
        assert data["voltage"].shape == data["current"].shape == data["spikes"].shape == (5, 600)
        assert float(data["dt"]) == 0.01 and data["spikes"].sum() > 0
        assert dict(zip(data["param_names"].tolist(), data["param_values"].tolist(), strict=True))["gNa"] == 22.0
    out = tmp_path / "fit"
    done = subprocess.run([str(DIFFBRAIN), "fit", "hh", "--traces", str(target), "--target", "potential",
                           "--starts", "4", "--budget", "240", "--seed", "3", "--out", str(out)],
                          env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    record = json.loads((out / "fit.json").read_text())
    assert {"model", "target", "method", "params", "loss", "evaluations", "seconds", "seed"} <= set(record)
    assert record["model"] == "hh" and record["method"] == "gradient" and record["seed"] == 3
    assert record["evaluations"] <= 240 and record["loss"] < 0.5
    assert record["params"]["gNa"] == pytest.approx(22.0, rel=0.05)
    assert (out / "fit.png").stat().st_size > 10_000
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fit", "hh.npz"]


def test_fit_by_a_baseline_and_spike_target(tmp_path, capsys):
    target = tmp_path / "gif.npz"
    assert run_cli(["simulate", "gif", "--protocol", "ramps", "--duration", "200", "--traces", "2",
                 "--out", str(target)], capsys)[0] == 0
    (tmp_path / "pso").mkdir()  # a sibling named like the cut-off URL: untouched
    (tmp_path / "pso" / "notes.txt").write_text("mine")
    out_dir = tmp_path / "pso#1?x;y é"
    code, out, err = run_cli(["fit", "gif", "--traces", str(target), "--target", "spike", "--method", "pso",
                           "--starts", "4", "--budget", "8", "--out", str(out_dir)], capsys)
    assert code == 0, err
    assert [p.name for p in (tmp_path / "pso").iterdir()] == ["notes.txt"]
    record = json.loads((out_dir / "fit.json").read_text(),  # strict JSON: no NaN or Infinity
                        parse_constant=lambda name: pytest.fail(f"fit.json holds {name}"))
    assert record["method"] == "pso" and record["evaluations"] == 8 and record["loss_units"] == "1"
    assert "gamma" not in out and "loss" in out


def _voltage_only(tmp_path, **change):
    path = tmp_path / "v.npz"
    arrays = {"current": np.ones((2, 50)), "dt": 0.1, "voltage": np.full((2, 50), -65.0), **change}
    np.savez(path, **{k: v for k, v in arrays.items() if v is not None})
    return str(path)


BAD_FIT = [
    ({"voltage": np.full((2, 49), -65.0)}, [], "voltage", "same [traces, time] shape"),
    ({"voltage": np.where(np.arange(50) == 3, np.nan, -65.0) * np.ones((2, 1))}, [], "voltage", "NaN"),
    ({"dt": None}, [], "dt", "missing"),
    ({}, ["--bounds", "a=0.1:0.01"], "--bounds.a", "not below"),
    ({}, ["--bounds", "gNa=1:2"], "--bounds.gNa", "not a fitted parameter"),
    ({}, ["--fixed", "bogus=2"], "--fixed bogus", "not a fixed parameter"),
    ({}, ["--target", "spike"], "target", "cannot serve a spike target"),
    ({}, ["--method", "newton"], "--method", "newton"),
    ({}, ["--starts", "0"], "--starts", "at least 1"),
]


@pytest.mark.parametrize("change, extra, field, words", BAD_FIT)
def test_bad_fit_input_exits_2_names_the_field_and_writes_nothing(tmp_path, capsys, change, extra, field, words):
    traces = _voltage_only(tmp_path, **change)
    before = sorted(p.name for p in tmp_path.iterdir())
    code, out, err = run_cli(["fit", "gif", "--traces", traces, *extra, "--out", str(tmp_path / "out")], capsys)
    assert code == 2
    assert any(field in line and words in line for line in err.splitlines())  # one line names field and fix
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_csv_without_dt_and_unknown_model_or_parameter(tmp_path, capsys):
    code, _, err = run_cli(["fit", "hh", "--traces", "/work/shared/data/hh/input_traces_hh.csv", "--voltage",
                         "/work/shared/data/hh/output_traces_hh.csv", "--out", str(tmp_path / "o")], capsys)
    assert code == 2 and "dt: missing" in err
    code, _, err = run_cli(["fit", "lif", "--traces", "x.npz", "--out", str(tmp_path / "o")], capsys)
    assert code == 2 and "'lif' is not one of" in err
    code, _, err = run_cli(["simulate", "gif", "--param", "bogus=1", "--out", str(tmp_path / "s.npz")], capsys)
    assert code == 2 and "--param.bogus" in err
    code, _, err = run_cli(["simulate", "gif", "--param", "a", "--out", str(tmp_path / "s.npz")], capsys)
    assert code == 2 and "NAME=VALUE" in err
    code, _, err = run_cli(["simulate", "gif", "--protocol", "steps", "--current", "c.npz",
                         "--out", str(tmp_path / "s.npz")], capsys)
    assert code == 2 and "--current" in err
    assert list(tmp_path.iterdir()) == []
