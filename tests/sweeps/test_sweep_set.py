"""``--set KEY=VALUE`` / ``--set KEY=A,B,C`` on plan, submit, resume and status: the same points (ids) as the
edited file, checked like the file's values, the effective spec in the store's provenance."""

import textwrap

import pytest
from cli_runner import run_cli

from analysis.store import store_attrs
from diffbrain.errors import UserError
from sweeps.points import expand
from sweeps.spec import load_sweep, set_value

BASE = """
name = "set"
experiment = "cluster-check"
store = "out/set.zarr"
[params]
samples = 5
value = 1.0
[grid]
seed = [0, 1, 2]
[[zip]]
fail = [false]
return_nan = [false]
[resources]
executor = "debug"
timeout_min = 5
[[resources.override]]
match = {{ seed = [2] }}
timeout_min = 9
"""


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def ids(sweep):
    return [p.point_id for p in expand(sweep)]


@pytest.mark.parametrize("sets, edits", [
    (["value=2.5"], [("value = 1.0", "value = 2.5")]),  # a fixed value
    (["seed=4,0,7"], [("seed = [0, 1, 2]", "seed = [4, 0, 7]")]),  # a grid axis replaced
    (["samples=3,4"], [("samples = 5\n", ""), ("seed = [0, 1, 2]", "seed = [0, 1, 2]\nsamples = [3, 4]")]),
    (["seed=1"], [("[grid]\nseed = [0, 1, 2]\n", ""), ("samples = 5", "samples = 5\nseed = 1")]),  # axis -> fixed
    (["seed=[0, 2]", "value=0.5"], [("seed = [0, 1, 2]", "seed = [0, 2]"), ("value = 1.0", "value = 0.5")]),
])
def test_set_gives_the_points_of_the_edited_file(tmp_path, sets, edits):
    base = write(tmp_path, "base.toml", BASE.format())
    text = BASE.format()
    for old, new in edits:
        assert old in text
        text = text.replace(old, new)
    edited = write(tmp_path, "edited.toml", text)
    overridden, by_file = load_sweep(base, sets=sets), load_sweep(edited)
    assert ids(overridden) == ids(by_file) and len(ids(by_file)) >= 1
    assert ids(overridden) != ids(load_sweep(base))
    assert overridden.spec == {**by_file.spec}


def test_set_resources_win_like_flags(tmp_path):
    base = write(tmp_path, "base.toml", BASE.format())
    sweep = load_sweep(base, sets=["timeout_min=7", "setup=module load x", "partition=gpu", "mem_gb=2"])
    assert sweep.resources.timeout_min == 7 and sweep.resources.setup == ("module load x",)
    assert sweep.resources.partition == "gpu" and sweep.resources.mem_gb == 2.0
    assert all(o.resources.timeout_min == 7 for o in sweep.overrides)  # wins over the override table, as a flag
    assert sweep.spec["resources"]["timeout_min"] == 7


@pytest.mark.parametrize("sets, field, words", [
    (["value=abc"], "--set value", "expected float"),
    (["seed=1,1"], "--set seed[1]", "repeats the value 1"),
    (["timeout_min=0"], "--set timeout_min", "not allowed"),
    (["nope=1"], "--set nope", "neither a parameter"),
    (["fail=true"], "--set fail", "varies in the file's [zip]"),
    (["value"], "--set", "not NAME=VALUE"),
])
def test_bad_set_is_one_error_naming_it(tmp_path, sets, field, words):
    base = write(tmp_path, "base.toml", BASE.format())
    with pytest.raises(UserError) as info:
        load_sweep(base, sets=sets)
    assert info.value.field == field and words in info.value.problem, info.value


def test_set_value_parsing():
    assert set_value("0.5") == 0.5 and set_value("3") == 3 and set_value("true") is True
    assert set_value("a,b") == ["a", "b"] and set_value("1, 2.5") == [1, 2.5] and set_value('"a,b"') == "a,b"
    assert set_value("potential") == "potential" and set_value("[1, 2]") == [1, 2]


def test_set_on_the_command_line(tmp_path, capsys):
    base = write(tmp_path, "base.toml", BASE.format())
    edited = write(tmp_path, "edited.toml", BASE.format().replace("seed = [0, 1, 2]", "seed = [3, 4]"))
    expected = ids(load_sweep(edited))
    code, out, err = run_cli(["sweep", "plan", base, "--set", "seed=3,4", "--set", "timeout_min=6"], capsys)
    assert code == 0 and "2 points" in out and all(pid in out for pid in expected) and "6 min" in out, out + err
    code, out, err = run_cli(["sweep", "submit", base, "--set", "seed=3,4"], capsys)
    assert code == 0 and "submitted 2 of 2 points to debug" in out, out + err
    code, out, err = run_cli(["sweep", "status", base, "--set", "seed=3,4"], capsys)
    assert code == 0 and "complete  2" in out, out + err
    sweep_attrs = store_attrs(load_sweep(base).store)["sweep"]
    assert sweep_attrs["sets"] == ["seed=3,4"] and sweep_attrs["spec"]["grid"]["seed"] == [3, 4]
    code, out, err = run_cli(["sweep", "resume", base, "--set", "seed=3,4,5"], capsys)
    assert code == 0 and "submitted 1 of 3 points" in out, out + err
    code, out, err = run_cli(["sweep", "plan", base, "--set", "value=x"], capsys)
    assert code == 2 and err.strip().startswith("error: --set value: expected float"), err
