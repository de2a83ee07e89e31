"""Expansion of a sweep into points, and stable point ids."""

import hashlib
import math
import textwrap

import pytest

from sweeps.plan import pack
from sweeps.points import expand, point_id, random_samples, swept_names
from sweeps.spec import load_sweep


def load(tmp_path, text, **kwargs):
    path = tmp_path / "s.toml"
    path.write_text('name = "t"\nexperiment = "cluster-check"\n' + textwrap.dedent(text))
    return load_sweep(path, **kwargs)


def test_point_id_is_sha256_of_canonical_json():
    params = {"fail": False, "jax": False, "return_nan": False, "samples": 8, "seconds": 0.0, "seed": 0,
              "value": 1.0}
    text = ('{"experiment":"cluster-check","params":{"fail":false,"jax":false,"return_nan":false,"samples":8,'
            '"seconds":0.0,"seed":0,"value":1.0}}')
    assert point_id("cluster-check", params) == hashlib.sha256(text.encode()).hexdigest()[:16]
    assert point_id("cluster-check", dict(reversed(params.items()))) == point_id("cluster-check", params)
    assert point_id("cluster-check", {**params, "value": 1.0000001}) != point_id("cluster-check", params)
    assert point_id("fit-neuron", params) != point_id("cluster-check", params)


def test_ids_ignore_spelling_order_and_defaults(tmp_path):
    a = expand(load(tmp_path, "[params]\nvalue = 1\nseed = 0\n"))
    b = expand(load(tmp_path, "[params]\nseed = 0\nvalue = 1.0e0\nsamples = 8\n"))  # 8 is the default
    c = expand(load(tmp_path, "[grid]\nvalue = [1.000]\n"))
    d = expand(load(tmp_path, "[params]\nvalue = 2\n"))
    assert a[0].point_id == b[0].point_id == c[0].point_id != d[0].point_id
    assert a[0].params == {"fail": False, "jax": False, "return_nan": False, "samples": 8, "seconds": 0.0,
                           "seed": 0, "step_batch": 8, "step_method": "expsm_diag", "train_step": False, "value": 1.0}


def test_grid_zip_exclude_optional(tmp_path):
    text = """
    [grid]
    seed = [0, 1, 2]
    samples = [4, 8]
    [[zip]]
    value = [1.0, 2.0]
    seconds = [0.0, 0.5]
    [[exclude]]
    seed = [1, 2]
    samples = 8
    [[optional]]
    seed = 2
    """
    sweep = load(tmp_path, text)
    points = expand(sweep)
    # 3 seeds x 2 samples x 2 zip rows = 12; exclude drops seeds 1,2 with samples 8 (4); optional drops seed 2 (2)
    combos = [(p.params["seed"], p.params["samples"], p.params["value"], p.params["seconds"]) for p in points]
    assert combos == [(0, 4, 1.0, 0.0), (0, 4, 2.0, 0.5), (0, 8, 1.0, 0.0), (0, 8, 2.0, 0.5),
                      (1, 4, 1.0, 0.0), (1, 4, 2.0, 0.5)]
    assert len(expand(sweep, with_optional=True)) == 8
    assert swept_names(points) == ["samples", "seconds", "seed", "value"]
    assert len({p.point_id for p in points}) == len(points)


def test_random_samples_are_seeded_and_in_range(tmp_path):
    text = """
    [random]
    seed = 11
    count = 50
    value = { loguniform = [1e-4, 1e-1] }
    seconds = { uniform = [0.5, 2.0] }
    samples = { randint = [2, 5] }
    fail = { choice = [false] }
    """
    sweep = load(tmp_path, text)
    first, again = random_samples(sweep), random_samples(sweep)
    assert first == again and len(first) == 50
    assert all(1e-4 <= s["value"] <= 1e-1 and 0.5 <= s["seconds"] <= 2.0 for s in first)
    assert {s["samples"] for s in first} == {2, 3, 4, 5}  # inclusive, all reached in 50 draws
    logs = [math.log10(s["value"]) for s in first]
    assert min(logs) < -3.4 and max(logs) > -1.6  # spread over the decades, not bunched at the top
    other = load(tmp_path, text.replace("seed = 11", "seed = 12"))
    assert random_samples(other) != first
    assert len(expand(sweep)) == 50


def test_random_combines_with_grid_as_product(tmp_path):
    sweep = load(tmp_path, "[grid]\nseed = [0, 1]\n[random]\ncount = 3\nvalue = { uniform = [0.0, 1.0] }\n")
    points = expand(sweep)
    assert len(points) == 6
    assert [p.params["value"] for p in points[:3]] == [p.params["value"] for p in points[3:]]


def test_overrides_and_packing(tmp_path):
    text = """
    [grid]
    seed = [0, 1, 2, 3, 4]
    samples = [4, 8]
    [resources]
    points_per_job = 3
    [[resources.override]]
    match = { seed = [3, 4] }
    partition = "gpu"
    gpus_per_node = 1
    """
    sweep = load(tmp_path, text)
    points = expand(sweep)
    assert [sweep.resources_for(p.params).partition for p in points if p.params["seed"] >= 3] == ["gpu"] * 4
    plan = pack(points, sweep.resources_for)
    cpu, gpu = plan.arrays
    assert {j.resources.partition for j in cpu} == {None} and {j.resources.partition for j in gpu} == {"gpu"}
    # cpu: 6 points, shapes samples=4 (3 points) and samples=8 (3 points): two whole jobs of one shape each
    assert [[p.params["samples"] for p in j.points] for j in cpu] == [[4, 4, 4], [8, 8, 8]]
    # gpu: 4 points (2 per shape): no whole job; the remainders share a job, same shapes adjacent
    assert [[p.params["samples"] for p in j.points] for j in gpu] == [[4, 4, 8], [8]]
    ids = [p.point_id for p in plan.points]
    assert sorted(ids) == sorted(p.point_id for p in points)  # every point exactly once


@pytest.mark.parametrize("k, n_jobs", [(1, 10), (4, 3), (10, 1), (64, 1)])
def test_points_per_job(tmp_path, k, n_jobs):
    sweep = load(tmp_path, f"[grid]\nseed = {list(range(10))}\n[resources]\npoints_per_job = {k}\n")
    plan = pack(expand(sweep), sweep.resources_for)
    assert len(plan.jobs) == n_jobs and all(len(j.points) <= k for j in plan.jobs)
    assert [p.params["seed"] for p in plan.points] == list(range(10))


def test_packing_keeps_shapes_together_but_not_random_rates(tmp_path):
    """Grid values of any parameter may change shapes; continuous random draws do not."""
    text = """
    [grid]
    seed = [0, 1]
    seconds = [0.5, 1.0]
    [random]
    count = 2
    value = { uniform = [0.0, 1.0] }
    [resources]
    points_per_job = 4
    """
    from sweeps.plan import free_params

    sweep = load(tmp_path, text)
    points = expand(sweep)  # order: (seed 0, s 0.5), (0, 1.0), (1, 0.5), (1, 1.0), each with two draws
    plan = pack(points, sweep.resources_for, free_params(sweep))
    assert free_params(sweep) == {"value"}
    assert [[p.params["seconds"] for p in j.points] for j in plan.jobs] == [[0.5] * 4, [1.0] * 4]
    # without knowing `value` is free, every draw is its own group: shapes still adjacent
    mixed = pack(points, sweep.resources_for)
    assert [[p.params["seconds"] for p in j.points] for j in mixed.jobs] == [[0.5] * 4, [1.0] * 4]
