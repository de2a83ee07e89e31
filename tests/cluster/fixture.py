"""The session fixture `slurm_cluster`: a real one-node SLURM on localhost (see README.md here).

The first pytest session that needs it starts it with slurm-up.sh, under a file lock so that two sessions
never start it twice; a cluster that is already up (another session, or a developer's slurm-up.sh) is reused.
Every session holds a shared lock on `<scratch>.users` while it uses the cluster; at the end the last session
out stops a cluster that a pytest session started, and never one a developer started by hand. Where it
cannot start (not root, packages missing) tests are skipped, or fail when the CI variable is set.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import pytest

HERE = Path(__file__).resolve().parent
UP_SCRIPT = HERE / "slurm-up.sh"
DOWN_SCRIPT = HERE / "slurm-down.sh"
START_TIMEOUT_S = 240  # slurm-up.sh takes 5-15 s; MariaDB's first start can be slow on a busy machine
LOCK_TIMEOUT_S = 600  # another session may be starting or stopping the cluster
NEEDED_PROGRAMS = ("munged", "mariadbd", "slurmdbd", "slurmctld", "slurmd", "sbatch", "sacct", "scancel", "squeue")
# pid file (relative to the scratch folder) -> the binary that pid must run; mirrors slurm-lib.sh
DAEMON_PID_FILES = {
    "run/slurmd.pid": "slurmd",
    "run/slurmctld.pid": "slurmctld",
    "run/slurmdbd.pid": "slurmdbd",
    "mariadb-run/mariadb.pid": "mariadbd",
    "munge/munged.pid": "munged",
}
FINISHED_STATES = frozenset(
    {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "PREEMPTED", "BOOT_FAIL", "DEADLINE"}
)


def scratch_dir() -> Path:
    """The folder holding all of the cluster's runtime state (DIFFBRAIN_SLURM_DIR, default /tmp/diffbrain-slurm)."""
    return Path(os.environ.get("DIFFBRAIN_SLURM_DIR", "/tmp/diffbrain-slurm"))


@dataclass(frozen=True)
class SlurmCluster:
    """What a test needs to know about the running cluster."""

    scratch_dir: Path
    submitit_dir: Path  # new at every cluster start (job ids restart at 1 there): put submitit folders below it
    hostname: str
    cpus: int
    partitions: tuple[str, ...]  # ("cpu", "gpu")
    default_partition: str  # "cpu"
    gpu_partition: str  # "gpu": the same node, with gres gpu:fake:2
    gpus_per_node: int
    started_at: int  # epoch seconds of the cluster start (distinguishes two starts)
    started_by_this_session: bool

    def job_folder(self, name: str) -> Path:
        """A new empty folder under `submitit_dir` for one test's jobs (unique even across sessions)."""
        folder = self.submitit_dir / f"{name}-{uuid.uuid4().hex[:8]}"
        folder.mkdir(parents=True)
        return folder

    def sacct_states(self, job_id: str | int) -> dict[str, str]:
        """Accounting state of a job's allocations ({"12": "COMPLETED"} or {"12_0": ..., "12_1": ...} for arrays).

        The state is its first word ("CANCELLED by 0" -> "CANCELLED"). Empty when accounting has no record yet.
        """
        out = run_slurm_command(["sacct", "-j", str(job_id), "-X", "-n", "-P", "-o", "JobID,State"])
        states = {}
        for line in out.splitlines():
            if "|" in line:
                job, state = line.split("|", 1)
                states[job.strip()] = state.split()[0] if state.strip() else ""
        return states

    def wait_for_sacct(self, job_id: str | int, timeout_s: float = 60.0, allocations: int = 1) -> dict[str, str]:
        """Poll sacct until it records at least `allocations` allocations of the job (an array's task count) and
        every one is in a finished state; return the states. Accounting lags the jobs themselves: slurmctld hands
        a job's end to slurmdbd through a queue, so a job that has written its result may not be in sacct yet."""
        deadline = time.monotonic() + timeout_s
        states: dict[str, str] = {}
        while time.monotonic() < deadline:
            states = self.sacct_states(job_id)
            if len(states) >= allocations and all(state in FINISHED_STATES for state in states.values()):
                return states
            time.sleep(0.5)
        raise TimeoutError(f"job {job_id} not finished in sacct after {timeout_s:.0f} s: {states}")


def run_slurm_command(argv: list[str], timeout_s: float = 30.0) -> str:
    """Run a SLURM client command and return its stdout; raise with its stderr when it fails."""
    done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {done.returncode}: {done.stderr.strip()}")
    return done.stdout


def read_marker(folder: Path) -> dict[str, str] | None:
    """The key=value facts slurm-up.sh writes last (cluster.env), or None when no start completed."""
    try:
        text = (folder / "cluster.env").read_text()
    except FileNotFoundError:
        return None
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)


def _pid_runs(pid_file: Path, binary: str) -> bool:
    """True when the pid in `pid_file` is alive, not a zombie, and runs `binary` (a recycled pid is not ours)."""
    try:
        pid = int(pid_file.read_text().strip())
        exe = os.readlink(f"/proc/{pid}/exe")
        status = Path(f"/proc/{pid}/status").read_text()
    except (OSError, ValueError):
        return False
    zombie = any(line.startswith("State:") and "Z" in line.split()[1] for line in status.splitlines())
    return not zombie and os.path.basename(exe).startswith(binary)


def running_cluster(folder: Path) -> dict[str, str] | None:
    """The marker of a cluster whose five daemons are all alive, else None (never started, stopped or broken)."""
    marker = read_marker(folder)
    if marker is None:
        return None
    if not all(_pid_runs(folder / rel, binary) for rel, binary in DAEMON_PID_FILES.items()):
        return None
    return marker


def cannot_run_reason() -> str | None:
    """Why the cluster cannot be started on this machine, or None."""
    if os.geteuid() != 0:
        return "the local SLURM needs root (tests/cluster/slurm-up.sh starts munge, MariaDB and the slurm daemons)"
    missing = [name for name in NEEDED_PROGRAMS if shutil.which(name) is None]
    if missing:
        return f"missing {', '.join(missing)}: run `bash tests/cluster/install-debian-packages.sh` as root"
    return None


def _flock(handle: IO[str], mode: int, timeout_s: float) -> bool:
    """Take an flock within timeout_s (polling, so a stuck holder gives a clear error instead of a hang)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            fcntl.flock(handle, mode | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.2)


def _run_script(script: Path, *args: str, owner: str = "pytest") -> tuple[int, str]:
    """Run slurm-up.sh / slurm-down.sh while this process holds the start lock; return (exit code, output).

    The output goes through a file, not a pipe: the daemons it starts must not keep a pipe of ours open.
    """
    env = dict(os.environ, DIFFBRAIN_SLURM_LOCK_HELD="1", DIFFBRAIN_SLURM_OWNER=owner)
    with tempfile.TemporaryFile(mode="w+") as out:
        try:
            done = subprocess.run(
                ["bash", str(script), *args], stdout=out, stderr=subprocess.STDOUT, env=env,
                timeout=START_TIMEOUT_S, check=False,
            )
            code = done.returncode
        except subprocess.TimeoutExpired:
            code = -1
        out.seek(0)
        return code, out.read()


class ClusterLease:
    """This session's use of the cluster: started or reused on entry, released (maybe stopped) on exit."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.lock_path = Path(f"{folder}.lock")
        self.users_path = Path(f"{folder}.users")
        self._users: IO[str] | None = None

    def acquire(self) -> SlurmCluster:
        """Start the cluster or join the running one; raise RuntimeError with the reason when it cannot."""
        self.folder.parent.mkdir(parents=True, exist_ok=True)
        with open(self.lock_path, "a") as lock:
            if not _flock(lock, fcntl.LOCK_EX, LOCK_TIMEOUT_S):
                raise RuntimeError(f"{self.lock_path} held for more than {LOCK_TIMEOUT_S} s by another start/stop")
            marker = running_cluster(self.folder)
            started_here = marker is None
            if started_here:
                # Not up, or a daemon died: start afresh (--force: a half-dead cluster is no use to anyone).
                code, output = _run_script(UP_SCRIPT, "--force")
                marker = running_cluster(self.folder)
                if code != 0 or marker is None:
                    tail = "\n".join(output.strip().splitlines()[-30:])
                    raise RuntimeError(f"tests/cluster/slurm-up.sh failed (exit {code}):\n{tail}")
            self._users = open(self.users_path, "a")  # held until release()
            fcntl.flock(self._users, fcntl.LOCK_SH)
        try:
            run_slurm_command(["sinfo", "-h", "-o", "%P %t"], timeout_s=30)
        except (RuntimeError, subprocess.TimeoutExpired) as error:
            self.release()
            raise RuntimeError(f"the running cluster in {self.folder} does not answer: {error}") from error
        return SlurmCluster(
            scratch_dir=self.folder,
            submitit_dir=self.folder / "submitit",
            hostname=marker["DIFFBRAIN_SLURM_HOST"],
            cpus=int(marker["DIFFBRAIN_SLURM_CPUS"]),
            partitions=tuple(marker["DIFFBRAIN_SLURM_PARTITIONS"].split(",")),
            default_partition=marker["DIFFBRAIN_SLURM_DEFAULT_PARTITION"],
            gpu_partition=marker["DIFFBRAIN_SLURM_GPU_PARTITION"],
            gpus_per_node=int(marker["DIFFBRAIN_SLURM_GPUS"]),
            started_at=int(marker["DIFFBRAIN_SLURM_STARTED_AT"]),
            started_by_this_session=started_here,
        )

    def release(self) -> str:
        """Stop using the cluster; stop it if a pytest session started it and no other session uses it.

        Returns what happened. DIFFBRAIN_SLURM_KEEP=1 keeps it running.
        """
        if self._users is None:
            return "not in use"
        self._users.close()  # drops this session's shared lock
        self._users = None
        if os.environ.get("DIFFBRAIN_SLURM_KEEP") == "1":
            return "kept running (DIFFBRAIN_SLURM_KEEP=1)"
        with open(self.lock_path, "a") as lock:
            if not _flock(lock, fcntl.LOCK_EX, LOCK_TIMEOUT_S):
                return "left running (start lock busy)"
            marker = read_marker(self.folder)
            if marker is None:
                return "already stopped"
            if marker.get("DIFFBRAIN_SLURM_OWNER") != "pytest":
                return "left running (started by hand)"
            with open(self.users_path, "a") as users:
                try:
                    fcntl.flock(users, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    return "left running (another pytest session uses it)"
                code, output = _run_script(DOWN_SCRIPT, "--force")  # --force: we hold the users lock ourselves
            return "stopped" if code == 0 else f"slurm-down.sh exited {code}: {output.strip()[-500:]}"


def _unavailable(reason: str) -> None:
    """Skip the SLURM tests, or fail them when CI is set (CI must run them)."""
    if os.environ.get("CI"):
        pytest.fail(f"local SLURM unavailable under CI: {reason}", pytrace=False)
    pytest.skip(f"local SLURM unavailable: {reason}")


@pytest.fixture(scope="session")
def slurm_cluster() -> Iterator[SlurmCluster]:
    """A running one-node SLURM (partitions cpu and gpu), started once per session; see tests/cluster/README.md."""
    reason = cannot_run_reason()
    if reason:
        _unavailable(reason)
    lease = ClusterLease(scratch_dir())
    try:
        cluster = lease.acquire()
    except RuntimeError as error:
        _unavailable(str(error))
        raise  # unreachable: _unavailable raises
    try:
        yield cluster
    finally:
        lease.release()
