"""Whether a SLURM controller answers here, decided in well under a second and remembered for a minute.

``executor = auto`` asks this. A laptop or CI box with the SLURM client installed but no cluster behind it
used to wait ~5 s for ``sinfo`` to time out on every ``sweep plan``. Instead: read the controller's address
from ``slurm.conf`` (``$SLURM_CONF``, else ``/etc/slurm/slurm.conf``) and try a TCP connection to it with a
short timeout; only when that connects does ``sinfo`` confirm. Without a readable ``slurm.conf``
(configless clusters) ``sinfo`` is asked with a short timeout. The answer, with the reason, is cached in
``~/.cache/diffbrain/slurm-probe.json`` (``$XDG_CACHE_HOME``) for :data:`CACHE_S` seconds, keyed by the
client and the configuration file (a rewritten ``slurm.conf`` is probed afresh).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

CONNECT_TIMEOUT_S = 0.3  # per controller address
SINFO_TIMEOUT_S = 2.0  # a controller that accepted the connection answers sinfo quickly
CACHE_S = 60.0
DEFAULT_PORT = 6817  # SLURM's documented default SlurmctldPort


@dataclass(frozen=True)
class Probe:
    answers: bool
    why: str  # one line: what was found ("no SLURM controller answers at vm:6817 (connection refused)")


def conf_path() -> Path:
    return Path(os.environ.get("SLURM_CONF") or "/etc/slurm/slurm.conf")


def controllers(text: str) -> list[tuple[str, int]]:
    """(host, port) of each controller named in a ``slurm.conf`` (``SlurmctldHost=name(addr)`` or the old
    ``ControlMachine``/``ControlAddr``; ``SlurmctldPort`` may be a range: its first port)."""
    hosts, port = [], DEFAULT_PORT
    control_addr = None
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        key, sep, value = line.partition("=")
        if not sep:
            continue
        key, value = key.strip().lower(), value.strip().split()[0] if value.strip() else ""
        if key == "slurmctldhost" and value:
            name, _, addr = value.partition("(")
            hosts.append(addr.rstrip(")") or name)
        elif key == "controlmachine" and value:
            hosts.append(value.split(",")[0])
        elif key == "controladdr" and value:
            control_addr = value
        elif key == "slurmctldport" and value:
            try:
                port = int(value.split("-")[0])
            except ValueError:
                pass
    if control_addr and hosts:
        hosts[0] = control_addr
    return [(host, port) for host in hosts]


def _connects(host: str, port: int) -> str:
    """'' when a TCP connection to host:port opens within :data:`CONNECT_TIMEOUT_S`, else why not."""
    try:
        with socket.create_connection((host, port), timeout=CONNECT_TIMEOUT_S):
            return ""
    except socket.gaierror:
        return "unknown host"
    except TimeoutError:
        return f"no answer within {CONNECT_TIMEOUT_S:g} s"
    except OSError as err:
        return (err.strerror or str(err)).lower()


def _sinfo(timeout_s: float) -> str:
    """'' when ``sinfo`` lists partitions within ``timeout_s``, else why not."""
    try:
        done = subprocess.run(["sinfo", "-h", "-o", "%P"], capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        return f"sinfo did not answer within {timeout_s:g} s"
    except OSError as err:
        return f"sinfo cannot run ({err.strerror})"
    if done.returncode != 0:
        return "sinfo failed: " + ((done.stderr or done.stdout).strip().splitlines() or ["no message"])[-1][:200]
    return ""


def probe_now() -> Probe:
    """Ask, without the cache."""
    if not shutil.which("sbatch") or not shutil.which("sinfo"):
        return Probe(False, "sbatch/sinfo are not on PATH")
    path = conf_path()
    try:
        found = controllers(path.read_text(errors="replace"))
    except OSError:
        found = []
    if found:
        refusals = []
        for host, port in found:
            why = _connects(host, port)
            if not why:
                break
            refusals.append(f"{host}:{port} ({why})")
        else:
            return Probe(False, f"no SLURM controller answers at {', '.join(refusals)}, as {path} names it")
    why = _sinfo(SINFO_TIMEOUT_S)
    return Probe(not why, why or "sinfo answers")


def cache_file() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "diffbrain" / "slurm-probe.json"


def _cache_key() -> str:
    path = conf_path()
    try:
        stamp = path.stat().st_mtime_ns
    except OSError:
        stamp = None
    return json.dumps([shutil.which("sbatch"), shutil.which("sinfo"), str(path), stamp])


def probe() -> Probe:
    """Whether SLURM answers here (cached for :data:`CACHE_S` s; a cache that cannot be written is skipped)."""
    key, path = _cache_key(), cache_file()
    try:
        cached = json.loads(path.read_text())
        if cached["key"] == key and 0 <= time.time() - cached["at"] < CACHE_S:
            return Probe(bool(cached["answers"]), str(cached["why"]) + " (cached)")
    except (OSError, ValueError, KeyError, TypeError):
        pass
    found = probe_now()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}")
        tmp.write_text(json.dumps({"key": key, "at": time.time(), "answers": found.answers, "why": found.why}))
        os.replace(tmp, path)
    except OSError:
        pass
    return found
