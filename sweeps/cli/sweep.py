"""``diffbrain sweep ...``: plan, submit, status, resume, cancel and collect a sweep file.

``plan`` reads the file, the experiment's declared parameters and the store's point markers only: no
JAX, no zarr, no scheduler, so it answers in about a second.
"""

from __future__ import annotations

import functools
import sys
from pathlib import Path

import click

from sweeps.errors import SpecError

RESOURCE_FLAGS = (
    ("--executor", "executor", click.Choice(["auto", "local", "slurm", "debug"]),
     "where tasks run (auto: slurm when sbatch is on PATH and SLURM answers, else local)"),
    ("--partition", "partition", str, "SLURM partition"),
    ("--account", "account", str, "SLURM account"),
    ("--qos", "qos", str, "SLURM quality of service"),
    ("--timeout-min", "timeout_min", int, "time limit of each task in minutes"),
    ("--gpus-per-node", "gpus_per_node", int, "GPUs of each task"),
    ("--cpus-per-task", "cpus_per_task", int, "CPUs of each task"),
    ("--mem-gb", "mem_gb", float, "memory of each task in GB"),
    ("--points-per-job", "points_per_job", int, "points packed into one task"),
    ("--array-parallelism", "array_parallelism", int, "tasks of an array running at once"),
)


def sweep_options(func):
    """The options every command that reads a sweep file takes."""

    @click.argument("sweep_file", type=click.Path(dir_okay=False, path_type=Path))
    @click.option("--variant", help="apply the file's [variant.NAME] table")
    @click.option("--quick", is_flag=True, help="shorthand for --variant quick")
    @click.option("--with-optional", is_flag=True, help="keep the points that [[optional]] tables drop")
    @functools.wraps(func)
    def wrapper(sweep_file, variant, quick, with_optional, **kwargs):
        if quick and variant and variant != "quick":
            raise SpecError("--quick", f"conflicts with --variant {variant}", "give one of them")
        return func(sweep_file=sweep_file, variant="quick" if quick else variant, with_optional=with_optional,
                    **kwargs)

    return wrapper


def resource_options(func):
    for flag, name, kind, help_text in reversed(RESOURCE_FLAGS):
        func = click.option(flag, name, type=kind, default=None, help=help_text)(func)
    return click.option("--setup", "setup", multiple=True, help="shell line run before each task (repeatable)")(func)


def _load(sweep_file, variant, with_optional, flags=None):
    from sweeps.points import expand
    from sweeps.spec import load_sweep

    flags = dict(flags or {})
    if not flags.get("setup"):
        flags.pop("setup", None)
    else:
        flags["setup"] = list(flags["setup"])
    sweep = load_sweep(sweep_file, variant=variant, flags=flags)
    return sweep, expand(sweep, with_optional=with_optional)


def _executor(sweep) -> str:
    from slurm.resources import resolve_executor

    return resolve_executor(sweep.resources.executor)


def _short(value) -> str:
    text = repr(value) if isinstance(value, float) else str(value)
    return text if len(text) <= 14 else text[:13] + "~"


def _n(count: int, noun: str) -> str:
    return f"{count} {noun}" + ("" if count == 1 else "s")


def _table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in [header, *rows]]
    return "\n".join(lines)


def _describe_resources(res, executor: str) -> str:
    if executor != "slurm":
        return f"{res.timeout_min} min"
    parts = [f"partition {res.partition}" if res.partition else "default partition"]
    if res.gpus_per_node:
        parts.append(f"{res.gpus_per_node} GPU")
    parts.append(f"{res.cpus_per_task} CPU")
    if res.mem_gb:
        parts.append(f"{res.mem_gb:g} GB")
    parts.append(f"{res.timeout_min} min")
    return ", ".join(parts)


@click.group(name="sweep")
def sweep():
    """Run a sweep file: plan it, submit it (local or SLURM), follow, resume, cancel and collect it."""


@sweep.command()
@sweep_options
@resource_options
@click.option("--rows", default=10, show_default=True, help="rows of the point table to show")
def plan(sweep_file, variant, with_optional, rows, **flags):
    """Show the points, the jobs they pack into and what the store already holds (writes nothing)."""
    from analysis.store import COMPLETE, FAILED, is_store, point_states
    from sweeps.plan import free_params, pack
    from sweeps.points import swept_names

    sweep, points = _load(sweep_file, variant, with_optional, flags)
    stored = point_states(sweep.store) if is_store(sweep.store) else {}
    held = {p.point_id: stored[p.point_id] for p in points if p.point_id in stored}
    todo = [p for p in points if held.get(p.point_id) not in (COMPLETE, FAILED)]
    the_plan = pack(todo, free_params(sweep))
    executor = _executor(sweep)
    swept = swept_names(points)
    n_complete = sum(1 for s in held.values() if s == COMPLETE)
    n_failed = sum(1 for s in held.values() if s == FAILED)
    out = [f"sweep {sweep.name}: experiment {sweep.experiment.name}, {len(points)} points"
           + (f" (swept: {', '.join(swept)})" if swept else ""),
           f"store {sweep.store}: " + (f"holds {n_complete} complete and {n_failed} failed of these points"
                                        if stored else "new")]
    out.append(f"to run: {_n(len(todo), 'point')} in {_n(len(the_plan.jobs), 'job')} on the {executor} executor"
               + (" (auto)" if sweep.resources.executor == "auto" else ""))
    for i, array in enumerate(the_plan.arrays, 1):
        res = array[0].resources
        out.append(f"  array {i}: {_n(len(array), 'job')} of up to {_n(res.points_per_job, 'point')}, "
                   f"{_describe_resources(res, executor)}, {res.array_parallelism} at a time")
    shown = points[:rows]
    header = ["#", "point", *swept, "stored"]
    table = [[str(i), p.point_id, *(_short(p.params[k]) for k in swept), held.get(p.point_id, "-")]
             for i, p in enumerate(shown)]
    out += ["", _table(table, header)]
    if len(points) > rows:
        out.append(f"... {len(points) - rows} more (--rows N)")
    click.echo("\n".join(out))


def _submit(sweep_file, variant, with_optional, retry_failed, wait, flags, resume: bool):
    from analysis.store import is_store
    from slurm.submit import SubmitError
    from sweeps import control

    sweep, points = _load(sweep_file, variant, with_optional, flags)
    if resume and not is_store(sweep.store):
        raise SpecError("store", f"{sweep.store} does not exist yet", "run `diffbrain sweep submit` first")
    executor = _executor(sweep)
    state = control.sweep_state(sweep, points)
    for note in state.view.notes if state.view else []:
        click.echo(f"note: {note}", err=True)
    todo = control.to_run(state, retry_failed)
    counts = state.counts()
    busy = counts[control.RUNNING] + counts[control.PENDING]
    if not todo:
        click.echo(f"nothing to submit: {counts[control.COMPLETE]} complete, {counts[control.FAILED]} failed, "
                   f"{busy} queued or running of {len(points)} points"
                   + (" (--retry-failed reruns failed points)" if counts[control.FAILED] and not retry_failed else ""))
    else:
        try:
            submitted = control.submit_sweep(sweep, todo, executor, retry_failed)
        except SubmitError as err:
            raise SpecError("resources", str(err), "fix the resources (or --executor local)") from None
        skipped = f"; {busy} already queued or running were left alone" if busy else ""
        click.echo(f"submitted {len(todo)} of {len(points)} points to {executor}{skipped}")
        for sub, _ in submitted:
            ids = ", ".join(sub.array_ids) if sub.executor == "slurm" else f"{len(sub.jobs)} processes"
            click.echo(f"  {sub.executor} {ids}: {_n(len(sub.jobs), 'job')} (logs in {sub.folder})")
    if wait:
        try:
            final = control.wait(sweep, points, poll_s=5.0 if executor == "slurm" else 1.0)
        except KeyboardInterrupt:
            where = ("the SLURM jobs go on (`diffbrain sweep status`, `sweep cancel`)" if executor == "slurm"
                     else "Ctrl-C stopped the local jobs too; `diffbrain sweep resume` continues")
            click.echo(f"\nstopped waiting: {where}", err=True)
            sys.exit(130)
        counts = final.counts()
        click.echo(control.summary(counts, len(points)) + f", {counts[control.MISSING]} missing")
        if counts[control.FAILED] or counts[control.MISSING]:
            click.echo("see `diffbrain sweep status` for the failed points", err=True)
            sys.exit(1)


@sweep.command()
@sweep_options
@resource_options
@click.option("--wait", is_flag=True, help="block until the sweep ends (progress bar on a terminal); "
              "exit 1 if any point failed or is missing")
@click.option("--retry-failed", is_flag=True, help="also rerun points recorded as failed")
def submit(sweep_file, variant, with_optional, wait, retry_failed, **flags):
    """Submit the points that the store does not hold yet (one job array per resource set)."""
    _submit(sweep_file, variant, with_optional, retry_failed, wait, flags, resume=False)


@sweep.command()
@sweep_options
@resource_options
@click.option("--wait", is_flag=True, help="block until the sweep ends; exit 1 if any point failed or is missing")
@click.option("--retry-failed", is_flag=True, help="also rerun points recorded as failed")
def resume(sweep_file, variant, with_optional, wait, retry_failed, **flags):
    """Resubmit only the missing points (and failed ones with --retry-failed); queued ones are left alone."""
    _submit(sweep_file, variant, with_optional, retry_failed, wait, flags, resume=True)


@sweep.command()
@sweep_options
@click.option("--errors", default=10, show_default=True, help="failed points to list with their error")
def status(sweep_file, variant, with_optional, errors):
    """Count complete / failed / running / pending / missing points and list failed points' errors."""
    from analysis.store import read_point_attrs
    from sweeps import control
    from sweeps.points import swept_names

    sweep, points = _load(sweep_file, variant, with_optional)
    state = control.sweep_state(sweep, points)
    counts = state.counts()
    lines = [f"sweep {sweep.name}: {len(points)} points, store {sweep.store}"]
    lines += [f"  {name:9s} {counts[name]}" for name in control.ORDER]
    if state.stored_other:
        lines.append(f"  (the store also holds {state.stored_other} points that are not in this sweep file)")
    for note in state.view.notes if state.view else []:
        lines.append(f"note: {note}")
    failed = state.ids(control.FAILED)
    if failed:
        swept = swept_names(points)
        by_id = {p.point_id: p for p in points}
        rows = []
        for pid in failed[:errors]:
            error = (read_point_attrs(sweep.store, pid) or {}).get("error") or ""
            last = error.strip().splitlines()[-1] if error.strip() else ""
            rows.append([pid, *(_short(by_id[pid].params[k]) for k in swept), last[:100]])
        lines += ["", "failed points:", _table(rows, ["point", *swept, "error"])]
        if len(failed) > errors:
            lines.append(f"... {len(failed) - errors} more (--errors N)")
    click.echo("\n".join(lines))


@sweep.command()
@sweep_options
@click.option("--job", "job_ids", multiple=True, help="cancel only this job id (repeatable; e.g. 12_3 or 12)")
def cancel(sweep_file, variant, with_optional, job_ids):
    """Cancel the sweep's queued and running jobs (or only the given ones)."""
    from slurm import jobs as jobbook
    from slurm.resources import jobs_dir_for
    from slurm.status import cancel as cancel_jobs

    sweep, _ = _load(sweep_file, variant, with_optional)
    submissions = jobbook.load(jobs_dir_for(sweep.store))
    known = {j.job_id for s in submissions for j in s.jobs} | {a for s in submissions for a in s.array_ids}
    for job_id in job_ids:
        if job_id not in known:
            raise SpecError("--job", f"{job_id} is not a job of this sweep",
                            f"use one of: {', '.join(sorted(known)[:20])}" if known else "submit the sweep first")
    done, problems = cancel_jobs(submissions, set(job_ids) if job_ids else None)
    for problem in problems:
        click.echo(f"note: {problem}", err=True)
    click.echo(f"cancelled {_n(len(done), 'job')}" + (f": {', '.join(done)}" if done else ""))


@sweep.command()
@click.argument("target", type=click.Path(path_type=Path))
@click.option("--variant", help="apply the file's [variant.NAME] table (when TARGET is a sweep file)")
def collect(target, variant):
    """Consolidate the store's metadata once so that later opens are fast (TARGET: sweep file or store)."""
    from analysis.collect import consolidate
    from sweeps.spec import load_sweep

    store = load_sweep(target, variant=variant).store if target.suffix == ".toml" else target
    summary = consolidate(store)
    click.echo(f"{store}: {summary['complete']} complete, {summary['failed']} failed, "
               f"{summary['incomplete']} incomplete points indexed in {summary['seconds']:.2f} s")
