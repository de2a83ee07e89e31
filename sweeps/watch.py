"""``sweep status --watch``: a live table of a sweep (points by state, the running points' latest progress, an
ETA from the completed points), refreshed until nothing is queued or running. On a terminal it redraws in
place (rich); elsewhere (a log, CI) it prints one line when the counts change, at most every 30 s.

The running points' progress is the latest line each wrote to its job log (``hpc.runner.ProgressLog``:
``<time>   <point id>  42.0% <message>``), read from the end of the logs of the running jobs only.
"""

from __future__ import annotations

import re
import statistics
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from analysis import progress as terminal
from analysis.store import COMPLETE
from slurm import jobs as jobbook
from slurm.resources import jobs_dir_for
from sweeps import control

PROGRESS_LINE = re.compile(r"^\S+\s+(?P<point>[0-9a-f]{16})\s+(?P<percent>[\d.]+)%\s?(?P<message>.*)$")
TAIL_BYTES = 64 * 1024  # of each log: the latest progress lines are at its end


@dataclass(frozen=True)
class Progress:
    fraction: float
    message: str


def latest_progress(logs: Iterable[Path], wanted: set[str]) -> dict[str, Progress]:
    """{point id: its latest progress line} among ``wanted``, from the ends of ``logs``."""
    out: dict[str, Progress] = {}
    for log in logs:
        try:
            with open(log, "rb") as handle:
                handle.seek(0, 2)
                size = handle.tell()
                handle.seek(max(0, size - TAIL_BYTES))
                text = handle.read().decode("utf-8", errors="replace")
        except OSError:
            continue
        for line in text.splitlines():
            match = PROGRESS_LINE.match(line.strip("\r"))
            if match and match["point"] in wanted:
                out[match["point"]] = Progress(float(match["percent"]) / 100, match["message"].strip())
    return out


def running_logs(sweep, state: control.SweepState) -> list[Path]:
    """The job logs of the sweep's running points (their latest submission's folder)."""
    latest = jobbook.latest_job_of_points(jobbook.load(jobs_dir_for(sweep.store)))
    folders = {Path(latest[pid][0].folder) for pid in state.ids(control.RUNNING) if pid in latest}
    return [log for folder in sorted(folders) for log in sorted(folder.glob("*_log.out"))]


def eta_seconds(state: control.SweepState) -> tuple[float | None, float | None]:
    """(seconds until the queued and running points are done, the mean wall time it is based on); None
    without a complete point or with nothing running."""
    counts = state.counts()
    walls = [float(w) for pid in state.ids(COMPLETE) for w in [state.stored.attrs(pid).get("wall_seconds")]
             if isinstance(w, (int, float))]
    left = counts[control.RUNNING] + counts[control.PENDING]
    if not walls or not counts[control.RUNNING]:
        return None, (statistics.fmean(walls) if walls else None)
    mean = statistics.fmean(walls)
    return left * mean / counts[control.RUNNING], mean


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def summary_line(sweep, state: control.SweepState) -> str:
    counts = state.counts()
    eta, mean = eta_seconds(state)
    line = f"{sweep.name}: " + ", ".join(f"{counts[name]} {name}" for name in control.ORDER)
    if eta is not None:
        line += f"; ETA ~{_duration(eta)} (mean {mean:.3g} s per point, {counts[control.RUNNING]} running)"
    return line


def render(sweep, state: control.SweepState, progress: dict[str, Progress], rows: int = 10):
    """The rich table of one refresh."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    counts = state.counts()
    totals = Table(show_header=True, header_style="bold")
    for name in control.ORDER:
        totals.add_column(name, justify="right")
    totals.add_row(*(str(counts[name]) for name in control.ORDER))
    running = Table(show_header=True, header_style="bold")
    for column in ("running point", "progress", "latest"):
        running.add_column(column)
    ids = state.ids(control.RUNNING)
    for pid in ids[:rows]:
        shown = progress.get(pid)
        running.add_row(pid, f"{shown.fraction:.0%}" if shown else "-", (shown.message if shown else "")[:60])
    if len(ids) > rows:
        running.add_row(f"... {len(ids) - rows} more", "", "")
    title = Text(summary_line(sweep, state), style="bold")
    return Group(title, totals, running) if ids else Group(title, totals)


def watch(sweep, points, poll_s: float, rows: int = 10, log_every_s: float = 30.0) -> control.SweepState:
    """Refresh until no point is queued or running (the final state); a signal ends it (KeyboardInterrupt)."""
    def look() -> tuple[control.SweepState, dict[str, Progress]]:
        state = control.sweep_state(sweep, points, finished_jobs=False, check="marker")
        running = set(state.ids(control.RUNNING))
        return state, (latest_progress(running_logs(sweep, state), running) if running else {})

    def busy(state: control.SweepState) -> bool:
        counts = state.counts()
        return bool(counts[control.RUNNING] + counts[control.PENDING])

    if not terminal.wanted():
        last_line, last_time = "", 0.0
        while True:
            state, _ = look()
            line = summary_line(sweep, state)
            if line != last_line and time.monotonic() - last_time >= log_every_s or not busy(state):
                print(line, file=sys.stderr, flush=True)
                last_line, last_time = line, time.monotonic()
            if not busy(state):
                return state
            time.sleep(poll_s)
    from rich.console import Console
    from rich.live import Live

    state, shown = look()
    with Live(render(sweep, state, shown, rows), console=Console(stderr=True), auto_refresh=False) as live:
        while busy(state):
            time.sleep(poll_s)
            state, shown = look()
            live.update(render(sweep, state, shown, rows), refresh=True)
    return state
