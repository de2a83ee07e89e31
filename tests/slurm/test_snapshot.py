"""Submissions freeze the code: the tasks import the toolkit from a copy made at submit in the jobs folder
(content-addressed), even when started from the source checkout; ``--no-snapshot`` opts out; the submission
and every point record which code they ran."""

import textwrap
from pathlib import Path

from cli_runner import run_cli

from analysis.store import read_point_attrs
from slurm import jobs as jobbook
from slurm import snapshot
from slurm.resources import jobs_dir_for
from sweeps.points import expand
from sweeps.spec import load_sweep

ROOT = Path(__file__).resolve().parents[2]  # the checkout (where an editable install imports from)
SWEEP = """
name = "frozen"
experiment = "cluster-check"
store = "{store}"
[params]
samples = 3
[grid]
seed = [0, 1]
[resources]
executor = "{executor}"
array_parallelism = 1
timeout_min = 5
"""


def write(tmp_path, executor="local"):
    path = tmp_path / "s.toml"
    path.write_text(textwrap.dedent(SWEEP.format(store=tmp_path / "f.zarr", executor=executor)))
    return path


def test_snapshot_is_content_addressed_and_complete(tmp_path):
    first, again = snapshot.snapshot_code(tmp_path), snapshot.snapshot_code(tmp_path)
    assert first == again and [p.name for p in (tmp_path / "code").iterdir()] == [first.digest]
    plan = snapshot.planned(tmp_path)  # what `plan --script` shows
    assert (plan.digest, plan.path) == (first.digest, first.path)
    copy = Path(first.path)
    for name, source in snapshot.package_dirs().items():
        files = sorted(p.relative_to(source) for p in source.rglob("*") if p.is_file() and "__pycache__" not in p.parts
                       and p.suffix not in (".pyc", ".pyo"))
        assert files == sorted(p.relative_to(copy / name) for p in (copy / name).rglob("*") if p.is_file())
    assert "PYTHONSAFEPATH=1" in snapshot.setup_line(first) and first.path in snapshot.setup_line(first)


def test_local_tasks_import_the_snapshot_even_from_the_checkout(tmp_path, capsys, monkeypatch):
    path = write(tmp_path)
    monkeypatch.chdir(ROOT)  # the tasks start here: without PYTHONSAFEPATH the checkout would come first
    code, out, err = run_cli(["sweep", "submit", path, "--wait"], capsys)
    assert code == 0, out + err
    sweep = load_sweep(path)
    (sub,) = jobbook.load(jobs_dir_for(sweep.store))
    assert sub.code["path"] == str((jobs_dir_for(sweep.store) / "code" / sub.code["digest"]).resolve())
    frozen = {"snapshot": sub.code["digest"], "path": sub.code["path"]}
    assert [read_point_attrs(sweep.store, p.point_id)["code"] for p in expand(sweep)] == [frozen, frozen]


def test_no_snapshot_imports_the_installed_toolkit(tmp_path, capsys):
    path = write(tmp_path)
    code, out, err = run_cli(["sweep", "submit", path, "--wait", "--no-snapshot"], capsys)
    assert code == 0, out + err
    sweep = load_sweep(path)
    (sub,) = jobbook.load(jobs_dir_for(sweep.store))
    assert sub.code == {"snapshot": None, "why": "--no-snapshot"}
    assert not (jobs_dir_for(sweep.store) / "code").exists()
    live = str(snapshot.package_dirs()["diffbrain"].parent)
    assert [read_point_attrs(sweep.store, p.point_id)["code"] for p in expand(sweep)] == \
           [{"snapshot": None, "path": live}] * 2


def test_in_process_backend_records_why_it_has_no_snapshot(tmp_path, capsys):
    path = write(tmp_path, executor="debug")
    code, out, err = run_cli(["sweep", "submit", path], capsys)
    assert code == 0, out + err
    (sub,) = jobbook.load(jobs_dir_for(load_sweep(path).store))
    assert sub.code == {"snapshot": None, "why": "runs in the submitting process"}
