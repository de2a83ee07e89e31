"""``diffbrain report`` on small real stores (written with analysis.store from synthetic point datasets).

The numbers in summary.md are checked against values computed by hand from the synthetic points.
"""

import json
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from cli_runner import run_cli

from analysis.markdown import fmt
from analysis.report import FIGURES, build_report
from analysis.scheduler import SchedulerOptions
from analysis.store import create_store, write_point

PROVENANCE = {"created": "2026-01-02T03:04:05+00:00", "toolkit_version": "0.1.0", "git_commit": "abc1234",
              "packages": {"xarray": "2026.9.0"}}


def make_store(path: Path, experiment: str, points: dict[str, tuple[dict, xr.Dataset | None]],
               status: str = "complete") -> Path:
    create_store(path, {"name": path.stem, "experiment": experiment, "spec": {},
                        "source": f'name = "{path.stem}"\nexperiment = "{experiment}"\n'}, PROVENANCE)
    for pid, (params, dataset) in points.items():
        write_point(path, pid, dataset if status == "complete" else None, {
            "point_id": pid, "experiment": experiment, "params": params, "seed": params.get("seed", 0),
            "host": "test", "devices": ["cpu"], "started": "2026-01-02T03:04:05+00:00",
            "ended": "2026-01-02T03:04:06+00:00", "wall_seconds": 1.0, "peak_rss_bytes": 1e8,
            "status": status, "error": None if status == "complete" else "boom"})
    return path


# ------------------------------------------------------------------------------------ training store
EDGES = np.array([0.0, 0.1, 0.2, 0.4])


def training_point(events, offsets, dt, n_steps, n_neurons, accuracy, hist_exc, hist_inh, mean_exc):
    """One train-network dataset in the contract's shapes; snapshots at iterations 0 and len(accuracy)."""
    times, neurons = (np.array(c, np.int32) for c in zip(*events, strict=True))
    counts = np.bincount(neurons, minlength=n_neurons)
    n_trials = len(offsets) - 1
    snapshots = [0, len(accuracy)]
    return xr.Dataset(
        {
            "loss": ("iteration", 1.0 - np.asarray(accuracy)),
            "accuracy": ("iteration", np.asarray(accuracy, np.float32), {"units": "1"}),
            "step_seconds": ("iteration", np.full(len(accuracy), 0.01), {"units": "s"}),
            "test_accuracy": ((), accuracy[-1]),
            "test_loss": ((), 1.0 - accuracy[-1]),
            "compile_seconds": ((), 2.0, {"units": "s"}),
            "weight_bin_edges": ("w_edge", EDGES, {"units": "uS"}),
            "w_hist_exc": (("snapshot", "w_bin"), np.array(hist_exc, np.int64)),
            "w_hist_inh": (("snapshot", "w_bin"), np.array(hist_inh, np.int64)),
            "w_mean_exc": ("snapshot", np.array(mean_exc), {"units": "uS"}),
            "spike_time": ("spike", times),
            "spike_neuron": ("spike", neurons),
            "spike_trial_offsets": ("trial_edge", np.array(offsets, np.int64)),
            "firing_rate": ("neuron", counts / (n_trials * n_steps * dt / 1000), {"units": "Hz"}),
            "is_excitatory": ("neuron", np.arange(n_neurons) < n_neurons - 1),
            "dt": ((), dt, {"units": "ms"}),
            "n_steps": ((), n_steps),
        },
        coords={"snapshot": snapshots},
        attrs={"mode": "train"},
    )


A_EVENTS = [(40, 0), (10, 0), (50, 1), (20, 0), (30, 1), (5, 0), (90, 1), (15, 0), (60, 1)]
B_EVENTS = [(0, 1), (59, 0), (20, 1), (40, 1)]


@pytest.fixture(scope="module")
def training_store(tmp_path_factory):
    path = tmp_path_factory.mktemp("train") / "train.zarr"
    a = training_point(A_EVENTS, [0, 4, 9], 1.0, 100, 3, [0.5, 0.6, 0.7, 0.8],
                       [[1, 2, 1], [2, 0, 2]], [[2, 2, 0], [2, 2, 0]], [0.16, 0.15])
    b = training_point(B_EVENTS, [0, 4], 0.5, 60, 2, [0.5, 0.7],
                       [[0, 4, 0], [0, 2, 2]], [[0, 0, 4], [4, 0, 0]], [0.15, 0.13])
    c = training_point(A_EVENTS, [0, 4, 9], 1.0, 100, 3, [0.4, 0.4, 0.5, 0.6],
                       [[4, 0, 0], [4, 0, 0]], [[1, 1, 2], [2, 1, 1]], [0.02, 0.03])
    return make_store(path, "train-network", {
        "pa": ({"method": "bptt", "n_rec": 3, "seed": 0}, a),
        "pb": ({"method": "bptt", "n_rec": 2, "seed": 1}, b),
        "pc": ({"method": "diag", "n_rec": 3, "seed": 0}, c),
    })


def table_row(summary: str, first_cell: str, after_heading: str) -> list[str]:
    """Cells of the first table row starting with ``first_cell`` below ``after_heading``."""
    text = summary[summary.index(after_heading):]
    for line in text.splitlines():
        if line.startswith(f"| {first_cell} |"):
            return [c.strip() for c in line.strip("|").split("|")]
    raise AssertionError(f"no row {first_cell!r} after {after_heading!r}")


def is_png(path: Path) -> bool:
    return path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 2000


@pytest.fixture(scope="module")
def training_report(training_store, tmp_path_factory):
    out = tmp_path_factory.mktemp("training-report") / "report"
    return out, build_report(training_store, out)


def test_training_report_figures_and_numbers(training_report):
    out, result = training_report
    assert set(result.figures) == {"accuracy_vs_iteration.png", "weight_histograms.png",
                                   "rate_cv_distributions.png", "raster.png"}
    assert set(result.figures) | set(result.skipped) == set(FIGURES)
    for name in result.figures:
        assert is_png(out / name), name
    summary = (out / "summary.md").read_text()
    for name in result.figures:
        assert f"[`{name}`]({name})" in summary
    assert "`memory_vs_T.png`" in summary and "no scaling-probe measurements" in summary
    assert "no fitted parameters" in summary
    # training: bptt final accuracy = median(0.8, 0.7); diag 0.6; test accuracy the same
    assert table_row(summary, "bptt", "## Training")[:3] == ["bptt", "2", fmt(0.75)]
    assert table_row(summary, "diag", "## Training")[:3] == ["diag", "1", fmt(np.float32(0.6))]
    # weights (E): TV distances a 0.5, b 0.5 -> bptt 0.5; mean |w| before (0.16 + 0.15) / 2
    exc = table_row(summary, "bptt", "### Excitatory")
    assert exc[1:4] == [fmt(0.155), fmt(0.14), fmt(0.5)]
    assert table_row(summary, "diag", "### Inhibitory")[1] == fmt(0.25)
    assert table_row(summary, "bptt", "### Inhibitory")[1] == fmt((0.0 + 1.0) / 2)
    # spikes: point a mean rate (25 + 20 + 0) / 3 = 15 Hz, b (100/3 + 100) / 2; bptt = their mean
    spk = table_row(summary, "bptt", "## Spiking")
    assert spk[1] == fmt((15 + (100 / 3 + 100) / 2) / 2)
    assert spk[2] == fmt((22.5 + 100 / 3) / 2)  # E: neurons 0,1 of a; neuron 0 of b
    assert table_row(summary, "diag", "## Spiking")[1] == fmt(15.0)
    assert "created" in summary and "2026-01-02T03:04:05+00:00" in summary and "abc1234" in summary
    assert "3 complete point(s) in the store" in summary


def test_report_on_a_local_cluster_writes_the_same_summary(training_store, training_report, tmp_path):
    threads_out, threads = training_report
    cluster = build_report(training_store, tmp_path / "cluster", scheduler="local",
                           options=SchedulerOptions(workers=2, processes=False))
    assert set(threads.figures) == set(cluster.figures)

    def numbers(path):
        lines = (path / "summary.md").read_text().splitlines()
        return [x for x in lines if "report written" not in x and "reductions ran on" not in x]

    assert numbers(threads_out) == numbers(tmp_path / "cluster")
    assert "reductions ran on | local" in (tmp_path / "cluster" / "summary.md").read_text()


def test_an_earlier_report_is_replaced(scaling_store, tmp_path):
    out = tmp_path / "again"
    build_report(scaling_store, out)
    (out / "stale.png").write_bytes(b"x")
    build_report(scaling_store, out)
    assert not (out / "stale.png").exists() and (out / "summary.md").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary folders left


# ------------------------------------------------------------------------------------- scaling store
@pytest.fixture(scope="module")
def scaling_store(tmp_path_factory):
    points = {}
    for n_rec in (100, 200):
        for t in (1000, 2000):
            for method, temp in (("bptt", t / 1000 * n_rec / 100 * 10e6), ("diag", n_rec / 100 * 2e6)):
                # as scaling-probe names them: T is the parameter n_steps, also returned as a variable
                params = {"method": method, "n_rec": n_rec, "n_steps": t, "conn_method": "dense", "seed": 0}
                points[f"{method}-{n_rec}-{t}"] = (params, xr.Dataset({
                    "step_seconds_median": ((), 0.001 * n_rec / 100, {"units": "s"}),
                    "step_seconds": ("step", np.full(3, 0.001 * n_rec / 100), {"units": "s"}),
                    "compile_seconds": ((), 1.5, {"units": "s"}),
                    "temp_bytes": ((), temp, {"units": "bytes"}),
                    "argument_bytes": ((), 1e6, {"units": "bytes"}),
                    "output_bytes": ((), 0.0, {"units": "bytes"}),
                    "peak_rss_bytes": ((), 5e8, {"units": "bytes"}),
                    "device_peak_bytes": ((), np.nan, {"units": "bytes"}),
                    "loss": ((), 0.69),
                    "n_steps": ((), t),
                }))
    return make_store(tmp_path_factory.mktemp("scaling") / "scaling.zarr", "scaling-probe", points)


def test_scaling_report(scaling_store, tmp_path):
    result = build_report(scaling_store, tmp_path / "r")
    assert set(result.figures) == {"memory_vs_T.png", "seconds_per_step_vs_n_rec.png"}
    summary = (tmp_path / "r" / "summary.md").read_text()
    # bptt n_rec 100: step memory 10 MB + 1 MB at T=1000, 20 + 1 at T=2000
    row = table_row(summary, "bptt | dense | 100 | 1000", "## Scaling")
    assert row[4:7] == [fmt(1.0), fmt(1.5), fmt(11e6 / 2**20)]
    growth = table_row(summary, "bptt | dense | 100", "### Memory growth")
    assert growth[3] == fmt(100 * (21 / 11 - 1))
    assert table_row(summary, "diag | dense | 200", "### Memory growth")[3] == fmt(0.0)


# ----------------------------------------------------------------------------------------- fit store
@pytest.fixture(scope="module")
def fit_store(tmp_path_factory):
    points = {}
    runs = {"f1": ("adam", [1.1, 2.0], 0.5), "f2": ("adam", [0.7, 2.5], 0.3), "f3": ("nevergrad", [1.5, 4.0], 1.0)}
    for pid, (method, fitted, loss) in runs.items():
        time = np.arange(5) * 0.5
        points[pid] = ({"method": method, "seed": int(pid[1])}, xr.Dataset(
            {
                "fitted": ("param", fitted), "true_value": ("param", [1.0, 2.5]),
                "lower": ("param", [0.0, 0.0]), "upper": ("param", [2.0, 5.0]),
                "loss": ((), loss, {"units": "mV"}), "seconds": ((), 3.0, {"units": "s"}),
                "evaluations": ((), 10), "start_loss": ("start", [loss, loss * 2]),
                "progress_seconds": ("progress", [0.5, 1.0, 2.0]),
                "progress_loss": ("progress", [3 * loss, 2 * loss, loss]),
                "current": (("trace", "time"), np.ones((1, 5))),
                "target_voltage": (("trace", "time"), np.sin(time)[None]),
                "fitted_voltage": (("trace", "time"), np.sin(time)[None] + loss),
            },
            coords={"param": ["a", "b"], "time": ("time", time, {"units": "ms"})},
            attrs={"model": "gif", "target": "potential", "method": method}))
    return make_store(tmp_path_factory.mktemp("fit") / "fit.zarr", "fit-neuron", points)


def test_fit_report(fit_store, tmp_path):
    result = build_report(fit_store, tmp_path / "r")
    assert set(result.figures) == {"fit_traces.png", "loss_vs_time.png"}
    summary = (tmp_path / "r" / "summary.md").read_text()
    assert table_row(summary, "adam", "## Fits")[:3] == ["adam", "2", fmt(0.4)]
    # recovery: adam a median(0.1, 0.3) = 0.2, b median(0.2, 0) = 0.1; nevergrad 0.5, 0.6
    assert table_row(summary, "adam", "### Parameter recovery")[1:] == [fmt(0.2), fmt(0.1)]
    assert table_row(summary, "nevergrad", "### Parameter recovery")[1:] == [fmt(0.5), fmt(0.6)]


# -------------------------------------------------------------------------------------- bad input: CLI
def test_cli_writes_a_report(scaling_store, tmp_path, capsys):
    out = tmp_path / "cli"
    code, captured, _ = run_cli(["report", scaling_store, "--out", out], capsys)
    assert code == 0
    assert "wrote 2 figure(s)" in captured and "skipped raster.png: no spike events" in captured
    assert (out / "summary.md").exists()


@pytest.mark.parametrize("case", ["not_a_store", "missing", "newer_layout", "no_complete_points"])
def test_bad_stores_exit_2_and_write_nothing(case, tmp_path, capsys, scaling_store):
    if case == "not_a_store":
        store = tmp_path / "plain"
        store.mkdir()
        expected = "not a diffbrain result store"
    elif case == "missing":
        store, expected = tmp_path / "nope.zarr", "does not exist"
    elif case == "newer_layout":
        store = make_store(tmp_path / "new.zarr", "scaling-probe", {})
        meta = json.loads((store / "zarr.json").read_text())
        meta["attributes"]["diffbrain_store_layout"] = 99
        (store / "zarr.json").write_text(json.dumps(meta))
        expected = "newer than this toolkit reads"
    else:
        store = make_store(tmp_path / "failed.zarr", "scaling-probe",
                           {"x": ({"method": "bptt", "seed": 0}, None)}, status="failed")
        expected = "has no complete points"
    out = tmp_path / "out"
    code, _, err = run_cli(["report", str(store), "--out", str(out)], capsys)
    assert code == 2
    assert expected in err and len(err.strip().splitlines()) == 1
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out")]


@pytest.mark.parametrize("case", ["file", "other_files", "scheduler"])
def test_bad_options_exit_2_and_write_nothing(case, scaling_store, tmp_path, capsys):
    out = tmp_path / "out"
    args = []
    if case == "file":
        out.write_text("mine")
    elif case == "other_files":
        out.mkdir()
        (out / "thesis.tex").write_text("mine")
    else:
        args = ["--scheduler", "locla"]
    code, _, err = run_cli(["report", str(scaling_store), "--out", str(out)] + args, capsys)
    assert code == 2
    assert ("--scheduler" if case == "scheduler" else "--out") in err
    if case == "file":
        assert out.read_text() == "mine"
    elif case == "other_files":
        assert sorted(p.name for p in out.iterdir()) == ["thesis.tex"]
    else:
        assert not out.exists()
