"""Where the reductions run: ``--scheduler local|ADDRESS|slurm`` as a dask distributed client.

- no scheduler (``None``): dask's threaded scheduler in this process (the default; best for small stores);
- ``local``: a :class:`distributed.LocalCluster` on this machine;
- ``ADDRESS`` (``tcp://host:8786``, ``host:8786``, ``tls://...``): an existing scheduler, left running;
- ``slurm``: workers started as SLURM jobs through dask-jobqueue (``SLURMCluster``), whose jobs are
  cancelled on exit; partition, account, cores, memory and walltime come from :class:`SchedulerOptions`
  or dask's ``jobqueue.slurm`` configuration.

While the context is open the client is dask's default scheduler, so ``.compute()`` on the lazy
statistics runs there. Whatever was started here is shut down on exit, also after an error.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from analysis.errors import SchedulerError

__all__ = ["SchedulerError", "SchedulerOptions", "dask_client", "parse_scheduler", "workers_of"]

ADDRESS = re.compile(r"^(?:(tcp|tls|ws|wss|inproc|ucx)://)?([A-Za-z0-9_.\-\[\]:]+):(\d{1,5})$")


@dataclass
class SchedulerOptions:
    """Sizes of what ``local`` and ``slurm`` start (None: dask's configuration or a small default)."""

    workers: int = 2  # LocalCluster workers, or SLURM jobs (one worker each)
    threads_per_worker: int = 1
    processes: bool = True  # local: worker processes (False: threads in this process, fast to start)
    cores: int | None = None  # slurm: cores per job
    memory: str | None = None  # slurm: memory per job, e.g. "4GiB"
    walltime: str | None = None  # slurm: "HH:MM:SS"
    queue: str | None = None  # slurm: partition
    account: str | None = None  # slurm: account
    log_directory: str | None = None  # slurm: where worker jobs write their logs
    wait_seconds: float = 300.0  # slurm/address: how long to wait for workers / the scheduler


class QuietNaNWarnings:
    """Worker plugin: NumPy's RuntimeWarnings about all-NaN slices of padded data stay off the terminal."""

    name = "diffbrain-quiet-nan-warnings"

    def setup(self, worker):
        import warnings

        warnings.filterwarnings("ignore", category=RuntimeWarning)


def parse_scheduler(spec: str | None) -> str | None:
    """``None``, ``"local"``, ``"slurm"`` or a normalised scheduler address; :class:`SchedulerError` otherwise."""
    if spec is None or spec.strip() == "":
        return None
    spec = spec.strip()
    if spec in ("local", "slurm"):
        return spec
    if spec.startswith("inproc://"):  # a scheduler in this process (tests, notebooks)
        return spec
    match = ADDRESS.match(spec)
    if not match or not 0 < int(match.group(3)) < 65536:
        raise SchedulerError("--scheduler", f"{spec!r} is neither 'local', 'slurm' nor a scheduler address",
                             "give local, slurm, or an address such as tcp://host:8786")
    return spec if match.group(1) else f"tcp://{spec}"


def _worker_plugin():
    from distributed import WorkerPlugin

    return type("QuietNaNWarningsPlugin", (QuietNaNWarnings, WorkerPlugin), {})()


def _local(options: SchedulerOptions):
    import logging

    from distributed import LocalCluster

    return LocalCluster(n_workers=options.workers, threads_per_worker=options.threads_per_worker,
                        processes=options.processes, protocol="tcp", dashboard_address=None,
                        silence_logs=logging.ERROR)


def _slurm(options: SchedulerOptions):
    import dask

    if shutil.which("sbatch") is None:
        raise SchedulerError("--scheduler", "slurm needs SLURM's sbatch, which is not on PATH",
                             "run on a SLURM login node, or use --scheduler local")
    from dask_jobqueue import SLURMCluster

    def config(key, default):
        value = dask.config.get(f"jobqueue.slurm.{key}", None)
        return default if value is None else value

    cores = options.cores or config("cores", 1)
    return SLURMCluster(
        cores=cores,
        processes=1,
        memory=options.memory or config("memory", "2GiB"),
        walltime=options.walltime or config("walltime", "00:30:00"),
        queue=options.queue or config("queue", None),
        account=options.account or config("account", None),
        python=config("python", sys.executable),
        log_directory=options.log_directory or config("log-directory", None),
        job_name="diffbrain-report",
        scheduler_options={"dashboard_address": None},
        silence_logs="error",
    )


@contextlib.contextmanager
def dask_client(spec: str | None, options: SchedulerOptions | None = None,
                status: Callable[[str], None] | None = None) -> Iterator[object | None]:
    """Open the scheduler ``spec`` names and yield its client (None: dask's threads); shut down what was started.

    ``status(message)`` hears about slow steps (starting a cluster, waiting for SLURM jobs).
    """
    spec = parse_scheduler(spec)
    options = options or SchedulerOptions()
    say = status or (lambda message: None)
    if spec is None:
        yield None
        return
    from distributed import Client

    cluster = None
    with contextlib.ExitStack() as stack:
        if spec == "local":
            say(f"starting a local dask cluster ({options.workers} workers)")
            cluster = stack.enter_context(_local(options))
            client = stack.enter_context(Client(cluster, set_as_default=True))
            client.register_plugin(_worker_plugin())
        elif spec == "slurm":
            cluster = stack.enter_context(_slurm(options))
            client = stack.enter_context(Client(cluster, set_as_default=True))
            client.register_plugin(_worker_plugin())
            cluster.scale(jobs=options.workers)
            say(f"waiting for {options.workers} dask workers as SLURM jobs (up to {options.wait_seconds:g} s)")
            try:
                client.wait_for_workers(options.workers, timeout=options.wait_seconds)
            except TimeoutError as exc:
                raise SchedulerError("--scheduler", f"no {options.workers} SLURM workers started within "
                                     f"{options.wait_seconds:g} s ({exc})",
                                     "check the queue (squeue) and the partition/memory asked for") from exc
        else:
            say(f"connecting to the dask scheduler at {spec}")
            try:
                client = stack.enter_context(Client(spec, timeout=options.wait_seconds, set_as_default=True))
            except (OSError, TimeoutError) as exc:
                raise SchedulerError("--scheduler", f"no dask scheduler answers at {spec} ({exc})",
                                     "start one (dask scheduler) or use --scheduler local") from exc
        yield client


def workers_of(client) -> list[str]:
    """Addresses of the client's workers (for reports and tests)."""
    return sorted(client.scheduler_info(n_workers=-1)["workers"]) if client is not None else []
