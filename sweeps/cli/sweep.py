"""``diffbrain sweep ...``: plan, submit, status, resume, cancel and collect a sweep file.

``plan`` reads the file, the experiment's declared parameters and the store's point markers only: no
JAX, no zarr, no scheduler, so it answers in about a second; it streams the points (a 10^6-point grid is
counted, packed and checked without keeping the points). ``plan``, ``submit`` and ``resume`` of more than
50 000 points stop and ask for ``--yes`` or ``--max-points N``. ``submit`` and ``resume`` hold the store's
lock while they submit (a second one says who holds it, exit 2), and stop what they started on SIGINT or
SIGTERM.
"""

from __future__ import annotations

import contextlib
import functools
import math
import sys
from pathlib import Path

import click

from slurm.resources import resource_fields
from sweeps.errors import SpecError


def sweep_options(func):
    """The options every command that reads a sweep file takes."""

    @click.argument("sweep_file", type=click.Path(dir_okay=False, path_type=Path))
    @click.option("--variant", help="apply the file's [variant.NAME] table")
    @click.option("--quick", is_flag=True, help="shorthand for --variant quick")
    @click.option("--with-optional", is_flag=True, help="keep the points that [[optional]] tables drop")
    @click.option("--set", "sets", multiple=True, metavar="KEY=VALUE",
                  help="override a fixed parameter or a resource (KEY=A,B,C: a grid axis); repeatable, applied "
                       "as editing the file would be")
    @functools.wraps(func)
    def wrapper(sweep_file, variant, quick, with_optional, sets, **kwargs):
        if quick and variant and variant != "quick":
            raise SpecError("--quick", f"conflicts with --variant {variant}", "give one of them")
        return func(sweep_file=sweep_file, variant="quick" if quick else variant, with_optional=with_optional,
                    sets=sets, **kwargs)

    return wrapper


def resource_options(func):
    """One flag per resource declared as a flag (:func:`slurm.resources.resource_fields`); unset flags are
    omitted, so the sweep file's values stand."""
    for spec in reversed([f for f in resource_fields().values() if f.flag]):
        flag = "--" + spec.name.replace("_", "-")
        if spec.kind is list:
            func = click.option(flag, spec.name, multiple=True, help=spec.help)(func)
        else:
            kind = click.Choice(spec.choices) if spec.choices else spec.kind
            func = click.option(flag, spec.name, type=kind, default=None, help=spec.help)(func)
    return func


def size_options(func):
    """``--yes`` / ``--max-points``: the size guard of plan, submit and resume."""
    func = click.option("--max-points", type=click.IntRange(min=1), default=None,
                        help="refuse a sweep of more points than this (default: 50000, unless --yes)")(func)
    return click.option("--yes", is_flag=True, help="go on with a sweep of more than 50000 points")(func)


def _load_sweep(sweep_file, variant, flags=None, sets=()):
    from sweeps.spec import load_sweep

    flags = dict(flags or {})
    if not flags.get("setup"):
        flags.pop("setup", None)
    else:
        flags["setup"] = list(flags["setup"])
    return load_sweep(sweep_file, variant=variant, flags=flags, sets=sets)


def _load(sweep_file, variant, with_optional, flags=None, size: tuple | None = None, sets=()):
    """The sweep and its points (``size`` = (max_points, yes): the guard, checked before expanding)."""
    from sweeps.points import check_size, expand

    sweep = _load_sweep(sweep_file, variant, flags, sets)
    if size is not None:
        check_size(sweep, *size)
    return sweep, expand(sweep, with_optional=with_optional)


def _varying(sweep) -> list[str]:
    return [*sweep.grid, *(k for z in sweep.zips for k in z), *sweep.random]


def _backend(sweep):
    """The sweep's executor backend (``auto`` resolved: the backends are asked whether they can run here)."""
    return _choose(sweep)[0]


def _choose(sweep):
    """(the sweep's executor backend, why ``auto`` chose it)."""
    from slurm import backends

    return backends.choose(sweep.resources.executor)


def _short(value) -> str:
    text = repr(value) if isinstance(value, float) else str(value)
    return text if len(text) <= 14 else text[:13] + "~"


def _n(count: int, noun: str) -> str:
    return f"{count} {noun}" + ("" if count == 1 else "s")


def _table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in [header, *rows]]
    return "\n".join(lines)


@click.group(name="sweep")
def sweep():
    """Run a sweep file: plan it, submit it (local or SLURM), follow, resume, cancel and collect it."""


@sweep.command()
@sweep_options
@resource_options
@size_options
@click.option("--rows", default=10, show_default=True, help="rows of the point table to show")
@click.option("--script", is_flag=True, help="also print the batch script of each array that submit would send")
def plan(sweep_file, variant, with_optional, sets, rows, script, max_points, yes, **flags):
    """Show the points, the jobs they pack into and what the store already holds (writes nothing)."""
    from analysis.store import COMPLETE, CORRUPT, FAILED, MARKER
    from sweeps.control import store_view
    from sweeps.memory import Collector, refuse
    from sweeps.memory import lines as memory_lines
    from sweeps.plan import free_params, summarise
    from sweeps.points import check_size, iter_points, raise_all_excluded
    from sweeps.usage import estimate_line

    sweep = _load_sweep(sweep_file, variant, flags, sets)
    check_size(sweep, max_points, yes)
    stored_scan = store_view(sweep, MARKER)  # the markers only (no submitit, no zarr)
    stored = stored_scan.states()
    backend, why = _choose(sweep)
    memory = Collector(sweep.experiment, sweep.resources_for, backend.name)
    summary = summarise(iter_points(sweep, with_optional), sweep.resources_for, stored, _varying(sweep),
                        free_params(sweep), rows, done=(COMPLETE, FAILED, CORRUPT),
                        on_todo=memory.add if memory.active else None)
    if not summary.total:
        raise_all_excluded()
    memory_plan = memory.finish()
    swept = summary.swept
    held = summary.held
    out = [f"sweep {sweep.name}: experiment {sweep.experiment.name}, {summary.total} points"
           + (f" (swept: {', '.join(swept)})" if swept else ""),
           f"store {sweep.store}: " + (f"holds {held.get(COMPLETE, 0)} complete and {held.get(FAILED, 0)} failed "
                                        f"of these points" if stored else "new")
           + (f", {held[CORRUPT]} corrupt (--retry-corrupt moves them aside and reruns them)"
              if held.get(CORRUPT) else "")]
    out.append(f"to run: {_n(summary.todo, 'point')} in {_n(summary.jobs, 'job')} on the {backend.name} executor"
               + ((f" (auto: {why})" if why else " (auto)") if sweep.resources.executor != backend.name else ""))
    for i, (res, jobs, _) in enumerate(summary.arrays, 1):
        backend.check(res)
        sizes, why = backend.array_sizes(jobs)
        out.append(f"  array {i}: {_n(jobs, 'job')} of up to {_n(res.points_per_job, 'point')}, "
                   f"{backend.describe(res)}, {res.array_parallelism} at a time"
                   + (f"; split into {len(sizes)} arrays, one after the other ({why})" if len(sizes) > 1 else ""))
    if sweep.resources.setup:
        out.append(backend.setup_note(_n(len(sweep.resources.setup), "setup line")))
    walls = [float(w) for pid, state in stored.items() if state == COMPLETE
             for w in [stored_scan.attrs(pid).get("wall_seconds")] if isinstance(w, (int, float)) and math.isfinite(w)]
    out.append(estimate_line(summary.arrays, walls, sweep.experiment.name))
    out += memory_lines(memory_plan, _table)
    header = ["#", "point", *swept, "stored"]
    table = [[str(i), p.point_id, *(_short(p.params[k]) for k in swept), stored.get(p.point_id, "-")]
             for i, p in enumerate(summary.first)]
    out += ["", _table(table, header)]
    if summary.total > rows:
        out.append(f"... {summary.total - rows} more (--rows N)")
    if script:
        out += _scripts(sweep, backend, summary.arrays)
    click.echo("\n".join(out))
    refuse(memory_plan)  # after the plan is shown: exit 2 naming the first point that fits nowhere


def _scripts(sweep, backend, arrays) -> list[str]:
    """``plan --script``: each array's batch script, as the backend would write it at submit (nothing sent)."""
    from dataclasses import replace

    from slurm.backends.base import new_folder
    from slurm.resources import jobs_dir_for
    from slurm.snapshot import planned, setup_line

    folder = new_folder(jobs_dir_for(sweep.store))  # only named: submit makes a fresh one (its own stamp)
    frozen = setup_line(planned(jobs_dir_for(sweep.store)))  # the code copy submit makes (not with --no-snapshot)
    out = []
    for i, (res, jobs, _) in enumerate(arrays, 1):
        res = replace(res, setup=(frozen, *res.setup))
        sizes = backend.array_sizes(jobs)[0] if jobs else []
        for part, tasks in enumerate(sizes, 1):
            after = f"<array {i}.{part - 1}>" if part > 1 else None
            text = backend.script(res, tasks, folder, sweep.name, after)
            if text is None:
                out += ["", f"array {i}: the {backend.name} executor sends no batch script "
                        f"({backend.describe(res)}; run with --executor slurm to see SLURM's)"]
                break
            label = f"{i}.{part}" if len(sizes) > 1 else str(i)
            out += ["", f"# ---- array {label}: {_n(tasks, 'task')} (folder stamp chosen at submit) ----",
                    text.rstrip()]
    return out


def _check_memory(sweep, points, backend) -> None:
    """Refuse (SpecError, exit 2) a submission holding a point that fits no layout within its resources."""
    from sweeps.memory import collect, refuse

    plan = collect(sweep.experiment, points, sweep.resources_for, backend.name)
    if plan.error:
        click.echo(f"note: memory not estimated ({plan.error})", err=True)
    refuse(plan)


def _stop_message(submissions, why: str) -> str:
    """Stop every job of ``submissions`` and say what happened, truthfully."""
    from sweeps import control

    if not submissions:
        return f"{why}: nothing had been started"
    with control.signals_deferred(lambda name: None):  # a second Ctrl-C does not cut the stopping short
        _, problems = control.stop_submissions(submissions)  # those still running; waits until none runs
    total = sum(len(sub.jobs) for sub in submissions)
    if problems:
        text = f"{why}: " + "; ".join(problems) + " (`diffbrain sweep cancel` stops them)"
    else:
        text = f"{why}: stopped the {_n(total, 'job')} this command had started"
    return text + "; points they finished stay in the store, `diffbrain sweep resume` runs the rest"


def _submit_locked(sweep, points, backend, command: str, wait_lock: float, retry_failed: bool,
                   retry_corrupt: bool, snapshot: bool = True) -> tuple[list, Exception | None]:
    """Under the store's lock: the points' states, corrupt ones moved aside (if asked), the submission.

    Returns (submitted [(Submission, jobs)], the scheduler's refusal or None). A signal before the
    submission ends the command; one during it is deferred until the submission is recorded, and then
    everything it started is stopped (a backend that runs the points in this process just stops).
    """
    from analysis.store import CHECKSUMS, FILES
    from slurm.submit import SubmitError
    from sweeps import control

    submitting = False
    try:
        with control.store_lock(sweep, command, wait_lock):
            state = control.sweep_state(sweep, points, check=CHECKSUMS if retry_corrupt else FILES)
            for note in state.view.notes if state.view else []:
                click.echo(f"note: {note}", err=True)
            counts = state.counts()
            if retry_corrupt:
                for pid, where in control.move_aside(sweep, state):
                    click.echo(f"moved corrupt point {pid} aside to {where}", err=True)
            todo = control.to_run(state, retry_failed, retry_corrupt)
            _check_memory(sweep, todo, backend)  # before anything is written: exit 2 if a point fits nowhere
            busy = counts[control.RUNNING] + counts[control.PENDING]
            if not todo:
                hints = [" (--retry-failed reruns failed points)" if counts[control.FAILED] and not retry_failed
                         else "",
                         f"; {counts[control.CORRUPT]} corrupt (--retry-corrupt moves them aside and reruns them)"
                         if counts[control.CORRUPT] and not retry_corrupt else ""]
                click.echo(f"nothing to submit: {counts[control.COMPLETE]} complete, {counts[control.FAILED]} "
                           f"failed, {busy} queued or running of {len(points)} points" + "".join(hints))
                return [], None
            deferred = contextlib.nullcontext([]) if backend.in_process else control.signals_deferred(
                lambda name: click.echo(f"\n{name}: stopping once the submission in progress is recorded", err=True))
            with deferred as arrived:
                submitting = True
                try:
                    submitted = control.submit_sweep(sweep, todo, backend, retry_failed, snapshot)
                except SubmitError as err:
                    return [], err
            if arrived:
                click.echo(_stop_message([sub for sub, _ in submitted], f"interrupted ({arrived[0]})"), err=True)
                sys.exit(130)
    except control.Interrupted as sig:
        what = (f"the {backend.name} executor ran points in this process: those it finished are in the store, "
                "`diffbrain sweep resume` runs the rest" if backend.in_process and submitting
                else "before anything was submitted")
        click.echo(f"\ninterrupted ({sig.signal_name}) {what}", err=True)
        sys.exit(130)
    skipped = f"; {busy} already queued or running were left alone" if busy else ""
    click.echo(f"submitted {len(todo)} of {len(points)} points to {backend.name}{skipped}")
    for sub, _ in submitted:
        click.echo(f"  {sub.executor} {backend.job_ids(sub)}: {_n(len(sub.jobs), 'job')} (logs in {sub.folder})")
    return submitted, None


def _submit(sweep_file, variant, with_optional, retry_failed, retry_corrupt, wait, wait_lock, size, flags,
            resume: bool, sets=(), snapshot: bool = True):
    from analysis.store import store_exists
    from sweeps import control

    if math.isnan(wait_lock):
        raise SpecError("--wait-lock", "nan seconds", "give a number of seconds >= 0")
    sweep, points = _load(sweep_file, variant, with_optional, flags, size, sets)
    if resume and not store_exists(sweep.store):
        raise SpecError("store", f"{sweep.store} does not exist yet", "run `diffbrain sweep submit` first")
    backend, why = _choose(sweep)
    if why and sweep.resources.executor != backend.name:
        click.echo(f"note: executor auto chose {backend.name}: {why}", err=True)
    made = control.outermost_missing(sweep.store.parent)
    command = f"diffbrain sweep {'resume' if resume else 'submit'} {sweep_file}"
    with control.signals_raise():  # from here on SIGINT/SIGTERM stop what this command started
        try:
            submitted, refused = _submit_locked(sweep, points, backend, command, wait_lock, retry_failed,
                                                retry_corrupt, snapshot)
        finally:  # folders made for the lock, or for a store that was not born, go again (empty ones only)
            control.remove_made_folders(sweep.store.parent, made)
        if refused is not None:
            raise refused
        if wait:
            _wait(sweep, points, backend, submitted)


def _wait(sweep, points, backend, submitted: list) -> None:
    """``--wait``: block until the sweep ends; a signal stops the jobs this command started, unless they go
    on without it (SLURM's)."""
    from sweeps import control

    try:
        final = control.wait(sweep, points, poll_s=backend.poll_s)
    except control.Interrupted as sig:
        if backend.detached:
            where = (f"stopped waiting: the {backend.label or backend.name} jobs go on (`diffbrain sweep status`, "
                     "`sweep cancel`)")
        else:
            where = _stop_message([sub for sub, _ in submitted], "stopped waiting")
        click.echo(f"\n{sig.signal_name}: {where}", err=True)
        sys.exit(130)
    counts = final.counts()
    click.echo(control.summary(counts, len(points)) + f", {counts[control.MISSING]} missing"
               + (f", {counts[control.CORRUPT]} corrupt" if counts[control.CORRUPT] else ""))
    if counts[control.FAILED] or counts[control.MISSING] or counts[control.CORRUPT]:
        click.echo("see `diffbrain sweep status` for the failed points", err=True)
        sys.exit(1)


def submit_options(func):
    func = click.option("--no-snapshot", "no_snapshot", is_flag=True,
                        help="let the tasks import the toolkit from where it is installed (default: from a copy "
                             "made at submit, in the jobs folder, so later edits never reach them)")(func)
    func = click.option("--wait-lock", type=click.FloatRange(min=0), default=0.0, show_default=True,
                        metavar="SECONDS", help="wait this long for another submit of the store to end")(func)
    func = click.option("--retry-corrupt", is_flag=True,
                        help="check every stored file; move corrupt points aside to points/.corrupt/ and "
                             "compute them again")(func)
    func = click.option("--retry-failed", is_flag=True, help="also rerun points recorded as failed")(func)
    return size_options(func)


@sweep.command()
@sweep_options
@resource_options
@submit_options
@click.option("--wait", is_flag=True, help="block until the sweep ends (progress bar on a terminal); "
              "exit 1 if any point failed or is missing")
def submit(sweep_file, variant, with_optional, sets, wait, retry_failed, retry_corrupt, wait_lock, no_snapshot,
           max_points, yes, **flags):
    """Submit the points that the store does not hold yet (one job array per resource set)."""
    _submit(sweep_file, variant, with_optional, retry_failed, retry_corrupt, wait, wait_lock, (max_points, yes),
            flags, resume=False, sets=sets, snapshot=not no_snapshot)


@sweep.command()
@sweep_options
@resource_options
@submit_options
@click.option("--wait", is_flag=True, help="block until the sweep ends; exit 1 if any point failed or is missing")
def resume(sweep_file, variant, with_optional, sets, wait, retry_failed, retry_corrupt, wait_lock, no_snapshot,
           max_points, yes, **flags):
    """Resubmit only the missing points (failed ones with --retry-failed, corrupt ones with --retry-corrupt);
    queued ones are left alone."""
    _submit(sweep_file, variant, with_optional, retry_failed, retry_corrupt, wait, wait_lock, (max_points, yes),
            flags, resume=True, sets=sets, snapshot=not no_snapshot)


@sweep.command()
@sweep_options
@click.option("--errors", default=10, show_default=True, help="failed points to list with their error")
@click.option("--verify", is_flag=True, help="check every stored file against its checksum (reads the whole store)")
@click.option("--usage", is_flag=True, help="per resources group: requested vs used CPU-hours, GPU-hours and memory, "
              "efficiency, the cost of failures")
@click.option("--watch", is_flag=True, help="refresh a live table (states, running points' progress, ETA) until "
              "nothing is queued or running; one line per change when not on a terminal")
def status(sweep_file, variant, with_optional, sets, errors, verify, usage, watch):
    """Count complete / failed / corrupt / running / pending / missing points; list failed and corrupt ones."""
    from analysis.store import CHECKSUMS, FILES
    from sweeps import control
    from sweeps.points import swept_names

    sweep, points = _load(sweep_file, variant, with_optional, sets=sets)
    if watch:
        from sweeps.watch import watch as watch_sweep

        try:
            watch_sweep(sweep, points, poll_s=_backend(sweep).poll_s)
        except KeyboardInterrupt:
            click.echo("stopped watching", err=True)
            sys.exit(130)
    state = control.sweep_state(sweep, points, check=CHECKSUMS if verify else FILES)
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
            error = state.stored.attrs(pid).get("error") or ""
            last = error.strip().splitlines()[-1] if error.strip() else ""
            rows.append([pid, *(_short(by_id[pid].params[k]) for k in swept), last[:100]])
        lines += ["", "failed points:", _table(rows, ["point", *swept, "error"])]
        if len(failed) > errors:
            lines.append(f"... {len(failed) - errors} more (--errors N)")
    corrupt = state.ids(control.CORRUPT)
    if corrupt:
        rows = [[pid, state.reasons.get(pid, "")[:100]] for pid in corrupt[:errors]]
        lines += ["", f"corrupt points (left in place; `diffbrain sweep resume {sweep_file} --retry-corrupt` "
                  "moves them to points/.corrupt/ and reruns them):", _table(rows, ["point", "reason"])]
        if len(corrupt) > errors:
            lines.append(f"... {len(corrupt) - errors} more (--errors N)")
    if usage:
        from slurm import jobs as jobbook
        from slurm.resources import jobs_dir_for
        from slurm.status import accounting
        from sweeps.usage import sweep_usage, usage_lines

        submissions = jobbook.load(jobs_dir_for(sweep.store))
        job_of = {pid: job.job_id for pid, (_, job) in jobbook.latest_job_of_points(submissions).items()}
        groups = sweep_usage(points, state.states, state.stored.attrs, lambda p: sweep.resources_for(p.params),
                             job_of)
        uses, notes = accounting(submissions) if submissions else ({}, [])
        lines += usage_lines(groups, _backend(sweep).describe, uses, notes)
    click.echo("\n".join(lines))


@sweep.command()
@sweep_options
@click.option("--job", "job_ids", multiple=True, help="cancel only this job id (repeatable; e.g. 12_3 or 12)")
def cancel(sweep_file, variant, with_optional, sets, job_ids):
    """Cancel the sweep's queued and running jobs (or only the given ones)."""
    from slurm import jobs as jobbook
    from slurm.resources import jobs_dir_for
    from slurm.status import cancel as cancel_jobs

    sweep, _ = _load(sweep_file, variant, with_optional, sets=sets)
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
@click.option("--verify", is_flag=True, help="rescan every point and check every file against its checksum")
def collect(target, variant, verify):
    """Consolidate the store's metadata once so that later opens are fast (TARGET: sweep file or store)."""
    from analysis.collect import consolidate
    from analysis.paths import user_path
    from sweeps.spec import load_sweep

    store = load_sweep(target, variant=variant).store if target.suffix == ".toml" else user_path(target, "store")
    summary = consolidate(store, verify=verify)
    click.echo(f"{store}: {summary['complete']} complete, {summary['failed']} failed, "
               f"{summary['incomplete']} incomplete"
               + (f", {summary['corrupt']} corrupt" if summary["corrupt"] else "")
               + f" points indexed in {summary['seconds']:.2f} s")
    for pid, reason in summary["corrupt_points"].items():
        click.echo(f"  corrupt {pid}: {reason}", err=True)
