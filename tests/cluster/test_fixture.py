"""The fixture's sharing rules, without SLURM: a cluster of stand-in daemons (copies of `sleep` under the
daemons' names, so /proc/PID/exe matches), with slurm-up.sh / slurm-down.sh replaced by recorders.

Rules: a running cluster is reused, never started twice (even by two sessions at once); the last session out
stops a cluster a pytest session started; a cluster started by hand is never stopped; a dead daemon means a
restart; where the cluster cannot run, tests skip, or fail when CI is set.
"""

from __future__ import annotations

import shutil
import subprocess
import threading
import time
from pathlib import Path

import pytest

from cluster import fixture
from cluster.fixture import DAEMON_PID_FILES, ClusterLease, cannot_run_reason, running_cluster


class FakeCluster:
    """Stand-in daemons with pid files laid out as slurm-up.sh lays them out, and a recording up/down script."""

    def __init__(self, folder: Path, bin_dir: Path) -> None:
        self.folder = folder
        self.bin_dir = bin_dir
        self.processes: list[subprocess.Popen] = []
        self.calls: list[str] = []

    def start(self, owner: str = "pytest", started_at: int = 1000) -> None:
        for rel, binary in DAEMON_PID_FILES.items():
            exe = self.bin_dir / binary
            if not exe.exists():
                shutil.copy(shutil.which("sleep"), exe)
            process = subprocess.Popen([str(exe), "300"])
            self.processes.append(process)
            (self.folder / rel).parent.mkdir(parents=True, exist_ok=True)
            (self.folder / rel).write_text(f"{process.pid}\n")
        (self.folder / "submitit").mkdir(exist_ok=True)
        (self.folder / "cluster.env").write_text(
            f"DIFFBRAIN_SLURM_HOST=node1\nDIFFBRAIN_SLURM_CPUS=2\nDIFFBRAIN_SLURM_PARTITIONS=cpu,gpu\n"
            f"DIFFBRAIN_SLURM_DEFAULT_PARTITION=cpu\nDIFFBRAIN_SLURM_GPU_PARTITION=gpu\nDIFFBRAIN_SLURM_GPUS=2\n"
            f"DIFFBRAIN_SLURM_OWNER={owner}\nDIFFBRAIN_SLURM_STARTED_AT={started_at}\n"
        )

    def stop(self) -> None:
        (self.folder / "cluster.env").unlink(missing_ok=True)
        for process in self.processes:
            process.kill()
            process.wait()
        self.processes.clear()

    def run_script(self, script: Path, *args: str, owner: str = "pytest") -> tuple[int, str]:
        """Replaces fixture._run_script: 'up' starts the stand-ins (slowly, to widen races), 'down' stops them."""
        self.calls.append(script.name)
        if script == fixture.UP_SCRIPT:
            time.sleep(0.3)
            self.stop()
            self.start(owner=owner, started_at=2000 + len(self.calls))
        else:
            self.stop()
        return 0, ""


@pytest.fixture
def fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    cluster = FakeCluster(tmp_path / "slurm", bin_dir)
    cluster.folder.mkdir()
    monkeypatch.setattr(fixture, "_run_script", cluster.run_script)
    monkeypatch.setattr(fixture, "run_slurm_command", lambda argv, timeout_s=30.0: "cpu* idle\ngpu idle\n")
    monkeypatch.delenv("DIFFBRAIN_SLURM_KEEP", raising=False)
    yield cluster
    cluster.stop()


def test_running_cluster_is_reused_and_the_last_session_out_stops_it(fake: FakeCluster) -> None:
    fake.start(owner="pytest", started_at=1234)
    first, second = ClusterLease(fake.folder), ClusterLease(fake.folder)
    one, two = first.acquire(), second.acquire()
    assert fake.calls == []  # nothing started: both joined the running cluster
    assert not one.started_by_this_session and not two.started_by_this_session
    assert (one.hostname, one.cpus, one.partitions, one.gpus_per_node, one.started_at) == (
        "node1", 2, ("cpu", "gpu"), 2, 1234)
    assert one.submitit_dir == fake.folder / "submitit"
    assert first.release() == "left running (another pytest session uses it)"
    assert running_cluster(fake.folder) is not None and fake.calls == []
    assert second.release() == "stopped"
    assert fake.calls == ["slurm-down.sh"] and running_cluster(fake.folder) is None


def test_cluster_started_by_hand_is_never_stopped(fake: FakeCluster) -> None:
    fake.start(owner="manual")
    lease = ClusterLease(fake.folder)
    assert not lease.acquire().started_by_this_session
    assert lease.release() == "left running (started by hand)"
    assert fake.calls == [] and running_cluster(fake.folder) is not None


def test_keep_variable_leaves_a_pytest_cluster_running(fake: FakeCluster, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DIFFBRAIN_SLURM_KEEP", "1")
    lease = ClusterLease(fake.folder)
    assert lease.acquire().started_by_this_session
    assert lease.release() == "kept running (DIFFBRAIN_SLURM_KEEP=1)"
    assert fake.calls == ["slurm-up.sh"] and running_cluster(fake.folder) is not None


def test_a_dead_daemon_means_a_fresh_start(fake: FakeCluster) -> None:
    fake.start(owner="manual", started_at=1)
    fake.processes[1].kill()  # slurmctld
    fake.processes[1].wait()
    assert running_cluster(fake.folder) is None
    lease = ClusterLease(fake.folder)
    cluster = lease.acquire()
    assert cluster.started_by_this_session and cluster.started_at != 1
    assert fake.calls == ["slurm-up.sh"]
    assert lease.release() == "stopped"


def test_two_sessions_starting_at_once_start_it_once(fake: FakeCluster) -> None:
    leases = [ClusterLease(fake.folder) for _ in range(3)]
    results: list[object] = []
    threads = [threading.Thread(target=lambda lease=lease: results.append(lease.acquire())) for lease in leases]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert fake.calls == ["slurm-up.sh"]
    assert sorted(c.started_by_this_session for c in results) == [False, False, True]
    assert len({c.started_at for c in results}) == 1
    assert [lease.release() for lease in leases][-1] == "stopped"
    assert fake.calls == ["slurm-up.sh", "slurm-down.sh"]


def test_cannot_run_reason_names_missing_programs_and_the_install_script(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fixture.os, "geteuid", lambda: 0)
    monkeypatch.setenv("PATH", "/nonexistent")
    reason = cannot_run_reason()
    assert reason is not None and "slurmctld" in reason and "install-debian-packages.sh" in reason
    monkeypatch.setattr(fixture.os, "geteuid", lambda: 1000)
    assert "needs root" in cannot_run_reason()


def test_unavailable_skips_locally_and_fails_under_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="no munge"):
        fixture._unavailable("no munge")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="unavailable under CI: no munge"):
        fixture._unavailable("no munge")


def test_failed_start_reports_the_script_output(fake: FakeCluster, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fixture, "_run_script", lambda script, *args, owner="pytest": (1, "boom: slurmdbd died\n"))
    with pytest.raises(RuntimeError, match="(?s)exit 1.*slurmdbd died"):
        ClusterLease(fake.folder).acquire()
