"""Trace protocols and files: shapes, units and every bad input named by field."""

import numpy as np
import pytest

from diffbrain import traces as tr
from diffbrain.errors import BadInput

HH_DATA = "/work/shared/data/hh/"


def test_gif_steps_are_the_papers_five_protocols():
    current = tr.protocol("steps", "gif", 1000.0, 0.1)
    assert current.shape == (5, 10000)
    np.testing.assert_array_equal(current[0, :2000], 2.0)
    np.testing.assert_array_equal(current[0, 2000:], 0.0)
    assert current[2, 6500] == 0.5 and current[2, 7500] == 1.0 and current[2, 8500] == 1.5
    assert current[3, 2050] == -1.5 and current[3, 2450] == 1.5
    np.testing.assert_array_equal(current[4, 500:8000], -3.5)


def test_hh_steps_follow_the_recorded_layout_and_other_protocols_are_seeded():
    hh = tr.protocol("steps", "hh", 15.0, 0.01)
    assert hh.shape == (5, 1500) and hh[3].max() == 50.0 and hh[2, 0] == 2.0 and hh[0, 0] == 0.0
    ramps = tr.protocol("ramps", "gif", 100.0, 0.1, n_traces=3)
    np.testing.assert_allclose(ramps[:, -1], [0.75, 1.5, 2.25])
    np.testing.assert_allclose(np.diff(ramps[1]), 1.5 / 999)
    a, b = tr.protocol("noise", "hh", 10.0, 0.01, seed=1), tr.protocol("noise", "hh", 10.0, 0.01, seed=1)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, tr.protocol("noise", "hh", 10.0, 0.01, seed=2))
    with pytest.raises(BadInput, match="protocol"):
        tr.protocol("chirp", "gif", 10.0, 0.1)


def test_the_shared_hh_csv_files_load_in_nanoamperes():
    data = tr.load(HH_DATA + "input_traces_hh.csv", HH_DATA + "output_traces_hh.csv", 0.01)
    assert data.current.shape == (5, 1497) and data.voltage.shape == (5, 1497)
    assert sorted(data.current.max(axis=1).round(6).tolist()) == [0.2, 2.0, 2.0, 10.0, 50.0]
    assert -70 < data.voltage[:, 0].mean() < -60 and data.spikes is None and data.dt == 0.01


def test_npz_round_trip(tmp_path):
    current = np.ones((2, 30))
    traces = tr.Traces(current, 0.1, np.full((2, 30), -60.0), np.zeros((2, 30)))
    tr.save_npz(tmp_path / "t.npz", traces)
    back = tr.load(tmp_path / "t.npz")
    np.testing.assert_array_equal(back.current, current)
    assert back.dt == 0.1 and back.spikes.shape == (2, 30) and list(tmp_path.iterdir()) == [tmp_path / "t.npz"]


def _npz(tmp_path, **arrays):
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    return path


GOOD = {"current": np.ones((2, 20)), "dt": 0.1, "voltage": np.full((2, 20), -60.0)}


@pytest.mark.parametrize("change, field, words", [
    ({"voltage": np.full((2, 19), -60.0)}, "voltage", "same [traces, time] shape"),
    ({"voltage": np.where(np.arange(20) == 7, np.nan, -60.0) * np.ones((2, 1))}, "voltage", "trace 0, step 7"),
    ({"dt": None}, "dt", "missing"),
    ({"dt": 1e-5}, "dt", "seconds"),
    ({"dt": np.array([0.1, 0.2])}, "dt", "one number"),
    ({"current": np.ones((2, 20)) * 1e-9}, "current", "amperes"),
    ({"voltage": np.full((2, 20), -0.06)}, "voltage", "volts"),
    ({"current": None}, "current", "missing"),
    ({"voltage": None}, "voltage", "neither"),
    ({"spikes": np.full((2, 20), 2.0)}, "spikes", "0 and 1"),
    ({"current": np.ones((2, 4, 5))}, "current", "[traces, time]"),
])
def test_bad_npz_names_the_field(tmp_path, change, field, words):
    arrays = {**GOOD, **change}
    arrays = {k: v for k, v in arrays.items() if v is not None}
    path = _npz(tmp_path, **arrays)
    with pytest.raises(BadInput) as info:
        tr.load(path)
    assert info.value.field.endswith(field) and words in info.value.message


def test_pickled_npz_is_refused(tmp_path):
    path = _npz(tmp_path, current=np.array([{"x": 1}], dtype=object), dt=0.1, voltage=np.zeros((1, 3)))
    with pytest.raises(BadInput, match="unpickling"):
        tr.load(path)


def test_bad_csv_names_the_field(tmp_path):
    ok = tmp_path / "i.csv"
    ok.write_text(",0,1,2\n0,1e-9,2e-9,0\n1,0,0,1e-9\n")
    assert tr.load(ok, None, 0.1).current.shape == (2, 3)
    with pytest.raises(BadInput) as info:
        tr.load(ok, None, None)
    assert info.value.field == "dt"
    ragged = tmp_path / "r.csv"
    ragged.write_text("0,1e-9,2e-9,0\n1,0,0\n")
    with pytest.raises(BadInput, match="different lengths"):
        tr.load(ragged, None, 0.1)
    nanoamps = tmp_path / "n.csv"
    nanoamps.write_text("0,1,2,0\n")
    with pytest.raises(BadInput, match="amperes"):
        tr.load(nanoamps, None, 0.1)
    short_v = tmp_path / "v.csv"
    short_v.write_text("0,-65,-64\n1,-65,-64\n")
    with pytest.raises(BadInput, match="same \\[traces, time\\] shape"):
        tr.load(ok, short_v, 0.1)
    with pytest.raises(BadInput) as info:
        tr.load(tmp_path / "x.mat")
    assert info.value.field == "traces"
    with pytest.raises(BadInput, match="no such file"):
        tr.load(tmp_path / "missing.npz")


def test_traces_say_which_targets_they_serve():
    voltage_only = tr.Traces(np.ones((1, 5)), 0.1, np.zeros((1, 5)), None, source="v.npz")
    voltage_only.require("potential")
    with pytest.raises(BadInput) as info:
        voltage_only.require("spike")
    assert info.value.field == "target" and "v.npz has no spikes" in info.value.message
