"""``diffbrain train``: a tiny run writes its dataset and figures, resumes, simulates; bad input exits 2 untouched."""

import numpy as np
import pytest
import xarray as xr
from cli_runner import run_cli

from analysis.paths import local_store
from diffbrain.network.config import METHOD_DEFAULTS

TINY = ["--n-rec", "20", "--tau-neu", "30", "--tau-a", "100", "--ff-scale", "6", "--rec-scale", "2",
        "--t-interval", "5", "--t-cue", "10", "--t-delay", "10", "--t-recall", "10", "--num-cue", "3",
        "--n-per-group", "6", "--cue-rate", "80", "--noise-rate", "20", "--iterations", "4", "--batch-size", "4",
        "--test-batch", "4", "--checkpoint-every", "2", "--snapshot-every", "2", "--hist-bins", "8", "--lr", "0.01"]


def snapshot(directory):
    return {p.relative_to(directory): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


def test_train_writes_dataset_and_figures_then_resumes_and_simulates(tmp_path, capsys):
    # '#', '?', ';' are plain characters of a path (zarr would read a string as a URL and cut it there),
    # and the sibling folder "run" must never be touched
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "notes.txt").write_text("mine")
    out = tmp_path / "run#1?x;y é"
    code, stdout, stderr = run_cli(["train", *TINY, "--method", "expsm_diag", "--etrace-decay", "0.95",
                                    "--conn-method", "rand", "--conn-prob", "0.4", "--seed", "3",
                                    "--grad-check-every", "3", "--out", str(out)], capsys)
    assert code == 0, stderr
    ds = xr.open_zarr(local_store(out / "run.zarr"), consolidated=False)
    assert ds.attrs["method"] == "expsm_diag" and ds.attrs["conn_method"] == "rand" and ds.sizes["iteration"] == 4
    # the settings it ran with: given (lr, etrace_decay) or the method's defaults (recorded as such)
    assert float(ds["train_lr"]) == pytest.approx(0.01) and float(ds["train_etrace_decay"]) == pytest.approx(0.95)
    defaults = METHOD_DEFAULTS["expsm_diag"]
    assert str(ds["train_lr_schedule"].values) == defaults["lr_schedule"]
    assert int(ds["train_warmup"]) == defaults["warmup"]
    assert float(ds["train_readout_lr_scale"]) == pytest.approx(defaults["readout_lr_scale"])
    assert ds.attrs["method_defaults_used"] == "readout_lr_scale,lr_schedule,warmup,clip_norm"
    # gradient checks before iterations 0 and 3, per projection; the readout's gradient is exact
    assert list(ds["grad_check"].values) == [0, 3] and list(ds["projection"].values) == ["ff", "exc", "inh", "readout"]
    cosine = ds["grad_cosine"].values
    assert cosine.shape == (2, 4) and np.isfinite(cosine).all() and (cosine[:, 3] > 0.999).all()
    assert np.isfinite(ds["grad_norm_ratio"].values).all()
    figures = sorted(p.name for p in (out / "figures").iterdir())
    assert figures == ["loss_accuracy.png", "raster_membrane.png", "weight_histograms.png"]
    assert all((out / "figures" / f).read_bytes()[:4] == b"\x89PNG" for f in figures)
    assert (out / "checkpoints" / "train-network.npz").exists()
    assert "test accuracy" in stdout and "figure:" in stdout
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporaries left

    # the same command again: the checkpoint says all iterations are done; same trajectory
    code, stdout, stderr = run_cli(["train", *TINY, "--method", "expsm_diag", "--etrace-decay", "0.95",
                                    "--conn-method", "rand", "--conn-prob", "0.4", "--seed", "3",
                                    "--grad-check-every", "3", "--out", str(out)], capsys)
    assert code == 0, stderr
    again = xr.open_zarr(local_store(out / "run.zarr"), consolidated=False)
    assert again.attrs["resumed_from_iteration"] == 4
    assert (again["loss"].values == ds["loss"].values).all()
    assert (again["grad_cosine"].values == ds["grad_cosine"].values).all()

    # simulate the trained network
    sim_out = tmp_path / "sim"
    code, stdout, stderr = run_cli(["train", *TINY, "--method", "expsm_diag", "--conn-method", "rand",
                                    "--conn-prob", "0.4", "--seed", "3", "--mode", "sim", "--load-checkpoint",
                                    str(out / "checkpoints" / "train-network.npz"), "--out", str(sim_out)], capsys)
    assert code == 0, stderr
    assert "skipped figure loss_accuracy.png" in stdout
    sim = xr.open_zarr(local_store(sim_out / "run.zarr"), consolidated=False)
    assert sim.sizes["iteration"] == 0
    assert float(sim["test_loss"]) == pytest.approx(float(again["test_loss"]), rel=1e-5)
    assert [p.name for p in (tmp_path / "run").iterdir()] == ["notes.txt"]


@pytest.mark.parametrize(
    "flags, field",
    [
        (["--method", "sgd"], "method"),
        (["--conn-method", "ring"], "conn_method"),
        (["--n-rec", "4"], "n_rec"),
        (["--conn-method", "rand", "--conn-prob", "1.5"], "conn_prob"),
        (["--conn-method", "gaussian", "--conn-prob", "0"], "conn_prob"),
        (["--tau-syn", "-5"], "tau_syn"),
        (["--t-recall", "0.2"], "t_recall"),
        (["--mode", "sim", "--load-checkpoint", "/no/such/file.npz"], "load_checkpoint"),
        (["--n-rec", "2000000", "--conn-method", "dense"], "n_rec"),  # cannot fit: refused before --out exists
    ],
)
def test_bad_input_exits_2_with_one_line_and_writes_nothing(tmp_path, capsys, flags, field):
    out = tmp_path / "never"
    code, stdout, stderr = run_cli(["train", *TINY, *flags, "--out", str(out)], capsys)
    assert code == 2
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {field}:"), stderr
    assert not out.exists()


def test_help_shows_the_per_method_defaults(capsys):
    code, stdout, _ = run_cli(["train", "--help"], capsys)
    assert code == 0
    text = " ".join(stdout.split())
    for name in ("lr", "readout_lr_scale", "lr_schedule", "warmup", "clip_norm", "etrace_decay"):
        listed = ", ".join(f"{m} {METHOD_DEFAULTS[m][name]}" for m in ("bptt", "diag", "expsm_diag"))
        assert f"[default: {listed}]" in text, name


def test_checkpoint_of_another_configuration_exits_2_nothing_overwritten(tmp_path, capsys):
    out = tmp_path / "run"
    args = ["train", *TINY, "--iterations", "2", "--out", str(out)]
    code, _, stderr = run_cli(args, capsys)
    assert code == 0, stderr
    before = snapshot(out)
    code, _, stderr = run_cli([*args, "--n-rec", "25"], capsys)
    assert code == 2
    assert stderr.count("\n") == 1 and "error: checkpoint:" in stderr and "n_rec" in stderr
    assert snapshot(out) == before
