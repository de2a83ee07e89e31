"""Write a folder (or file) under a temporary sibling name, then move it into place in one rename.

Every remove or replace the toolkit does goes through here, and is limited to what it created itself:
temporary siblings named ``.<final name>.<purpose>-<host>-<pid>-<random>``, recognised by
:func:`is_temp_sibling` before anything is removed. A reader sees either the old folder or the new one,
never a half-written one, and a writer killed at any moment leaves the old one intact (plus a temporary
sibling, which :func:`remove_stale_temps` clears once its writer is gone).

Renames are atomic on local disks, NFS and Lustre as long as source and target share a folder.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

_TEMP_NAME = re.compile(r"\.(.+)\.([a-z]+)-(.+)-(\d+)-([0-9a-f]{8})")  # .<final>.<purpose>-<host>-<pid>-<rand>


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9_.]", "_", socket.gethostname()) or "host"


def temp_sibling(final: Path, purpose: str) -> Path:
    """A fresh, unused name beside ``final`` for a ``purpose`` (``writing``, ``old``, ...)."""
    if not re.fullmatch(r"[a-z]+", purpose):
        raise ValueError(f"purpose must be lowercase letters, got {purpose!r}")
    final = Path(final)
    return final.parent / f".{final.name}.{purpose}-{_host()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


def _parse(candidate: Path, final: Path) -> tuple[str, str, int] | None:
    """(purpose, host, pid) of a temporary sibling of ``final``, or None if ``candidate`` is not one."""
    if Path(candidate).parent != Path(final).parent:
        return None
    match = re.fullmatch(re.escape(f".{Path(final).name}.") + r"([a-z]+)-(.+)-(\d+)-([0-9a-f]{8})", candidate.name)
    return None if match is None else (match.group(1), match.group(2), int(match.group(3)))


def is_temp_sibling(candidate: Path, final: Path, purpose: str | None = None) -> bool:
    """Whether ``candidate`` is a temporary sibling of ``final`` made by :func:`temp_sibling`."""
    parsed = _parse(Path(candidate), Path(final))
    return parsed is not None and (purpose is None or parsed[0] == purpose)


def remove_temp(candidate: Path, final: Path) -> None:
    """Remove a temporary sibling of ``final``; refuses (ValueError) anything else."""
    candidate = Path(candidate)
    if not is_temp_sibling(candidate, final):
        raise ValueError(f"refusing to remove {candidate}: not a temporary sibling of {final}")
    if candidate.is_dir() and not candidate.is_symlink():
        shutil.rmtree(candidate, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            candidate.unlink()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_temps(final: Path) -> list[Path]:
    """Remove the temporary siblings of ``final`` whose writer (on this host) has exited; returns them.

    Siblings made on another host are left alone: their writer may still run there.
    """
    final = Path(final)
    removed = []
    try:
        entries = list(os.scandir(final.parent))
    except (FileNotFoundError, NotADirectoryError):
        return removed
    for entry in entries:
        parsed = _parse(Path(entry.path), final)
        if parsed is None:
            continue
        _, host, pid = parsed
        if host == _host() and (pid == os.getpid() or not _alive(pid)):
            if pid == os.getpid():
                continue  # ours, still in use by this process
            remove_temp(Path(entry.path), final)
            removed.append(Path(entry.path))
    return removed


def remove_temps_of(folder: Path, finals: set[str]) -> list[Path]:
    """Remove the temporary siblings, in ``folder``, of the entries named in ``finals`` (whoever made them:
    call it only when the caller is now the one writer of those entries); one listing of ``folder``."""
    removed = []
    try:
        entries = list(os.scandir(folder))
    except (FileNotFoundError, NotADirectoryError):
        return removed
    for entry in entries:
        match = _TEMP_NAME.fullmatch(entry.name)
        if match is None or match.group(1) not in finals:
            continue
        final = Path(folder) / match.group(1)
        if is_temp_sibling(Path(entry.path), final):
            remove_temp(Path(entry.path), final)
            removed.append(Path(entry.path))
    return removed


@contextlib.contextmanager
def staged(final: Path, purpose: str = "writing") -> Iterator[Path]:
    """``with staged(final) as tmp:`` write into ``tmp`` (not created); on an exception it is removed."""
    tmp = temp_sibling(final, purpose)
    try:
        yield tmp
    except BaseException:
        remove_temp(tmp, final)
        raise


def publish(tmp: Path, final: Path, replace: bool = False) -> None:
    """Move ``tmp`` (a temporary sibling) to ``final``.

    ``final`` absent (or an empty folder): one rename. ``final`` present and ``replace``: the old one is
    first renamed to a temporary sibling, the new one renamed in, then the old one removed; if the second
    rename fails the old one is put back. ``final`` present and not ``replace``: FileExistsError, and
    ``tmp`` is left for the caller (who made it) to remove.
    """
    tmp, final = Path(tmp), Path(final)
    if not is_temp_sibling(tmp, final):
        raise ValueError(f"{tmp} is not a temporary sibling of {final}")
    try:
        os.rename(tmp, final)
        return
    except OSError as err:
        if err.errno not in (errno.ENOTEMPTY, errno.EEXIST, errno.EISDIR, errno.ENOTDIR):
            raise
        if not replace:
            raise FileExistsError(errno.EEXIST, "already exists", str(final)) from None
    old = temp_sibling(final, "old")
    os.rename(final, old)
    try:
        os.rename(tmp, final)
    except OSError:
        os.rename(old, final)
        raise
    remove_temp(old, final)


def write_file(final: Path, data: str | bytes) -> None:
    """Replace the file ``final`` by ``data`` in one rename (a reader sees the old file or the new one)."""
    final = Path(final)
    with staged(final) as tmp:
        if isinstance(data, str):
            tmp.write_text(data)
        else:
            tmp.write_bytes(data)
        os.replace(tmp, final)


@contextlib.contextmanager
def staged_files(folder: Path) -> Iterator[Path]:
    """``with staged_files(folder) as tmp:`` write files into the folder ``tmp``; on success each is moved into
    ``folder`` (created if needed; its other files are left alone), on an exception none is."""
    folder = Path(folder)
    with staged(folder) as tmp:
        tmp.mkdir()
        yield tmp
        folder.mkdir(exist_ok=True)
        for entry in sorted(os.scandir(tmp), key=lambda e: e.name):
            os.replace(entry.path, folder / entry.name)
        remove_temp(tmp, folder)
