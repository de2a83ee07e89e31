"""``diffbrain report``: the figures a store's experiments support, and ``summary.md`` with the tables.

Every figure the toolkit knows is listed in :data:`FIGURES`; the report draws those whose data the
store holds and names the others with the reason they were skipped. The whole report is written into a
temporary sibling of the output folder and renamed into place only when everything succeeded, so a
failed report leaves nothing half-written (and an earlier report in that folder untouched).

Corrupt points (unreadable groups) are left out, named on stderr and in ``summary.md``; a chunk that
fails to decode while the figures are computed stops the report with one error naming the point.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from analysis import atomic, progress
from analysis.errors import BadOutput, BadStore, CorruptPointsWarning
from analysis.paths import check_writable, user_path

SUMMARY = "summary.md"
HEADER = "# diffbrain report"

# file name -> what it shows (the order of the summary's figure list)
FIGURES = {
    "memory_vs_T.png": "memory of one training step vs T per method (log-log, one line per n_rec)",
    "seconds_per_step_vs_n_rec.png": "median seconds per training step vs n_rec per method",
    "accuracy_vs_iteration.png": "training accuracy and loss vs iteration per method (median, quartiles)",
    "weight_histograms.png": "E and I weight distributions before vs after training per method",
    "rate_cv_distributions.png": "firing-rate and ISI-CV distributions per method",
    "raster.png": "spike raster of one recorded trial",
    "fit_traces.png": "fitted vs target membrane potential of the best fit",
    "loss_vs_time.png": "best loss vs wall time per method (fit sweeps)",
    "connectome_weights_by_class.png": "connectome runs: weight distributions per presynaptic cell class, "
                                       "before vs after training",
    "connectome_weights_by_transmitter.png": "connectome runs: weight distributions per presynaptic transmitter, "
                                             "before vs after training",
}


@dataclass
class Report:
    """What a report wrote (figure name -> path), what it skipped (name -> reason), and the summary's text."""

    out: Path
    figures: dict[str, Path] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    sections: list[str] = field(default_factory=list)


def check_output(out: str | Path) -> Path:
    """``out`` may be absent, an empty folder, or an earlier report (replaced as a whole); else :class:`BadOutput`
    (or :class:`BadPath` for a location that can never be written)."""
    out = check_writable(out, "--out", kind="path")  # BadPath: under /proc, under a file, a NUL byte
    if out.exists() and not out.is_dir():
        raise BadOutput(out, "exists and is not a folder", "give a new folder for the report")
    if out.is_dir() and any(out.iterdir()):
        summary = out / SUMMARY
        earlier = summary.is_file() and summary.read_text(errors="replace").startswith(HEADER)
        if not earlier:
            raise BadOutput(out, "is a folder with other files, not an earlier report",
                            "give a new or empty folder (an earlier report folder is replaced)")
    return out


def _status_counts(store: Path) -> dict[str, int]:
    from analysis.store import point_states

    counts: dict[str, int] = {}
    for state in point_states(store).values():
        counts[state] = counts.get(state, 0) + 1
    return counts


def _provenance(ds, store: Path, counts: dict[str, int], scheduler: str | None) -> list[str]:
    from analysis.markdown import table

    attrs = ds.attrs
    sweep = attrs.get("sweep") or {}
    lines = [f"{HEADER}: {sweep.get('name', store.name)}", "",
             f"Store `{store}`, experiment `{sweep.get('experiment', '?')}`: "
             + ", ".join(f"{n} {state}" for state, n in sorted(counts.items()))
             + f" point(s) in the store; the {ds.sizes['point']} complete point(s) are analysed.", ""]
    corrupt = attrs.get("corrupt_points") or {}
    if corrupt:
        lines += [f"**{len(corrupt)} corrupt point(s) left out** (`diffbrain sweep resume SWEEP.toml "
                  "--retry-corrupt` moves them to `points/.corrupt/` and computes them again):", ""]
        lines += [f"- `{pid}`: {reason}" for pid, reason in corrupt.items()] + [""]
    lines += ["## Provenance", ""]
    rows = [("store created", str(attrs.get("created", "–"))),
            ("toolkit version", str(attrs.get("toolkit_version", "–"))),
            ("git commit", str(attrs.get("git_commit") or "–")),
            ("store layout", str(attrs.get("diffbrain_store_layout", "–"))),
            ("report written", datetime.now(UTC).isoformat(timespec="seconds")),
            ("reductions ran on", scheduler or "dask threads in this process")]
    lines += table(["what", "value"], rows)
    packages = attrs.get("packages") or {}
    if packages:
        lines += ["", "Packages: " + ", ".join(f"{k} {v}" for k, v in sorted(packages.items()))]
    fixed = attrs.get("fixed_params") or {}
    if fixed:
        lines += ["", "Fixed parameters: " + ", ".join(f"`{k}={v}`" for k, v in sorted(fixed.items()))]
    if sweep.get("source"):
        lines += ["", "<details><summary>Sweep file</summary>", "", "```toml", str(sweep["source"]).rstrip(),
                  "```", "", "</details>"]
    return lines + [""]


def build_report(store: str | Path, out: str | Path, scheduler: str | None = None, options=None,
                 status: Callable[[str], None] | None = None, html: bool = False,
                 extra_sections: Sequence[str] = ()) -> Report:
    """Open ``store`` with :func:`analysis.open_sweep`, compute the statistics on ``scheduler`` and write
    the figures and ``summary.md`` into ``out`` (``html``: also one self-contained ``report.html``;
    ``extra_sections``: Markdown sections appended after the figures' own, e.g. the sweep's usage, which
    the caller computes because it needs the scheduler). Raises
    :class:`BadStore` (not a store, newer layout, no complete points), :class:`BadOutput`, or
    :class:`analysis.scheduler.SchedulerError`, before writing."""
    from analysis.collect import open_sweep
    from analysis.report_sections import SECTIONS
    from analysis.scheduler import dask_client, parse_scheduler

    store = user_path(store, "store")
    if not store.exists():
        raise BadStore(store, "does not exist", "give the store path of a sweep (its `store` key)")
    out = check_output(out)
    scheduler = parse_scheduler(scheduler)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CorruptPointsWarning)  # named below and in the summary instead
        ds = open_sweep(store)
    corrupt = ds.attrs.get("corrupt_points") or {}
    if corrupt and status is not None:
        status(f"left out {len(corrupt)} corrupt point(s): "
               + "; ".join(f"{pid} ({why})" for pid, why in list(corrupt.items())[:5])
               + ("; ..." if len(corrupt) > 5 else ""))
    counts = _status_counts(store)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic.remove_stale_temps(out)  # what an earlier report killed on this host left
    tmp = atomic.temp_sibling(out, "writing")
    tmp.mkdir()
    report = Report(out=out)
    try:
        with dask_client(scheduler, options, status=status) as _client, \
                progress.bar("report", len(SECTIONS), counted=True) as bar, warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=RuntimeWarning)  # all-NaN slices of padded data
            for name, section in SECTIONS:
                with bar.step(name):
                    lines = section(ds, tmp, report)
                if lines:
                    report.sections.append("\n".join(lines))
        report.sections += [section for section in extra_sections if section]
        summary = _provenance(ds, store, counts, scheduler) + _figure_list(report) + report.sections
        (tmp / SUMMARY).write_text("\n".join(summary).rstrip() + "\n")
        if html:
            from analysis.html_report import REPORT_HTML, render_html

            title = f"diffbrain report: {(ds.attrs.get('sweep') or {}).get('name', store.name)}"
            (tmp / REPORT_HTML).write_text(render_html(title, (tmp / SUMMARY).read_text(), report.figures, FIGURES))
        atomic.publish(tmp, out, replace=True)
    except BaseException:
        atomic.remove_temp(tmp, out)
        raise
    report.figures = {name: out / path.name for name, path in report.figures.items()}
    return report


def _figure_list(report: Report) -> list[str]:
    lines = ["## Figures", ""]
    for name, what in FIGURES.items():
        if name in report.figures:
            lines.append(f"- [`{name}`]({name}): {what}")
    skipped = [f"- `{name}` ({FIGURES[name]}): {reason}" for name, reason in report.skipped.items()]
    if skipped:
        lines += ["", "Skipped:", ""] + skipped
    return lines + [""]
