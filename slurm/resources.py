"""What one job array asks of the scheduler, and where a sweep's job files live.

Plain data: ``sweeps`` validates a sweep file's ``[resources]`` into :class:`Resources`; this package
turns it into submitit parameters. Nothing here imports submitit.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import asdict, dataclass, field
from pathlib import Path

EXECUTORS = ("auto", "local", "slurm", "debug")


@dataclass(frozen=True)
class Resources:
    """Resources of every task of one job array (see the ``[resources]`` table of a sweep file)."""

    executor: str = "auto"
    partition: str | None = None
    account: str | None = None
    qos: str | None = None
    constraint: str | None = None
    gpus_per_node: int = 0
    cpus_per_task: int = 1
    mem_gb: float | None = None
    timeout_min: int = 60
    array_parallelism: int = 32
    points_per_job: int = 1
    setup: tuple[str, ...] = field(default_factory=tuple)
    signal_delay_s: int | None = None  # None: derived from timeout_min (see signal_delay)
    max_requeues: int = 3

    def to_json(self) -> dict:
        out = asdict(self)
        out["setup"] = list(self.setup)
        return out

    def array_key(self) -> tuple:
        """Tasks with equal keys go into one array (everything but the executor and packing)."""
        d = self.to_json()
        for k in ("executor", "points_per_job"):
            d.pop(k)
        return tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in d.items()))

    def signal_delay(self) -> int:
        """Seconds between the warning signal (USR2) and the end of the time limit.

        submitit defaults to 90 s; for short limits SLURM may send the signal up to ~30 s early, so keep
        it at 10 % of the limit, at least 10 s (a 1-minute test job checkpoints ~10-40 s before its end).
        """
        if self.signal_delay_s is not None:
            return self.signal_delay_s
        return int(min(90, max(10, self.timeout_min * 6)))


def slurm_answers(timeout_s: float = 5.0) -> bool:
    """True when ``sbatch`` is on PATH and a SLURM controller answers ``sinfo`` within ``timeout_s``.

    A laptop with the SLURM client installed but no cluster behind it should run sweeps locally.
    """
    if not shutil.which("sbatch") or not shutil.which("sinfo"):
        return False
    try:
        done = subprocess.run(["sinfo", "-h", "-o", "%P"], capture_output=True, timeout=timeout_s)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


def resolve_executor(name: str) -> str:
    """``auto`` means slurm when ``sbatch`` is on PATH and its controller answers, else local."""
    if name == "auto":
        return "slurm" if slurm_answers() else "local"
    return name


def jobs_dir_for(store: str | Path) -> Path:
    """The folder beside a store that holds its submissions, submitit files, logs and checkpoints.

    ``results/scan.zarr`` -> ``results/scan.jobs`` (never inside the store, which zarr lists).
    """
    store = Path(store)
    stem = store.name[: -len(store.suffix)] if store.suffix == ".zarr" else store.name
    return store.with_name(f"{stem}.jobs")
