"""``diffbrain report`` on stores written by real sweeps: a tiny scaling sweep and a tiny fit sweep run here.

Both sweeps go through ``diffbrain sweep submit --executor local --wait`` (real experiments, real Zarr),
then the report's tables are checked cell by cell against the values read back from the store.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import pytest

from analysis import open_sweep
from analysis.markdown import fmt
from analysis.report import FIGURES, build_report
from sweeps.cli import main

pytestmark = pytest.mark.slow
MiB = 2**20

SCALING = """
name = "tiny-scaling"
experiment = "scaling-probe"
store = "scaling.zarr"
[params]
n_rec = 20
batch_size = 2
steps = 2
warmup = 0
[grid]
method = ["bptt", "expsm_diag"]
n_steps = [40, 80]
[resources]
executor = "local"
points_per_job = 2
timeout_min = 20
"""

FIT = """
name = "tiny-fit"
experiment = "fit-neuron"
store = "fit.zarr"
[params]
model = "gif"
target = "potential"
n_traces = 1
duration_ms = 200.0
starts = 2
budget = 16
keep_samples = 50
seed = 0
[grid]
method = ["gradient", "de"]
[resources]
executor = "local"
points_per_job = 2
timeout_min = 20
"""


def run_sweep(folder: Path, text: str) -> Path:
    sweep = folder / "sweep.toml"
    sweep.write_text(textwrap.dedent(text))
    try:
        main(["sweep", "submit", str(sweep), "--wait"])
    except SystemExit as done:
        assert done.code in (0, None), f"sweep {sweep} ended with exit status {done.code}"
    return folder / text.split('store = "')[1].split('"')[0]


def table_rows(summary: str, heading: str) -> list[dict[str, str]]:
    """The first markdown table below ``heading`` as one dict per row (header -> cell)."""
    lines = summary[summary.index(heading):].splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("|"))
    header = [c.strip() for c in lines[start].strip("|").split("|")]
    rows = []
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        rows.append(dict(zip(header, [c.strip() for c in line.strip("|").split("|")], strict=True)))
    return rows


def check_figures(out: Path, result, expected: set[str]) -> str:
    assert set(result.figures) == expected
    assert set(result.figures) | set(result.skipped) == set(FIGURES)
    summary = (out / "summary.md").read_text()
    for name in expected:
        path = out / name
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 5000, name
        assert f"[`{name}`]({name})" in summary
    for name, reason in result.skipped.items():
        assert f"`{name}`" in summary and reason in summary
    return summary


@pytest.fixture(scope="module")
def scaling_store(tmp_path_factory) -> Path:
    return run_sweep(tmp_path_factory.mktemp("scaling"), SCALING)


@pytest.fixture(scope="module")
def fit_store(tmp_path_factory) -> Path:
    return run_sweep(tmp_path_factory.mktemp("fit"), FIT)


def test_report_of_a_real_scaling_sweep(scaling_store, tmp_path):
    out = tmp_path / "report"
    summary = check_figures(out, build_report(scaling_store, out), {"memory_vs_T.png"})
    assert "n_rec takes fewer than two values" in summary  # seconds_per_step_vs_n_rec: one n_rec only
    ds = open_sweep(scaling_store).compute()
    assert ds.sizes["point"] == 4
    rows = table_rows(summary, "## Scaling")
    assert len(rows) == 4
    step_bytes = {}
    for i in range(4):
        method, t = str(ds["method"].values[i]), int(ds["n_steps"].values[i])
        row = next(r for r in rows if r["method"] == method and r["T"] == str(t))
        point = ds.isel(point=i)
        total = float(point["temp_bytes"] + point["argument_bytes"] + point["output_bytes"])
        step_bytes[method, t] = total
        assert row["s/step (ms)"] == fmt(float(point["step_seconds_median"]) / 1e-3)
        assert row["compile (s)"] == fmt(float(point["compile_seconds"]))
        assert row["step memory (MiB)"] == fmt(total / MiB)
        assert row["peak RSS (MiB)"] == fmt(float(point["peak_rss_bytes"]) / MiB)
        assert row["loss"] == fmt(float(point["loss"]))
        assert np.isfinite(float(point["loss"])) and float(point["step_seconds_median"]) > 0
    growth = {r["method"]: r for r in table_rows(summary, "### Memory growth from T=40 to T=80")}
    for method in ("bptt", "expsm_diag"):
        expected = 100 * (step_bytes[method, 80] / step_bytes[method, 40] - 1)
        assert growth[method]["step memory growth T=40->80 (%)"] == fmt(expected)
    # what the figure is about: BPTT's step memory grows with T, the online method's does not (much)
    assert step_bytes["bptt", 80] > 1.3 * step_bytes["bptt", 40]
    assert step_bytes["expsm_diag", 80] < 1.1 * step_bytes["expsm_diag", 40]


def test_report_of_a_real_fit_sweep(fit_store, tmp_path):
    out = tmp_path / "report"
    summary = check_figures(out, build_report(fit_store, out), {"fit_traces.png", "loss_vs_time.png"})
    ds = open_sweep(fit_store).compute()
    rows = {r["method"]: r for r in table_rows(summary, "## Fits per method")}
    assert set(rows) == {"gradient", "de"}
    recovery = {r["method"]: r for r in table_rows(summary, "### Parameter recovery")}
    for i in range(ds.sizes["point"]):
        point = ds.isel(point=i)
        method = str(point["method"].values)
        assert rows[method]["final loss"] == fmt(float(point["loss"]))
        assert rows[method]["seconds (s)"] == fmt(float(point["seconds"]))
        assert rows[method]["evaluations"] == fmt(float(point["evaluations"]))
        assert float(point["evaluations"]) <= 16
        error = np.abs(point["fitted"] - point["true_value"]) / np.abs(point["true_value"])
        for name in point["param"].values:
            assert recovery[method][str(name)] == fmt(float(error.sel(param=name)))
        assert rows[method]["rel. error"] == fmt(float(error.median()))
    assert "tiny-fit" in summary  # provenance: the sweep's name
