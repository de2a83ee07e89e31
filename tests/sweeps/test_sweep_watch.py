"""``sweep status --watch``: the running points' latest progress from their job logs, an ETA from the
complete points, a rich table on a terminal and one line per change elsewhere, ending with the sweep."""

import textwrap
import time

from cli_runner import run_cli
from rich.console import Console

from analysis.store import PointState, StoreScan
from hpc.tasks import PointTask
from sweeps import control, watch
from sweeps.points import expand
from sweeps.spec import load_sweep

SWEEP = """
name = "watched"
experiment = "cluster-check"
store = "w.zarr"
[params]
seconds = 6.0
[grid]
seed = [0, 1]
[resources]
executor = "local"
timeout_min = 5
"""


def test_latest_progress_per_point(tmp_path):
    log = tmp_path / "1_0_log.out"
    log.write_text("2026-01-01T00:00:00   aaaaaaaaaaaaaaaa  10.0% sleeping\n"
                   "noise line\n"
                   "2026-01-01T00:00:10   bbbbbbbbbbbbbbbb  50.0% loss 0.3\n"
                   "2026-01-01T00:00:20   aaaaaaaaaaaaaaaa  75.5% sleeping\n")
    found = watch.latest_progress([log, tmp_path / "missing.out"], {"aaaaaaaaaaaaaaaa", "cccccccccccccccc"})
    assert found == {"aaaaaaaaaaaaaaaa": watch.Progress(0.755, "sleeping")}


def test_eta_and_table():
    points = [PointTask(f"{i:016x}", "cluster-check", {"seed": i}) for i in range(5)]
    kinds = ["complete", "complete", "running", "running", "pending"]
    states = dict(zip([p.point_id for p in points], kinds, strict=True))
    stored = StoreScan({points[0].point_id: PointState("complete", attrs={"wall_seconds": 10.0}),
                        points[1].point_id: PointState("complete", attrs={"wall_seconds": 30.0})})
    state = control.SweepState(points, states, stored, None)
    assert watch.eta_seconds(state) == (3 * 20.0 / 2, 20.0)  # 3 points left, 2 at a time, 20 s each
    sweep = type("S", (), {"name": "demo"})()
    console = Console(record=True, width=120)
    console.print(watch.render(sweep, state, {points[2].point_id: watch.Progress(0.42, "sleeping")}))
    text = console.export_text()
    assert "demo: 2 complete, 0 failed, 0 corrupt, 2 running, 1 pending, 0 missing; ETA ~30 s" in text
    assert points[2].point_id in text and "42%" in text and "sleeping" in text and points[3].point_id in text


def test_watch_follows_a_local_sweep_to_its_end(tmp_path, capsys):
    path = tmp_path / "s.toml"
    path.write_text(textwrap.dedent(SWEEP))
    code, out, err = run_cli(["sweep", "submit", path], capsys)
    assert code == 0 and "submitted 2 of 2 points to local" in out, out + err
    sweep = load_sweep(path)
    points = expand(sweep)
    deadline, shown = time.monotonic() + 120, {}
    while time.monotonic() < deadline and not shown:
        state = control.sweep_state(sweep, points, finished_jobs=False)
        running = set(state.ids(control.RUNNING))
        shown = watch.latest_progress(watch.running_logs(sweep, state), running) if running else {}
        time.sleep(0.3)
    assert shown and all(0 <= p.fraction <= 1 and p.message == "sleeping" for p in shown.values()), shown
    code, out, err = run_cli(["sweep", "status", path, "--watch"], capsys)
    assert code == 0, out + err
    assert err.strip().splitlines()[-1] == "watched: 2 complete, 0 failed, 0 corrupt, 0 running, 0 pending, 0 missing"
    assert "complete  2" in out  # then the usual status
