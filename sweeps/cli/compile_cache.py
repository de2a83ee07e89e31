"""JAX's persistent compilation cache for the commands that compute in this process.

A command's wall time is mostly XLA compilation (a GIF fit: ~8 s of a 12 s command), and a user runs the
same programs again and again (same model, trace shapes, network size). The compiled programs are kept in
``$XDG_CACHE_HOME/diffbrain/jax`` (``~/.cache/diffbrain/jax``), so the second run of a command skips
XLA's compilation. ``DIFFBRAIN_COMPILATION_CACHE`` = a folder uses that folder, ``off`` (or ``0``) turns
it off; the ``JAX_*`` variables a user sets win. Sweep points are not affected (their own processes).
Set through the environment before JAX is imported, so commands that never compute import nothing.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

OFF = {"0", "off", "no", "false", "none"}


def cache_dir(environ=os.environ) -> Path | None:
    """The folder the cache uses, or None when turned off."""
    setting = environ.get("DIFFBRAIN_COMPILATION_CACHE", "").strip()
    if setting.lower() in OFF:
        return None
    if setting:
        return Path(setting).expanduser()
    base = environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "diffbrain" / "jax"


def enable(environ=os.environ) -> Path | None:
    """Point JAX at the cache (unless off or not creatable); returns the folder in use."""
    folder = cache_dir(environ)
    if folder is None or "JAX_COMPILATION_CACHE_DIR" in environ:
        return None
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:  # a read-only home: compile as before
        return None
    environ["JAX_COMPILATION_CACHE_DIR"] = str(folder)
    # every program of a command is worth keeping: the default (1 s) skips the many sub-second ones
    environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.1")
    environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")
    if "jax" in sys.modules:  # imported already (main() called from Python): the variables are read at import
        import jax

        jax.config.update("jax_compilation_cache_dir", str(folder))
        jax.config.update("jax_persistent_cache_min_compile_time_secs",
                          float(environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"]))
        jax.config.update("jax_persistent_cache_min_entry_size_bytes",
                          int(environ["JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES"]))
    return folder
