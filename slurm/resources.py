"""What one job array asks of the scheduler, and where a sweep's job files live.

Plain data: every resource is declared once, as a field of :class:`Resources` with its TOML type (the
annotation), the check a value must pass, the fix to suggest and its help text. ``sweeps`` validates a sweep
file's ``[resources]`` table and builds the command-line flags from these declarations
(:func:`resource_fields`); the backends turn :class:`Resources` into scheduler parameters. Nothing here
imports submitit.
"""

from __future__ import annotations

import math
import types
import typing
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from functools import cache
from pathlib import Path
from typing import Any

from diffbrain.errors import UserError
from slurm import backends


@dataclass(frozen=True)
class ResourceField:
    """How one resource is checked and offered: ``kind`` (TOML type), ``check(value)``, ``fix``, ``help``;
    ``flag``: also a command-line flag of ``sweep plan|submit|resume`` (``choices`` for its values)."""

    name: str
    kind: type
    check: Callable[[Any], bool]
    fix: str
    help: str = ""
    flag: bool = False
    choices: tuple[str, ...] = ()


def _declare(default: Any, check: Callable[[Any], bool], fix: str, help: str = "", flag: bool = False,
             choices: tuple[str, ...] = ()) -> Any:
    spec = {"check": check, "fix": fix, "help": help, "flag": flag, "choices": choices}
    if isinstance(default, tuple):
        return field(default_factory=lambda: default, metadata={"resource": spec})
    return field(default=default, metadata={"resource": spec})


_POSITIVE = (lambda v: v >= 1, "give an integer >= 1")


@dataclass(frozen=True)
class Resources:
    """Resources of every task of one job array (see the ``[resources]`` table of a sweep file)."""

    executor: str = _declare("auto", lambda v: v in backends.choices(), f"use one of: {', '.join(backends.choices())}",
                             "where tasks run (auto: slurm when sbatch is on PATH and SLURM answers, else local)",
                             flag=True, choices=backends.choices())
    partition: str | None = _declare(None, bool, "give a partition name (sinfo lists them)", "SLURM partition", True)
    account: str | None = _declare(None, bool, "give an account name", "SLURM account", True)
    qos: str | None = _declare(None, bool, "give a QOS name", "SLURM quality of service", True)
    constraint: str | None = _declare(None, bool, "give a node feature constraint", "SLURM node feature constraint")
    gpus_per_node: int = _declare(0, lambda v: v >= 0, "give an integer >= 0",
                                  "GPUs of each node (of each task when it has one task per node)", True)
    nodes: int = _declare(1, *_POSITIVE, "nodes of each task of the array (several: one jax.distributed run)", True)
    tasks_per_node: int = _declare(1, *_POSITIVE, "processes per node, started by srun (with GPUs: one per GPU)",
                                   True)
    gpu_memory_gb: float | None = _declare(None, lambda v: v > 0 and math.isfinite(v), "give a memory size in GB > 0",
                                           "memory of each GPU in GB, for the memory planner (default 16)", True)
    cpus_per_task: int = _declare(1, *_POSITIVE, "CPUs of each task", True)
    mem_gb: float | None = _declare(None, lambda v: v > 0 and math.isfinite(v), "give a memory size in GB > 0",
                                    "memory of each node in GB (shared by its tasks)", True)
    timeout_min: int = _declare(60, *_POSITIVE, "time limit of each task in minutes", True)
    array_parallelism: int = _declare(32, *_POSITIVE, "tasks of an array running at once", True)
    points_per_job: int = _declare(1, *_POSITIVE, "points packed into one task", True)
    setup: tuple[str, ...] = _declare((), lambda v: all(isinstance(s, str) for s in v), "give a list of shell lines",
                                      "shell line run before each task (repeatable)", True)
    # None: derived from timeout_min (see signal_delay)
    signal_delay_s: int | None = _declare(None, lambda v: v >= 1,
                                          "give seconds >= 1 (keep it well below timeout_min * 60)",
                                          "seconds between the warning signal and the time limit")
    max_requeues: int = _declare(3, lambda v: v >= 0, "give an integer >= 0", "requeues after a timeout or preemption")

    def __post_init__(self) -> None:
        """Checks across fields (each field's own check runs where the sweep file is read)."""
        if self.gpus_per_node and self.processes > 1 and self.tasks_per_node != self.gpus_per_node:
            raise UserError("resources.tasks_per_node",
                            f"{self.tasks_per_node} processes per node for {self.gpus_per_node} GPUs per node "
                            f"({self.nodes} node{'s' if self.nodes > 1 else ''})",
                            f"give tasks_per_node = {self.gpus_per_node}: one process per GPU when a point spans "
                            "several processes")

    @property
    def processes(self) -> int:
        """Processes of one task of the array (one ``jax.distributed`` run when more than one)."""
        return self.nodes * self.tasks_per_node

    @property
    def cpus_per_job(self) -> int:
        """CPUs one task of the array holds (every process's)."""
        return self.cpus_per_task * self.processes

    @property
    def gpus_per_job(self) -> int:
        """GPUs one task of the array holds (every node's)."""
        return self.gpus_per_node * self.nodes

    def to_json(self) -> dict:
        out = asdict(self)
        out["setup"] = list(self.setup)
        return out

    def array_key(self) -> tuple:
        """Tasks with equal keys go into one array (everything but the executor and packing)."""
        d = self.to_json()
        for k in PER_SUBMISSION:
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


PER_SUBMISSION = ("executor", "points_per_job")  # the same for every point of one submission


def _toml_kind(hint: Any) -> type:
    """The TOML type of a field's annotation: ``X | None`` -> X, ``tuple[str, ...]`` -> list."""
    origin = typing.get_origin(hint)
    if origin is tuple:
        return list
    if origin in (typing.Union, types.UnionType):
        return next(a for a in typing.get_args(hint) if a is not type(None))
    return hint


@cache
def resource_fields() -> dict[str, ResourceField]:
    """Every resource's declaration, by name, in the order of :class:`Resources`."""
    hints = typing.get_type_hints(Resources)
    return {f.name: ResourceField(f.name, _toml_kind(hints[f.name]), **f.metadata["resource"])
            for f in fields(Resources)}


def jobs_dir_for(store: str | Path) -> Path:
    """The folder beside a store that holds its submissions, submitit files, logs and checkpoints.

    ``results/scan.zarr`` -> ``results/scan.jobs`` (never inside the store, which zarr lists).
    """
    store = Path(store)
    stem = store.name[: -len(store.suffix)] if store.suffix == ".zarr" else store.name
    return store.with_name(f"{stem}.jobs")
