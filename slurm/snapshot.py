"""Freeze the toolkit's code at submission, so that a task (a requeued one too) runs the code that was
submitted, not whatever the source tree holds when it starts.

At submit the toolkit's packages (:data:`PACKAGES`, from wherever Python imports them: an editable checkout
or site-packages) are copied into ``<jobs dir>/code/<digest>/`` (content-addressed: an unchanged tree reuses
its copy; written to a temporary sibling and renamed). Each task runs after the shell line of
:func:`setup_line`, which puts that copy first on ``PYTHONPATH`` and sets ``PYTHONSAFEPATH=1`` (so the task's
working folder, often the checkout itself, is not searched before it). A requeued SLURM task reruns the same
batch script, hence the same copy. The submission records the snapshot (``slurm.jobs``) and every point its
``code`` (where its packages were imported from, ``hpc.tasks.point_record``).
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shlex
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

from analysis import atomic
from hpc.provenance import git_commit

PACKAGES = ("diffbrain", "analysis", "hpc", "slurm", "sweeps")
CODE_DIR = "code"
SKIP = ("__pycache__",)


@dataclass(frozen=True)
class Snapshot:
    path: str  # the folder put first on the tasks' PYTHONPATH
    digest: str  # sha256 of the copied files (names and contents), first 16 hex digits
    git_commit: str | None
    git_dirty: bool | None

    def to_json(self) -> dict:
        return asdict(self)


def package_dirs() -> dict[str, Path]:
    """Where each of the toolkit's packages is imported from here."""
    out = {}
    for name in PACKAGES:
        spec = importlib.util.find_spec(name)
        if spec is None or not spec.submodule_search_locations:
            raise RuntimeError(f"package {name} cannot be found")
        out[name] = Path(next(iter(spec.submodule_search_locations)))
    return out


def _files(dirs: dict[str, Path]) -> list[tuple[str, Path]]:
    out = []
    for name, root in sorted(dirs.items()):
        for folder, subdirs, files in os.walk(root):
            subdirs[:] = sorted(d for d in subdirs if d not in SKIP)
            for file in sorted(files):
                if not file.endswith((".pyc", ".pyo")):
                    path = Path(folder) / file
                    out.append((f"{name}/{path.relative_to(root).as_posix()}", path))
    return out


def _digest(files: list[tuple[str, Path]]) -> str:
    digest = hashlib.sha256()
    for rel, path in files:
        digest.update(rel.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def planned(jobs_dir: str | os.PathLike) -> Snapshot:
    """The snapshot :func:`snapshot_code` would make now (nothing copied: ``sweep plan --script``)."""
    short = _digest(_files(package_dirs()))
    return Snapshot(str((Path(jobs_dir) / CODE_DIR / short).resolve()), short, None, None)


def snapshot_code(jobs_dir: str | os.PathLike) -> Snapshot:
    """Copy the toolkit's packages into ``<jobs_dir>/code/<digest>`` (or reuse an equal copy)."""
    files = _files(package_dirs())
    short = _digest(files)
    final = Path(jobs_dir) / CODE_DIR / short
    commit, dirty = git_commit()
    if not final.is_dir():
        final.parent.mkdir(parents=True, exist_ok=True)
        with atomic.staged(final, "snapshot") as tmp:
            for rel, path in files:
                target = tmp / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(path, target)
            try:
                atomic.publish(tmp, final)
            except FileExistsError:  # an equal copy appeared meanwhile
                atomic.remove_temp(tmp, final)
    return Snapshot(str(final.resolve()), short, commit, dirty)


def setup_line(snapshot: Snapshot) -> str:
    """The shell line run before each task: import the toolkit from the snapshot."""
    path = shlex.quote(snapshot.path)
    return (f"export PYTHONPATH={path}${{PYTHONPATH:+:$PYTHONPATH}} PYTHONSAFEPATH=1 "
            f"DIFFBRAIN_CODE_SNAPSHOT={shlex.quote(snapshot.digest)}")
