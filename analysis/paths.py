"""User-given filesystem locations: checked as paths, handed to zarr as an explicit ``LocalStore``.

zarr and xarray read a *string* as a URL: ``t#1`` becomes ``t`` (the fragment is cut), and so do ``?``
and ``;``; opening that shortened path for writing empties another folder. So every location a user gives
(a store, an ``--out`` folder, a checkpoint, a trace file) travels as a :class:`pathlib.Path`, and zarr
only ever sees :func:`local_store` (a ``zarr.storage.LocalStore`` rooted at that exact path).

:func:`user_path` refuses what cannot be a path (a NUL byte, a non-string) and :func:`check_writable`
refuses, before anything is written, a location under a virtual file system (``/proc``, ``/sys``, ...)
or under a regular file. Both raise :class:`analysis.errors.BadPath` (one line naming the field and the
fix; exit status 2 on the command line).
"""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Any

from analysis.errors import BadPath

# file systems that hold no user data: a store or a report there is always a mistake
VIRTUAL_FS = frozenset({"proc", "sysfs", "devtmpfs", "devpts", "cgroup", "cgroup2", "debugfs", "tracefs",
                        "securityfs", "pstore", "bpf", "configfs", "fusectl", "mqueue", "binfmt_misc",
                        "autofs", "efivarfs", "rpc_pipefs", "nsfs"})


def user_path(value: Any, field: str) -> Path:
    """``value`` (a str or path-like from the user) as a :class:`Path`; :class:`BadPath` if it cannot be one."""
    if isinstance(value, str) and not value.strip():
        raise BadPath(field, "empty path", "give a file or folder path")
    if isinstance(value, Path):
        path = value
    elif isinstance(value, (str, os.PathLike)):
        path = Path(value)
    else:
        raise BadPath(field, f"expected a path, got {type(value).__name__} {value!r}", "give a file or folder path")
    text = str(path)
    if not text.strip():
        raise BadPath(field, "empty path", "give a file or folder path")
    if "\x00" in text:
        raise BadPath(field, f"{text!r} contains a NUL byte", "give a path without control characters")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # undecodable bytes from the command line (surrogate escapes)
        raise BadPath(field, f"{text!r} is not valid UTF-8", "give a path in UTF-8") from None
    return path


def _mounts() -> list[tuple[str, str]]:
    """(mount point, file system type) of this process's mounts, longest mount point first (Linux)."""
    try:
        with open("/proc/self/mountinfo", encoding="utf-8", errors="replace") as f:
            lines = f.read().splitlines()
    except OSError:
        return []
    out = []
    for line in lines:
        left, _, right = line.partition(" - ")
        fields = left.split()
        if len(fields) < 5 or not right:
            continue
        point = fields[4].encode().decode("unicode_escape") if "\\" in fields[4] else fields[4]
        out.append((point, right.split()[0]))
    return sorted(out, key=lambda m: len(m[0]), reverse=True)


def filesystem_type(path: Path) -> str | None:
    """The file system type holding ``path`` (its nearest existing ancestor), or None when unknown."""
    probe = _existing_ancestor(path).resolve()
    text = str(probe)
    for point, fstype in _mounts():
        if text == point or text.startswith(point.rstrip("/") + "/"):
            return fstype
    return None


def _existing_ancestor(path: Path) -> Path:
    path = Path(os.path.abspath(path))
    while not os.path.lexists(path) and path != path.parent:
        path = path.parent
    return path


def check_writable(path: Path | str, field: str, kind: str = "folder") -> Path:
    """Refuse a location that can never be written: under a virtual file system, under a regular file,
    or an existing thing of the wrong kind. Returns the checked :class:`Path`. Writes nothing."""
    path = user_path(path, field)
    ancestor = _existing_ancestor(path)
    fstype = filesystem_type(path)
    if fstype in VIRTUAL_FS:
        raise BadPath(field, f"{path} is on the {fstype} virtual file system", f"give a {kind} on a real disk")
    if ancestor != Path(os.path.abspath(path)):
        if not ancestor.is_dir():
            raise BadPath(field, f"{path} is under {ancestor}, which is a file, not a folder",
                          f"give a {kind} path whose parents are folders")
    elif kind == "folder" and not path.is_dir():
        raise BadPath(field, f"{path} exists and is not a folder", "give a folder path")
    elif kind == "file" and path.is_dir():
        raise BadPath(field, f"{path} is a folder", "give a file path")
    return path


def os_problem(err: OSError, field: str, path: Path | str, kind: str = "folder") -> BadPath:
    """A :class:`BadPath` for an ``OSError`` raised while creating or writing ``path`` (no traceback)."""
    why = {errno.EACCES: "permission denied", errno.EPERM: "operation not permitted",
           errno.EROFS: "read-only file system", errno.ENOSPC: "no space left on the device",
           errno.EDQUOT: "disk quota exceeded", errno.ENOTDIR: "a parent is not a folder",
           errno.ENAMETOOLONG: "the name is too long", errno.ENOENT: "a parent folder does not exist"}
    reason = why.get(err.errno, err.strerror or str(err))
    return BadPath(field, f"cannot write {path} ({reason})", f"give a {kind} where you can write")


def local_store(path: Path | str, read_only: bool = False):
    """A ``zarr.storage.LocalStore`` rooted at exactly ``path`` (never a URL string that zarr would parse)."""
    from zarr.storage import LocalStore

    return LocalStore(Path(path), read_only=read_only)
