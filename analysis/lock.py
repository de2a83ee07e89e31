"""One submitter per store: an exclusive lock beside the store (``results/scan.zarr`` -> ``results/scan.lock/``).

The lock is a folder made with one ``mkdir``, which is atomic on a local disk, on NFS (v3 and v4: the
server makes it) and on Lustre, so two submitters on two login nodes cannot both hold it. ``fcntl`` locks
are not used: on NFS they depend on the lock daemon (and silently lock nothing with ``nolock`` mounts), on
Lustre on the ``flock`` mount option. The folder holds ``owner.json`` (host, pid, the process's start
time, user, command, since) so that a second submitter can say who holds the lock.

A lock is stale, and is broken, when its holder is gone: on the same host, its pid is no longer that
process; on another host, its heartbeat (the holder rewrites ``owner.json`` every
:data:`HEARTBEAT_S`) is older than :data:`STALE_AFTER_S`. Breaking renames the folder to a temporary
sibling first (only one breaker wins that rename), so two waiters never both take over.
"""

from __future__ import annotations

import contextlib
import getpass
import json
import os
import socket
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from analysis import atomic
from analysis.jsonsafe import read_json

OWNER = "owner.json"
HEARTBEAT_S = 30.0
STALE_AFTER_S = 300.0


class LockBusy(RuntimeError):
    """Another live process holds the lock; ``owner`` says who (a dict, possibly empty)."""

    def __init__(self, path: Path, owner: dict):
        self.path, self.owner = path, owner
        who = (f"{owner.get('user', '?')}@{owner.get('host', '?')} pid {owner.get('pid', '?')} "
               f"since {owner.get('since', '?')}") if owner else "a process that is still writing its name"
        command = f" ({owner['command']})" if owner.get("command") else ""
        super().__init__(f"held by {who}{command}")


def lock_path_for(store: str | os.PathLike) -> Path:
    """The lock folder beside a store: ``results/scan.zarr`` -> ``results/scan.lock``."""
    store = Path(store)
    stem = store.name[: -len(store.suffix)] if store.suffix == ".zarr" else store.name
    return store.with_name(f"{stem}.lock")


def _process_start(pid: int) -> float | None:
    try:
        import psutil

        return psutil.Process(pid).create_time()
    except Exception:  # psutil missing or the process gone
        return None


def _read_owner(path: Path) -> dict:
    return read_json(path / OWNER) or {}


def _holder_gone(path: Path, owner: dict) -> bool:
    """Whether the lock at ``path`` (its ``owner``) was left by a process that is gone."""
    try:
        age = time.time() - max(path.stat().st_mtime, (path / OWNER).stat().st_mtime if (path / OWNER).exists()
                                else 0.0)
    except FileNotFoundError:
        return False  # released meanwhile: try again
    if not owner:
        return age > 60.0  # mkdir made, owner never written: a holder killed in between
    if owner.get("host") == socket.gethostname():
        pid = owner.get("pid")
        if not isinstance(pid, int):
            return True
        started = _process_start(pid)
        return started is None or abs(started - float(owner.get("pid_started") or started)) > 1.0
    return age > STALE_AFTER_S


@dataclass
class StoreLock:
    """``with StoreLock(store, "submit") as lock:`` hold the store's lock (:class:`LockBusy` if held).

    ``wait_s``: how long to wait for a busy lock before giving up.
    """

    store: Path
    command: str = ""
    wait_s: float = 0.0
    poll_s: float = 0.5

    def __post_init__(self):
        self.path = lock_path_for(self.store)
        self._stop = threading.Event()
        self._beat: threading.Thread | None = None
        self.broke: dict | None = None  # the owner of a stale lock this one replaced

    def _owner(self) -> dict:
        return {"host": socket.gethostname(), "pid": os.getpid(), "pid_started": _process_start(os.getpid()),
                "user": getpass.getuser(), "command": self.command or " ".join(sys.argv[:4]),
                "since": time.strftime("%Y-%m-%dT%H:%M:%S%z")}

    def _write_owner(self, owner: dict) -> None:
        atomic.write_file(self.path / OWNER, json.dumps(owner))

    def _try(self) -> bool:
        try:
            os.mkdir(self.path)
        except FileExistsError:
            return False
        self._write_owner(self._owner())
        return True

    def _break_if_stale(self) -> dict:
        """The current owner; a stale lock is moved aside and removed (then the caller tries again)."""
        owner = _read_owner(self.path)
        for _ in range(20):  # a holder between its mkdir and writing owner.json: give it a moment
            if owner or not self.path.exists():
                break
            time.sleep(0.05)
            owner = _read_owner(self.path)
        if not _holder_gone(self.path, owner):
            return owner
        aside = atomic.temp_sibling(self.path, "stale")
        try:
            os.rename(self.path, aside)  # only one breaker wins this rename
        except OSError:
            return owner
        atomic.remove_temp(aside, self.path)
        self.broke = owner or {"owner": "unknown"}
        return owner

    def acquire(self) -> StoreLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + self.wait_s
        while True:
            if self._try():
                break
            owner = self._break_if_stale()
            if self._try():
                break
            if time.monotonic() >= deadline:
                raise LockBusy(self.path, owner)
            time.sleep(self.poll_s)
        self._beat = threading.Thread(target=self._heartbeat, name="store-lock-heartbeat", daemon=True)
        self._beat.start()
        return self

    def _heartbeat(self) -> None:
        owner = _read_owner(self.path)
        while not self._stop.wait(HEARTBEAT_S):
            with contextlib.suppress(OSError):
                self._write_owner({**owner, "heartbeat": time.strftime("%Y-%m-%dT%H:%M:%S%z")})

    def release(self) -> None:
        """Remove the lock folder, only if it is still ours."""
        self._stop.set()
        if self._beat is not None:
            self._beat.join(timeout=5)
            self._beat = None
        owner = _read_owner(self.path)
        if owner.get("pid") != os.getpid() or owner.get("host") != socket.gethostname():
            return
        atomic.remove_stale_temps(self.path / OWNER)
        with contextlib.suppress(FileNotFoundError):
            (self.path / OWNER).unlink()
        with contextlib.suppress(OSError):
            self.path.rmdir()

    def __enter__(self) -> StoreLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
