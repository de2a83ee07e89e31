"""The memory planner: ``sweep plan`` prints per-device bytes and the layout of each point shape; a point that
fits no layout is refused by ``plan`` and ``submit`` before anything is written (exit 2, one line); the
planner's extrapolated XLA temp bytes are within 25% of a direct compile at the point's size.

The proxies of a family compile once per module (a shared cache folder); a second plan compiles nothing.
"""

import subprocess

import pytest
from cli_runner import run_cli

from diffbrain.network import planner
from diffbrain.network.parallel import neurons_device_estimate

SWEEP = """name = "mem"
experiment = "scaling-probe"
store = "out.zarr"
[params]
method = "expsm_diag"
conn_method = "dense"
n_steps = 40
batch_size = 8
[grid]
n_rec = {n_rec}
[resources]
executor = "debug"
gpus_per_node = 2
gpu_memory_gb = 1
"""


@pytest.fixture
def planning(tmp_path, monkeypatch):
    """The planner on, with its own cache folder."""
    cache = tmp_path / "plan-cache"
    monkeypatch.setenv("DIFFBRAIN_MEMORY_PLAN", "on")
    monkeypatch.setenv("DIFFBRAIN_PLAN_CACHE", str(cache))
    return cache


# a family's fit as the proxies give it (bytes per unit of each term: expsm_diag, dense, measured on this
# machine), written to the cache so that the CLI tests compile nothing; the compiled path is the slow test's
FIT = {"temp": {"neurons": 0.0, "trial_neurons": 290.0, "synapses": 0.0, "trial_synapses": 6.0},
       "argument": {"neurons": 1237.0, "trial_neurons": 0.0, "synapses": 12.0, "trial_synapses": 0.0},
       "output": {"neurons": 1237.0, "trial_neurons": 0.0, "synapses": 12.0, "trial_synapses": 0.0}}


def seed_cache(cache, n_rec=20):
    shape = planner.shape_of({"n_rec": n_rec, "conn_method": "dense"}, "expsm_diag", 8, 40, 100)
    cache.mkdir(exist_ok=True)
    fit = planner.Fit(planner.proxy_design(shape), FIT, ())
    (cache / f"{planner.key_of(shape)}.json").write_text(planner.json.dumps(fit.to_json()))
    return shape


def listing(folder):
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if "plan-cache" not in p.parts)


def test_plan_prints_the_memory_estimate_from_the_cache(tmp_path, capsys, planning, monkeypatch):
    seed_cache(planning)
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: pytest.fail("compiled although cached"))
    path = tmp_path / "s.toml"
    path.write_text(SWEEP.format(n_rec="[20, 60]"))
    code, out, err = run_cli(["sweep", "plan", path], capsys)
    assert code == 0, err
    assert "memory per device" in out
    rows = [line.split() for line in out.splitlines() if line.strip().startswith("expsm_diag n_rec=")]
    # the run takes both GPUs (data x2: each fits); one would do (the fewest that fit: none on 1 node)
    assert len(rows) == 2 and all(r[6] == "1" and r[9:14] == ["data", "x2", "2", "1", "none"] for r in rows), out
    # n_rec 60, 8 trials (4 per device under data x2), 60^2 mask: the fit's terms by hand (MB)
    by_hand = lambda b: (290 * b * 60 + 6 * b * 3600 + 2 * (1237 * 60 + 12 * 3600) + 4 * 3600) / 1e6  # noqa: E731
    assert rows[1][7:9] == [f"{by_hand(4):.3g}", "MB"], rows[1]
    assert rows[1][14:17] == [f"({by_hand(8):.3g}", "MB,", "1"], rows[1]


@pytest.mark.parametrize("command", ["plan", "submit"])
def test_a_point_too_large_for_any_layout_is_refused(tmp_path, capsys, planning, command):
    seed_cache(planning)
    path = tmp_path / "s.toml"
    path.write_text(SWEEP.format(n_rec="[20, 100000]"))
    before = listing(tmp_path)
    code, out, err = run_cli(["sweep", command, path], capsys)
    assert code == 2 and err.startswith("error: memory: point ") and err.count("\n") == 1, err
    assert "n_rec=100000" in err and "2 GPUs of 1 GB" in err and "gpu_memory_gb" in err, err
    assert listing(tmp_path) == before  # nothing written: no store, no jobs folder
    if command == "plan":
        assert "FITS NOWHERE" in out


def test_the_layouts_and_the_smallest_that_fits():
    fit = planner.Fit((), {"temp": {"trial_neurons": 100.0, "synapses": 4.0}, "argument": {"neurons": 10.0},
                           "output": {"neurons": 10.0}}, ())
    shape = planner.shape_of({"n_rec": 1000, "conn_method": "dense"}, "expsm_diag", 8, 50, 100)
    fp = planner.Footprint({**shape, "parallel": "auto", "devices": 0}, fit)
    one = 100 * 8 * 1000 + 4 * 1000**2 + 2 * 10 * 1000 + 4 * 1000**2  # temp, arguments and outputs, the mask
    assert fp.step_bytes() == pytest.approx(one)
    assert planner.layout_bytes(fp, "data", 4) == pytest.approx(one - 100 * 6 * 1000)
    # neurons (estimated): the layout's own count, at least the step split by D plus the gathered spikes
    analytic = neurons_device_estimate(1000, 100, 2, 4, "expsm_diag", 8, 50, sparse=False, n_synapses=1e6).total
    assert planner.layout_bytes(fp, "neurons", 4) == pytest.approx(max(analytic, one / 4 + 8 * 1000 * 4 * 2))
    big = planner.DeviceBudget("gpu", one / planner.GPU_USABLE * 1.01, 8)
    assert planner.place(fp, big).describe() == "none"
    small = planner.DeviceBudget("gpu", 0.6 * one / planner.GPU_USABLE, 8)  # data keeps the network whole
    chosen = planner.place(fp, small)
    expect = next(d for d in range(2, 9) if 1000 % d == 0 and planner.layout_bytes(fp, "neurons", d) <= 0.6 * one)
    assert (chosen.kind, chosen.devices, chosen.fits, chosen.measured_layout) == ("neurons", expect, True, False)
    assert planner.place(fp, small, parallel="data").fits is False
    assert planner.place(fp, planner.DeviceBudget("cpu", None)).fits  # memory unknown: not refused


ACCURACY = """name = "acc"
experiment = "scaling-probe"
store = "out.zarr"
[params]
n_rec = 160
conn_prob = 0.1
sparse_impl = "event"
batch_size = 12
n_steps = 100
[[zip]]
method = ["bptt", "expsm_diag"]
conn_method = ["dense", "rand"]
[resources]
executor = "debug"
"""


@pytest.mark.slow
def test_plan_compiles_proxies_and_their_temp_bytes_are_within_25_percent_of_a_direct_compile(
        tmp_path, capsys, planning):
    """``sweep plan`` compiles two families' proxies (one subprocess: both methods, both wirings; the four
    combinations are in bench/planner_accuracy.py) and prints the plan; each shape's extrapolated temp bytes
    are then compared with the step compiled at the point's own size."""
    path = tmp_path / "s.toml"
    path.write_text(ACCURACY)
    code, out, err = run_cli(["sweep", "plan", path], capsys)
    assert code == 0 and "memory per device" in out, err
    ratios = {}
    for method, conn in (("bptt", "dense"), ("expsm_diag", "rand")):
        network = {"n_rec": 160, "conn_method": conn, "conn_prob": 0.1, "sparse_impl": "event"}
        shape = planner.shape_of(network, method, 12, 100, 100)
        assert shape["impl"] == ("dense" if conn == "dense" else "event")
        fp = planner.cached(shape)
        assert fp is not None and (160, 12, 100) not in {p[:3] for p in fp.fit.proxies}  # extrapolated
        measured = planner.measure(shape)  # the step compiled at the point's own size
        ratios[method, conn] = fp.part("temp") / measured["temp"]
        for part in ("argument", "output"):
            assert fp.part(part) == pytest.approx(measured[part], rel=0.1), (method, conn, part)
    print("planned / measured temp bytes:", {f"{m}/{c}": round(r, 3) for (m, c), r in ratios.items()})
    assert all(0.75 <= r <= 1.25 for r in ratios.values()), ratios


SAME = """name = "same"
experiment = "train-network"
store = "out.zarr"
[params]
method = "expsm_diag"
conn_method = "dense"
n_rec = 400
batch_size = 8
iterations = 1
[resources]
executor = "debug"
gpus_per_node = 4
gpu_memory_gb = {gb!r}
"""
TRAIN = {"method": "expsm_diag", "conn_method": "dense", "n_rec": 400, "batch_size": 8, "iterations": 1}


def seed_train_fit(cache) -> planner.Footprint:
    """FIT as the cached fit of TRAIN's family; its footprint."""
    from diffbrain.experiments import get

    exp = get("train-network")
    shape = exp.memory(exp.validate(TRAIN))
    cache.mkdir(exist_ok=True)
    fit = planner.Fit(planner.proxy_design(shape), FIT, ())
    (cache / f"{planner.key_of(shape)}.json").write_text(planner.json.dumps(fit.to_json()))
    return planner.Footprint(shape, fit)


@pytest.mark.parametrize("case", ["data", "neurons", "nothing"])
def test_plan_and_run_pick_the_same_layout(tmp_path, capsys, planning, monkeypatch, case):
    """One rule: ``sweep plan`` on 4 GPUs and the run on 4 devices with the same memory each take data x4 when a
    device's share fits, else neurons x4, else refuse; the run checks the planner's cached fit (no compile)."""
    from diffbrain.experiments import get
    from diffbrain.network import device_fit
    from diffbrain.network.parallel import DoesNotFit
    from diffbrain.network.run import plan_run

    fp = seed_train_fit(planning)
    data, neurons = planner.layout_bytes(fp, "data", 4), planner.layout_bytes(fp, "neurons", 4)
    assert neurons < data  # the 400^2 dense terms split by neuron, replicated by data
    usable = {"data": 1.01 * data, "neurons": (data + neurons) / 2, "nothing": 0.9 * neurons}[case]
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: pytest.fail("compiled although cached"))
    path = tmp_path / "s.toml"
    path.write_text(SAME.format(gb=usable / planner.GPU_USABLE / 1e9))
    code, out, err = run_cli(["sweep", "plan", path], capsys)
    row = next(line.split() for line in out.splitlines() if line.strip().startswith("expsm_diag n_rec=400"))
    monkeypatch.setattr(device_fit, "accelerator_free_bytes", lambda devices: usable)  # 4 GPUs of that memory
    params = get("train-network").validate(TRAIN)
    if case == "nothing":
        assert code == 2 and err.startswith("error: memory: point ") and "FITS NOWHERE" in out, err
        with pytest.raises(DoesNotFit) as refused:
            plan_run(params, ("d0", "d1", "d2", "d3"))
        assert refused.value.field == "n_rec" and "planner figure" in refused.value.message
        return
    assert code == 0, err
    plan = plan_run(params, ("d0", "d1", "d2", "d3"))
    star = "*" if case == "neurons" else ""  # the neurons layout's figure is estimated
    assert row[9:12] == [case, "x4" + star, "4"], out  # what plan says the run will take
    assert (plan.layout.kind, plan.layout.n_devices) == (case, 4)  # what the run takes
    checked = plan.record()["checked_device_bytes"]
    assert plan.fit.source == "planner" and checked == pytest.approx(planner.layout_bytes(fp, case, 4))
    assert row[7:9] == [f"{checked / 1e6:.3g}", "MB"], row


def test_auto_refuses_a_run_that_fits_nowhere_exit_2_naming_the_field_and_limit(tmp_path, capsys, planning,
                                                                                monkeypatch):
    """``diffbrain train`` on a device too small for any layout: one line (n_rec, the bytes, the limit), exit 2,
    no --out."""
    from diffbrain.network import device_fit

    fp = seed_train_fit(planning)
    monkeypatch.setattr(device_fit, "accelerator_free_bytes", lambda devices: 0.5 * fp.step_bytes())
    out = tmp_path / "never"
    flags = [f"--{k.replace('_', '-')}={v}" for k, v in TRAIN.items()]
    code, _, err = run_cli(["train", *flags, "--out", out], capsys)
    assert code == 2 and err.count("\n") == 1 and err.startswith("error: n_rec: the training step needs"), err
    assert f"none {fp.step_bytes() / 1e6:.3g} MB per device, planner figure" in err and "each device may hold" in err
    assert not out.exists()


def test_plan_refuses_a_layout_request_the_resources_cannot_meet(tmp_path, capsys, planning):
    """``devices = 4`` on 2 GPUs: the run would refuse it (field devices), so plan does (exit 2, field parallel)."""
    seed_cache(planning)
    path = tmp_path / "s.toml"
    path.write_text(SWEEP.format(n_rec="[20]").replace("batch_size = 8", "batch_size = 8\ndevices = 4"))
    code, _, err = run_cli(["sweep", "plan", path], capsys)
    assert code == 2 and err.startswith("error: parallel: point ") and "4 devices asked for but" in err, err
