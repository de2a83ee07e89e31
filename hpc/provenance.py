"""Where and with what a result was made: toolkit version, git commit, package versions, host, devices."""

from __future__ import annotations

import datetime as dt
import os
import platform
import socket
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import diffbrain
from diffbrain.context import peak_rss_bytes

__all__ = ["peak_rss_bytes"]  # re-exported: the runner records it


def now_iso() -> str:
    """The current time, ISO 8601 in UTC (seconds resolution plus microseconds)."""
    return dt.datetime.now(dt.UTC).isoformat(timespec="microseconds")


def host() -> str:
    return socket.gethostname()


def toolkit_version() -> str:
    try:
        return metadata.version("diffbrain")
    except metadata.PackageNotFoundError:
        return "unknown"


def git_commit() -> tuple[str | None, bool | None]:
    """(commit, dirty) of the git checkout the toolkit is imported from; (None, None) outside one."""
    source = Path(diffbrain.__file__).resolve().parent.parent
    try:
        commit = subprocess.run(["git", "-C", str(source), "rev-parse", "HEAD"], capture_output=True,
                                text=True, timeout=10)
        if commit.returncode != 0:
            return None, None
        status = subprocess.run(["git", "-C", str(source), "status", "--porcelain", "--untracked-files=no"],
                                capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None, None
    return commit.stdout.strip(), bool(status.stdout.strip()) if status.returncode == 0 else None


def code_origin() -> dict:
    """Where this process imports the toolkit from: the submission's code snapshot (its digest, set by the
    task's setup line) or none, and the folder holding the imported packages."""
    return {"snapshot": os.environ.get("DIFFBRAIN_CODE_SNAPSHOT") or None,
            "path": str(Path(diffbrain.__file__).resolve().parent.parent)}


def package_versions() -> dict[str, str]:
    """Exact versions of every installed distribution, by normalised name."""
    out = {}
    for dist in metadata.distributions():
        name = dist.metadata["Name"]
        if name:
            out[name.lower().replace("_", "-")] = dist.version
    return dict(sorted(out.items()))


def store_provenance() -> dict:
    """The root attrs of a new store besides the sweep itself."""
    commit, dirty = git_commit()
    return {
        "created": now_iso(),
        "toolkit_version": toolkit_version(),
        "git_commit": commit,
        "git_dirty": dirty,
        "packages": package_versions(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "submit_host": host(),
    }


def gpus() -> list[str]:
    """GPU ids the scheduler granted this process (CUDA_VISIBLE_DEVICES), [] if none."""
    return [g.strip() for g in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if g.strip()]


def job_id() -> str | None:
    """The scheduler's id of the running task (SLURM array task, SLURM job, or submitit local job)."""
    env = os.environ
    if env.get("SLURM_ARRAY_JOB_ID") and env.get("SLURM_ARRAY_TASK_ID"):
        return f"{env['SLURM_ARRAY_JOB_ID']}_{env['SLURM_ARRAY_TASK_ID']}"
    return env.get("SLURM_JOB_ID") or (f"local-{env['SUBMITIT_LOCAL_JOB_ID']}" if env.get("SUBMITIT_LOCAL_JOB_ID")
                                       else None)


def restart_count() -> int:
    """How many times SLURM requeued this job (0 on the first run and outside SLURM)."""
    try:
        return int(os.environ.get("SLURM_RESTART_COUNT", "0"))
    except ValueError:
        return 0
