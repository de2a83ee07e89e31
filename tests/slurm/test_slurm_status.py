"""Scheduler views and cancel against stand-in squeue/sacct/scancel programs: states are read right, and a
missing, failing or hanging accounting never hangs `sweep status` (no SLURM needed)."""

import os
import stat
import textwrap

import pytest

import slurm.backends.slurm as slurm_backend
import slurm.status as status
from slurm.jobs import JobRecord, Submission, load, record
from slurm.resources import jobs_dir_for
from sweeps.cli import main
from sweeps.points import expand
from sweeps.spec import load_sweep

SQUEUE = "#!/bin/sh\nprintf '12_1|RUNNING\\n12_2|PENDING\\n99_0|RUNNING\\n'\n"
SACCT_OK = "#!/bin/sh\nprintf 'JobID|State\\n12_0|COMPLETED\\n13|CANCELLED by 0\\n'\n"
SACCT_HANGS = "#!/bin/sh\nsleep 30\n"
SACCT_NO_DB = "#!/bin/sh\necho 'sacct: error: Slurm accounting storage is disabled' >&2\nexit 1\n"
SCANCEL = "#!/bin/sh\necho \"$@\" >> \"$(dirname \"$0\")/scancel.args\"\n"


@pytest.fixture()
def fake_bin(tmp_path, monkeypatch):
    folder = tmp_path / "bin"
    folder.mkdir()

    def install(**programs):
        for name, text in programs.items():
            path = folder / name
            path.write_text(text)
            path.chmod(path.stat().st_mode | stat.S_IEXEC)
        monkeypatch.setenv("PATH", f"{folder}{os.pathsep}{os.environ['PATH']}")
        return folder

    return install


def submission(points):
    jobs = [JobRecord("12_0", points[0:1]), JobRecord("12_1", points[1:2]), JobRecord("12_2", points[2:3]),
            JobRecord("13", points[3:4])]
    return Submission("2026-01-01T00:00:00+00:00", "slurm", "h", "/tmp/x", {}, jobs)


def test_states_from_squeue_and_sacct(fake_bin):
    fake_bin(squeue=SQUEUE, sacct=SACCT_OK)
    view = status.scheduler_view([submission(["a", "b", "c", "d"])])
    assert view.states == {"12_1": "RUNNING", "12_2": "PENDING", "12_0": "COMPLETED", "13": "CANCELLED"}
    assert view.notes == []
    assert view.active("12_1") and view.active("12_2") and not view.active("12_0") and not view.active("13")


@pytest.mark.parametrize("sacct, words", [(SACCT_HANGS, "did not answer within 1 s"),
                                          (SACCT_NO_DB, "accounting storage is disabled"),
                                          (None, "sacct not found")])
def test_unavailable_accounting_is_reported_not_waited_for(fake_bin, monkeypatch, sacct, words):
    monkeypatch.setattr(slurm_backend, "TIMEOUT_S", 1)
    fake_bin(squeue=SQUEUE, **({"sacct": sacct} if sacct else {}))
    if sacct is None:  # no sacct anywhere on PATH: only the fake squeue's folder (the fakes need no PATH)
        monkeypatch.setenv("PATH", os.environ["PATH"].split(os.pathsep)[0])
    view = status.scheduler_view([submission(["a", "b", "c", "d"])])
    assert view.states["12_1"] == "RUNNING" and view.states["12_0"] == "UNKNOWN"
    assert len(view.notes) == 1 and "sacct unavailable" in view.notes[0] and words in view.notes[0]


def test_cancel_only_active_jobs(fake_bin):
    folder = fake_bin(squeue=SQUEUE, sacct=SACCT_OK, scancel=SCANCEL)
    sub = submission(["a", "b", "c", "d"])
    done, problems = status.cancel([sub])
    assert done == ["12_1", "12_2"] and problems == []
    done, _ = status.cancel([sub], only={"12_2"})
    assert done == ["12_2"]
    assert (folder / "scancel.args").read_text().splitlines() == ["12_1 12_2", "12_2"]


def test_sweep_status_with_hanging_sacct(tmp_path, fake_bin, monkeypatch, capsys):
    monkeypatch.setattr(slurm_backend, "TIMEOUT_S", 1)
    fake_bin(squeue=SQUEUE, sacct=SACCT_HANGS)
    path = tmp_path / "s.toml"
    path.write_text(textwrap.dedent("""
        name = "s"
        experiment = "cluster-check"
        [grid]
        seed = [0, 1, 2, 3, 4]
    """))
    sweep = load_sweep(path)
    ids = [p.point_id for p in expand(sweep)]
    record(jobs_dir_for(sweep.store), submission(ids))
    assert len(load(jobs_dir_for(sweep.store))) == 1
    main(["sweep", "status", str(path)])
    out = capsys.readouterr().out
    # 12_1 running, 12_2 pending; 12_0, 13 and the never-submitted fifth point are missing
    assert "running   1" in out and "pending   1" in out and "missing   3" in out
    assert "note: sacct unavailable (sacct did not answer within 1 s)" in out
