"""``executor = auto`` decides quickly when no controller answers (a short, cached probe that says why), and
``sweep plan --script`` prints submitit's own sbatch script without submitting (no controller needed)."""

import os
import shutil
import socket
import stat
import textwrap

import pytest
from cli_runner import run_cli

from slurm import backends, probe

SWEEP = """
name = "scr"
experiment = "cluster-check"
store = "out/scr.zarr"
[params]
samples = 5
[grid]
seed = [0, 1, 2, 3, 4]
[resources]
partition = "cpu"
timeout_min = 7
array_parallelism = 2
[[resources.override]]
match = {{ seed = [4] }}
partition = "gpu"
gpus_per_node = 1
mem_gb = 2
"""


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture()
def no_controller(tmp_path, monkeypatch):
    """A slurm.conf whose controller is a closed local port (a laptop with the client but no cluster)."""
    conf = tmp_path / "slurm.conf"
    conf.write_text(f"ClusterName=none\nSlurmctldHost=laptop(127.0.0.1)\nSlurmctldPort={closed_port()}\n")
    monkeypatch.setenv("SLURM_CONF", str(conf))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return conf


def fake_client(tmp_path, monkeypatch, sinfo: str):
    """sbatch and sinfo stand-ins first on PATH; sinfo records each call."""
    folder = tmp_path / "bin"
    folder.mkdir()
    for name, text in {"sbatch": "#!/bin/sh\nexit 1\n", "sinfo": sinfo}.items():
        path = folder / name
        path.write_text(text)
        path.chmod(path.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{folder}{os.pathsep}{os.environ['PATH']}")
    return folder


def test_controllers_are_read_from_slurm_conf():
    text = textwrap.dedent("""
        # comment
        SlurmctldHost=head1(10.0.0.1)
        SlurmctldHost=head2  # backup
        SlurmctldPort=7000-7003
    """)
    assert probe.controllers(text) == [("10.0.0.1", 7000), ("head2", 7000)]
    assert probe.controllers("ControlMachine=old\nControlAddr=10.1.1.1\n") == [("10.1.1.1", probe.DEFAULT_PORT)]
    assert probe.controllers("NodeName=n CPUs=2\n") == []


def test_dead_controller_is_refused_without_asking_sinfo_and_cached(tmp_path, monkeypatch, no_controller):
    fake_client(tmp_path, monkeypatch, "#!/bin/sh\necho called >> \"$(dirname \"$0\")/sinfo.calls\"\nsleep 30\n")
    first = probe.probe()
    assert not first.answers and "connection refused" in first.why and str(no_controller) in first.why
    assert not (tmp_path / "bin" / "sinfo.calls").exists()  # no 5-30 s sinfo timeout
    again = probe.probe()
    assert again.answers is False and again.why.endswith("(cached)")
    no_controller.write_text(no_controller.read_text() + "# edited\n")  # a rewritten slurm.conf: asked afresh
    os.utime(no_controller, ns=(1, 1))
    assert not probe.probe().why.endswith("(cached)")
    backend, why = backends.choose("auto")
    assert backend.name == "local" and why.startswith("not slurm: no SLURM controller answers at 127.0.0.1:")


def test_listening_controller_is_confirmed_by_sinfo(tmp_path, monkeypatch, no_controller):
    fake_client(tmp_path, monkeypatch, "#!/bin/sh\necho cpu\n")
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        no_controller.write_text(f"SlurmctldHost=head(127.0.0.1)\nSlurmctldPort={server.getsockname()[1]}\n")
        found = probe.probe_now()
    assert found.answers and found.why == "sinfo answers"
    fake_client_failing = tmp_path / "bin" / "sinfo"
    fake_client_failing.write_text("#!/bin/sh\necho 'sinfo: error: Invalid user' >&2\nexit 1\n")
    no_controller.write_text("NodeName=n\n")  # configless: sinfo alone decides
    found = probe.probe_now()
    assert not found.answers and "Invalid user" in found.why


def test_no_client_on_path(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert probe.probe() == probe.Probe(False, "sbatch/sinfo are not on PATH")


def test_plan_says_why_auto_chose_local(tmp_path, capsys, no_controller):
    path = tmp_path / "s.toml"
    path.write_text(textwrap.dedent(SWEEP.format()).replace('partition = "cpu"\n', "", 1))
    code, out, err = run_cli(["sweep", "plan", path], capsys)
    assert code == 0, err
    if shutil.which("sbatch") and shutil.which("sinfo"):
        assert "on the local executor (auto: not slurm: no SLURM controller answers at 127.0.0.1:" in out
    else:
        assert "on the local executor (auto: not slurm: sbatch/sinfo are not on PATH)" in out


def test_plan_script_shows_directives_and_submits_nothing(tmp_path, capsys, no_controller):
    """A laptop preparing a sweep for the cluster: no controller answers, --executor slurm still prints the
    scripts (one per array, with the resources' directives) and writes nothing."""
    path = tmp_path / "s.toml"
    path.write_text(textwrap.dedent(SWEEP.format()))
    code, out, err = run_cli(["sweep", "plan", path, "--executor", "slurm", "--script"], capsys)
    assert code == 0, err
    first, second = out.split("# ---- array")[1:]
    assert first.startswith(" 1: 4 tasks") and second.startswith(" 2: 1 task ")
    for line in ("#SBATCH --partition=cpu", "#SBATCH --time=7", "#SBATCH --array=0-3%2", "#SBATCH --job-name=scr",
                 "#SBATCH --cpus-per-task=1", "-m submitit.core._submit", "PYTHONSAFEPATH=1",
                 f"export PYTHONPATH={tmp_path / 'out' / 'scr.jobs' / 'code'}/"):
        assert line in first, (line, first)
    assert "--gpus-per-node" not in first and "--array" not in second  # a single task is no array
    for line in ("#SBATCH --partition=gpu", "#SBATCH --gpus-per-node=1", "#SBATCH --mem=2GB"):
        assert line in second, (line, second)
    assert not (tmp_path / "out").exists()  # no store, no jobs folder: nothing submitted


def test_plan_script_of_the_local_executor_says_it_sends_none(tmp_path, capsys, no_controller):
    path = tmp_path / "s.toml"
    path.write_text(textwrap.dedent(SWEEP.format()))
    code, out, err = run_cli(["sweep", "plan", path, "--executor", "local", "--script"], capsys)
    assert code == 0 and "array 1: the local executor sends no batch script" in out and "#SBATCH" not in out


def test_submit_says_why_auto_chose_local(tmp_path, capsys, no_controller):
    path = tmp_path / "s.toml"
    path.write_text('name = "a"\nexperiment = "cluster-check"\nstore = "a.zarr"\n[grid]\nseed = [0]\n')
    code, out, err = run_cli(["sweep", "submit", path, "--wait"], capsys)
    assert code == 0 and "submitted 1 of 1 points to local" in out, out + err
    assert "note: executor auto chose local: not slurm: " in err


def test_plan_script_shows_nodes_and_tasks_and_refuses_what_cannot_run(tmp_path, capsys, no_controller):
    """Several processes per task: ``--nodes``/``--ntasks-per-node`` in the script (srun starts them); a GPU
    count that is not one per process, or an executor that cannot start several, is refused at plan (exit 2)."""
    path = tmp_path / "s.toml"
    path.write_text(textwrap.dedent(SWEEP.format()).split("[[resources.override]]")[0])
    many = ["--set", "nodes=2", "--set", "tasks_per_node=2"]
    code, out, err = run_cli(["sweep", "plan", path, "--executor", "slurm", "--script", *many], capsys)
    assert code == 0, err
    assert "#SBATCH --nodes=2" in out and "#SBATCH --ntasks-per-node=2" in out and "\nsrun " in out
    assert "2 nodes x 2 tasks" in out
    code, out, err = run_cli(["sweep", "plan", path, "--executor", "slurm", *many, "--set", "gpus_per_node=1"],
                             capsys)
    assert code == 2 and "2 processes per node for 1 GPUs per node" in err and "tasks_per_node = 1" in err
    code, out, err = run_cli(["sweep", "plan", path, "--executor", "local", *many], capsys)
    assert code == 2 and "resources.nodes: the local executor runs each task as one process, not 4" in err, err
    assert not (tmp_path / "out").exists()
