"""Sweep files: what is accepted, and every kind of bad file failing at `plan` naming its key, exit 2."""

import textwrap

import pytest

from sweeps.cli import main
from sweeps.errors import SpecError
from sweeps.spec import load_sweep

GOOD = """
name = "check"
experiment = "cluster-check"
store = "out/check.zarr"
[params]
samples = 4
[grid]
seed = [0, 1]
value = [1, 2.5]
[[zip]]
seconds = [0, 0.5]
fail = [false, false]
[random]
seed = 3
count = 2
return_nan = { choice = [false] }
[resources]
executor = "local"
partition = "gpu"
gpus_per_node = 1
cpus_per_task = 2
mem_gb = 4
timeout_min = 5
array_parallelism = 3
points_per_job = 2
setup = ["module load cuda/12"]
[[resources.override]]
match = { seed = 1 }
partition = "cpu"
gpus_per_node = 0
[variant.quick]
grid = { seed = [7] }
resources = { points_per_job = 4 }
"""


def write(tmp_path, text, name="sweep.toml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def test_good_file(tmp_path):
    sweep = load_sweep(write(tmp_path, GOOD))
    assert sweep.name == "check" and sweep.experiment.name == "cluster-check"
    assert sweep.store == (tmp_path / "out" / "check.zarr").resolve()  # relative to the file's folder
    assert sweep.grid == {"seed": (0, 1), "value": (1.0, 2.5)}  # ints given for a float are floats
    assert isinstance(sweep.grid["value"][0], float)
    assert sweep.zips == ({"seconds": (0.0, 0.5), "fail": (False, False)},)
    assert sweep.random_seed == 3 and sweep.random_count == 2
    res = sweep.resources
    assert (res.executor, res.partition, res.gpus_per_node, res.cpus_per_task, res.mem_gb, res.timeout_min,
            res.array_parallelism, res.points_per_job, res.setup) == (
        "local", "gpu", 1, 2, 4.0, 5, 3, 2, ("module load cuda/12",))
    (override,) = sweep.overrides
    assert override.match == {"seed": (1,)} and override.resources.partition == "cpu"
    assert override.resources.gpus_per_node == 0 and override.resources.timeout_min == 5
    assert sweep.info()["source"] == textwrap.dedent(GOOD)


def test_variant_merges_tables_and_flags_win(tmp_path):
    sweep = load_sweep(write(tmp_path, GOOD), variant="quick", flags={"timeout_min": 9, "partition": None})
    assert sweep.grid == {"seed": (7,), "value": (1.0, 2.5)}  # grid.seed replaced, grid.value kept
    assert sweep.resources.points_per_job == 4 and sweep.resources.partition == "gpu"
    assert sweep.resources.timeout_min == 9 and sweep.overrides[0].resources.timeout_min == 9


def replace(text, old, new):
    assert old in text, old
    return text.replace(old, new, 1)


BAD = [
    # (description, edit of GOOD, flags, key the message must start with, words it must contain)
    ("unknown experiment", lambda t: replace(t, '"cluster-check"', '"fit-nothing"'), [], "experiment",
     "unknown experiment"),
    ("unknown parameter", lambda t: replace(t, "value = [1, 2.5]", "valeu = [1, 2.5]"), [], "grid.valeu",
     "unknown parameter"),
    ("wrong type in grid", lambda t: replace(t, "seed = [0, 1]", 'seed = [0, "one"]'), [], "grid.seed[1]",
     "expected int"),
    ("wrong type in params", lambda t: replace(t, "samples = 4", "samples = 4.5"), [], "params.samples",
     "expected int"),
    ("bool for a float", lambda t: replace(t, "value = [1, 2.5]", "value = [true]"), [], "grid.value[0]",
     "expected float"),
    ("empty grid", lambda t: replace(t, "seed = [0, 1]\nvalue = [1, 2.5]\n", ""), [], "grid", "empty grid"),
    ("empty list", lambda t: replace(t, "seed = [0, 1]", "seed = []"), [], "grid.seed", "empty list"),
    ("scalar in grid", lambda t: replace(t, "seed = [0, 1]", "seed = 3"), [], "grid.seed", "expected a list"),
    ("repeated grid value", lambda t: replace(t, "seed = [0, 1]", "seed = [0, 0]"), [], "grid.seed[1]", "repeats"),
    ("zip of unequal length", lambda t: replace(t, "fail = [false, false]", "fail = [false, false, true]"), [],
     "zip[0].fail", "has 3 values but zip[0].seconds has 2"),
    ("out of range", lambda t: replace(t, "seconds = [0, 0.5]", "seconds = [0, -1]"), [], "zip[0].seconds[1]",
     "below the minimum"),
    ("parameter twice", lambda t: replace(t, "samples = 4", "samples = 4\nseed = 5"), [], "grid.seed",
     "also set in params"),
    ("bad resources: timeout", lambda t: replace(t, "timeout_min = 5", "timeout_min = 0"), [],
     "resources.timeout_min", "not allowed"),
    ("bad resources: type", lambda t: replace(t, "mem_gb = 4", 'mem_gb = "lots"'), [], "resources.mem_gb",
     "expected float"),
    ("bad resources: executor", lambda t: replace(t, 'executor = "local"', 'executor = "cloud"'), [],
     "resources.executor", "local, slurm, debug"),
    ("bad resources: unknown key", lambda t: replace(t, "gpus_per_node = 1", "gpus = 1"), [], "resources.gpus",
     "unknown resource"),
    ("bad resources: setup", lambda t: replace(t, 'setup = ["module load cuda/12"]', 'setup = "module load"'), [],
     "resources.setup", "expected list"),
    ("bad override", lambda t: replace(t, "match = { seed = 1 }", "match = { seed = 1.5 }"), [],
     "resources.override[0].match[0].seed", "expected int"),
    ("override changes packing", lambda t: replace(t, 'partition = "cpu"', "points_per_job = 3"), [],
     "resources.override[0].points_per_job", "cannot differ"),
    ("bad flag", lambda t: t, ["--timeout-min", "0"], "--timeout-min", "not allowed"),
    ("unknown variant", lambda t: t, ["--variant", "slow"], "--variant", "use one of: quick"),
    ("random: uniform on an int", lambda t: replace(t, "return_nan = { choice = [false] }",
                                                    "samples = { uniform = [1, 4] }"), [],
     "random.samples.uniform", "draws floats"),
    ("random: loguniform below 0", lambda t: replace(t, "return_nan = { choice = [false] }",
                                                     "value = { loguniform = [-1.0, 4.0] }"), [],
     "random.value.loguniform[0]", "not > 0"),
    ("random: unknown distribution", lambda t: replace(t, "return_nan = { choice = [false] }",
                                                       "return_nan = { normal = [0, 1] }"), [],
     "random.return_nan", "expected one of"),
    ("random: no count", lambda t: replace(t, "count = 2\n", ""), [], "random.count", "missing"),
    ("random: nothing to draw", lambda t: replace(t, "return_nan = { choice = [false] }", ""), [], "random",
     "no parameter to draw"),
    ("unknown top-level key", lambda t: "sede = 1\n" + t, [], "sede", "unknown key"),
    ("missing name", lambda t: replace(t, 'name = "check"\n', ""), [], "name", "missing"),
    ("bad name", lambda t: replace(t, 'name = "check"', 'name = "a b"'), [], "name", "characters"),
    ("everything excluded", lambda t: t + "[[exclude]]\nsamples = 4\n", [], "exclude", "every point"),
    ("exclude with unknown key", lambda t: t + "[[exclude]]\nsmaples = 4\n", [], "exclude[0].smaples",
     "unknown parameter"),
    ("not TOML", lambda t: t + "grid = [\n", [], "sweep.toml", "not valid TOML"),
]


@pytest.mark.parametrize("edit, flags, key, words", [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_file_fails_at_plan_naming_the_key(tmp_path, capsys, edit, flags, key, words):
    path = write(tmp_path, edit(GOOD))
    before = sorted(p.name for p in tmp_path.rglob("*"))
    with pytest.raises(SystemExit) as exit_info:
        main(["sweep", "plan", str(path), *flags])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    message = err.removeprefix("error: ")
    assert message.startswith(f"{key}: ") or message.startswith(f"{path}: ") and key == "sweep.toml", err
    assert words in message, err
    assert sorted(p.name for p in tmp_path.rglob("*")) == before  # nothing written


def test_missing_file(tmp_path):
    with pytest.raises(SpecError, match="cannot read"):
        load_sweep(tmp_path / "nope.toml")
