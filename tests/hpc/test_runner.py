"""The point runner: results, failures, skipping, fresh processes, provenance, and a local requeue."""

import os
import signal
import threading
import time

import numpy as np
import psutil
import pytest
import xarray as xr

from analysis.store import create_store, point_states, read_point_attrs
from diffbrain.experiments import get
from hpc.runner import INTERRUPTED, Pack, PackRunner, PointTask, run_pack, run_point_fresh


def check_params(**kw):
    return get("cluster-check").validate(kw)


@pytest.fixture()
def store(tmp_path):
    return str(create_store(tmp_path / "s.zarr", {"name": "t", "experiment": "cluster-check"}, {"created": "x"}))


def pack_of(store, tmp_path, points, **kw):
    tasks = tuple(PointTask(pid, "cluster-check", params) for pid, params in points)
    return Pack(store, str(tmp_path / "s.jobs"), tasks, **kw)


def read(store, pid):
    return xr.open_zarr(store, group=f"points/{pid}", consolidated=False).compute()


def test_pack_records_results_and_failures_and_goes_on(store, tmp_path):
    points = [("ok1", check_params(seed=5, value=2.0, samples=6)), ("boom", check_params(fail=True, seed=1)),
              ("nan", check_params(return_nan=True, seed=2)), ("ok2", check_params(seed=6, seconds=0.3))]
    outcome = run_pack(pack_of(store, tmp_path, points))
    assert outcome == {"ok1": "complete", "boom": "failed", "nan": "failed", "ok2": "complete"}
    ok = read(store, "ok1")
    assert float(ok["value"]) == 2.0
    np.testing.assert_array_equal(ok["noise"].values,  # the seed reached the experiment
                                  np.random.default_rng(5).standard_normal(6).astype(np.float32))
    attrs = read_point_attrs(store, "ok1")
    assert attrs["seed"] == 5 and attrs["params"] == points[0][1] and attrs["error"] is None
    assert attrs["host"] and attrs["devices"] and attrs["peak_rss_bytes"] > 10**6
    assert attrs["started"] < attrs["ended"] and attrs["experiment"] == "cluster-check"
    assert read_point_attrs(store, "ok2")["wall_seconds"] >= 0.3
    boom = read_point_attrs(store, "boom")
    assert "RuntimeError: cluster-check asked to fail" in boom["error"] and "Traceback" in boom["error"]
    nan = read_point_attrs(store, "nan")
    assert nan["error"] == "value is not finite (1 of 1 values are NaN or infinite)"
    assert np.isnan(read(store, "nan")["value"])  # the NaN result is kept for a look, marked failed
    assert not (tmp_path / "s.jobs" / "checkpoints" / "ok1").exists()  # checkpoints go once a point is written


def test_rerun_skips_complete_and_failed_unless_retried(store, tmp_path):
    points = [("a", check_params(seed=1)), ("b", check_params(fail=True))]
    run_pack(pack_of(store, tmp_path, points))
    first = {pid: read_point_attrs(store, pid)["started"] for pid, _ in points}
    assert run_pack(pack_of(store, tmp_path, points)) == {"a": "skipped", "b": "skipped"}
    assert {pid: read_point_attrs(store, pid)["started"] for pid, _ in points} == first
    retry = pack_of(store, tmp_path, points, retry_failed_before="9999")
    assert run_pack(retry) == {"a": "skipped", "b": "failed"}
    assert read_point_attrs(store, "b")["started"] > first["b"]
    later = read_point_attrs(store, "b")["started"]
    assert run_pack(pack_of(store, tmp_path, points, retry_failed_before=later)) == {"a": "skipped", "b": "skipped"}


def test_fresh_process_point_and_its_crash(store, tmp_path):
    work = str(tmp_path / "s.jobs")
    assert run_point_fresh(store, work, PointTask("fresh", "cluster-check", check_params(seed=3))) == "complete"
    attrs = read_point_attrs(store, "fresh")
    assert attrs["peak_rss_bytes"] > 10**6 and attrs["seed"] == 3

    def kill_child(sig):
        deadline = time.time() + 60
        while time.time() < deadline:
            kids = [p for p in psutil.Process().children() if "hpc.point_process" in " ".join(p.cmdline())]
            if kids:
                time.sleep(1.0)
                os.kill(kids[0].pid, sig)
                return
            time.sleep(0.05)

    for pid, sig, expected in [("killed", signal.SIGKILL, "failed"), ("stopped", signal.SIGTERM, INTERRUPTED)]:
        killer = threading.Thread(target=kill_child, args=(sig,))
        killer.start()
        outcome = run_point_fresh(store, work, PointTask(pid, "cluster-check", check_params(seconds=60.0)))
        killer.join()
        assert outcome == expected
    assert "signal SIGKILL" in read_point_attrs(store, "killed")["error"]
    assert point_states(store)["killed"] == "failed" and "stopped" not in point_states(store)


def test_local_timeout_requeues_and_skips_complete_points(store, tmp_path):
    """submitit's local executor signals USR2 `signal_delay_s` before the limit: PackRunner checkpoints,
    the task restarts, and the second run skips the points the first one wrote."""
    import submitit

    # USR2 comes 25 s after each start. First run: p1 and p2 end by ~18 s, p3 would end at ~31 s (28 s of sleep
    # alone), so the signal stops p3. Second run: p3 alone ends by ~17 s. Every margin is 6 s or more.
    points = [("p1", check_params(seed=1)), ("p2", check_params(seed=2, seconds=14.0)),
              ("p3", check_params(seed=3, seconds=14.0))]
    executor = submitit.LocalExecutor(folder=tmp_path / "submitit", max_num_timeout=2)
    executor.update_parameters(timeout_min=0.75, signal_delay_s=20)
    job = executor.submit(PackRunner([pack_of(store, tmp_path, points)]))
    job.wait()
    assert point_states(store) == {"p1": "complete", "p2": "complete", "p3": "complete"}
    log = job.stdout()
    assert "Requeued job" in log or "Requeued" in job.stderr(), log
    assert log.count("p1 cluster-check starts") == 1 and log.count("p2 cluster-check starts") == 1
    assert log.count("p3 cluster-check starts") == 2  # interrupted once, then run to the end
    assert "p1 already in the store: skipped" in log and "p2 already in the store: skipped" in log
    assert read_point_attrs(store, "p1")["started"] < read_point_attrs(store, "p3")["started"]


def test_checkpoint_dir_survives_an_interrupted_run(store, tmp_path, monkeypatch):
    """A requeue signal stops a point half way (submitit raises SystemExit in the handler); the rerun finds
    what the point put in its checkpoint folder, and the folder goes once the point is written."""
    import hpc.runner as runner
    from diffbrain.experiments import Experiment

    seen = []

    def run(params, ctx):
        state = ctx.checkpoint_dir / "state.txt"
        seen.append(state.read_text() if state.exists() else None)
        if not state.exists():
            state.write_text("iteration 50")
            raise SystemExit(-1)
        return xr.Dataset({"loss": ((), np.float32(0.5))})

    experiment = Experiment("resumable", (), run)
    monkeypatch.setattr(runner.experiments, "get", lambda name: experiment)
    pack = Pack(store, str(tmp_path / "s.jobs"), (PointTask("p", "resumable", {"seed": 0}),))
    with pytest.raises(SystemExit):
        run_pack(pack)
    assert point_states(store) == {}  # nothing written: the point is still missing
    assert run_pack(pack) == {"p": "complete"}
    assert seen == [None, "iteration 50"]
    assert not (tmp_path / "s.jobs" / "checkpoints" / "p").exists()
