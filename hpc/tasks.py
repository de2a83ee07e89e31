"""The plain data of one point's journey from a sweep file to the store, owned by the runner.

``sweeps`` expands a sweep file into :class:`PointTask` s and packs them into :class:`Pack` s (one per task of
a job array; the plan looks up each point's resources, which the point does not carry); ``slurm`` submits the
packs (pickled by submitit, or as JSON to a fresh process: :meth:`Pack.to_json`); :mod:`hpc.runner` runs each
point and writes its dataset with a :class:`PointRecord` (:func:`point_record`). The record's fields are
declared by :mod:`analysis.store`, so that collect and analysis read the same keys without importing this
package. Nothing here imports submitit, JAX or zarr.
"""

from __future__ import annotations

from dataclasses import dataclass

from analysis.store import PointRecord
from hpc import provenance
from hpc.devices import PointDevices
from hpc.distributed import process_group

__all__ = ["Pack", "PointRecord", "PointTask", "point_record"]


@dataclass(frozen=True)
class PointTask:
    """One point: its stable id, the experiment's name and its canonical parameters (every declared one,
    sorted; ``Experiment.validate`` output)."""

    point_id: str
    experiment: str
    params: dict

    @property
    def seed(self) -> int:
        return int(self.params.get("seed", 0))

    def to_json(self) -> dict:
        return {"point_id": self.point_id, "experiment": self.experiment, "params": self.params}

    @classmethod
    def from_json(cls, data: dict) -> PointTask:
        return cls(data["point_id"], data["experiment"], data["params"])


@dataclass(frozen=True)
class Pack:
    """Points one task runs in order, into ``store``; ``work_dir`` holds their checkpoints.

    ``retry_failed_before`` (ISO time): failed points whose failure ended before it are run again (``resume
    --retry-failed``); later failures are kept. ``setup``: shell lines run before the pack's process starts
    (local executor).
    """

    store: str
    work_dir: str
    points: tuple[PointTask, ...]
    retry_failed_before: str | None = None
    setup: tuple[str, ...] = ()

    @property
    def point_ids(self) -> list[str]:
        return [task.point_id for task in self.points]

    def to_json(self) -> dict:
        return {"store": self.store, "work_dir": self.work_dir, "points": [t.to_json() for t in self.points],
                "retry_failed_before": self.retry_failed_before, "setup": list(self.setup)}

    @classmethod
    def from_json(cls, data: dict) -> Pack:
        return cls(data["store"], data["work_dir"], tuple(PointTask.from_json(p) for p in data["points"]),
                   data.get("retry_failed_before"), tuple(data.get("setup") or ()))


def point_record(task: PointTask, status: str, error: str | None, started: str, ended: str,
                 wall_seconds: float | None, devices: PointDevices | None = None,
                 measured: bool = True, processes: dict | None = None) -> PointRecord:
    """The record of ``task`` run here: where (host, devices, granted GPUs, scheduler job, the processes that
    computed it: ``hpc.distributed.ProcessGroup.record``) and how it went.

    ``measured=False``: the point's own process died, so its peak memory is unknown (None).
    """
    return PointRecord(
        point_id=task.point_id, experiment=task.experiment, params=task.params, seed=task.seed,
        host=provenance.host(), devices=(devices or PointDevices()).describe(), gpus=provenance.gpus(),
        started=started, ended=ended, wall_seconds=wall_seconds, job_id=provenance.job_id(),
        restart_count=provenance.restart_count(), status=status, error=error,
        peak_rss_bytes=provenance.peak_rss_bytes() if measured else None, code=provenance.code_origin(),
        processes=processes or process_group().record())
