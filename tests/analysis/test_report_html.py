"""``diffbrain report STORE --html``: one self-contained ``report.html`` that a real headless Chromium opens
offline without console errors, its screenshot showing the figures (the Debian ``chromium`` package, which
``.ci/run`` installs)."""

import os
import re
import shutil
import subprocess

import matplotlib.image
import numpy as np
import pytest
from cli_runner import run_cli
from test_report import A_EVENTS, B_EVENTS, make_store, training_point

from analysis.html_report import REPORT_HTML

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def html_report(tmp_path_factory):
    folder = tmp_path_factory.mktemp("html")
    a = training_point(A_EVENTS, [0, 4, 9], 1.0, 100, 3, [0.5, 0.6, 0.7, 0.8],
                       [[1, 2, 1], [2, 0, 2]], [[2, 2, 0], [2, 2, 0]], [0.16, 0.15])
    b = training_point(B_EVENTS, [0, 4], 0.5, 60, 2, [0.5, 0.7],
                       [[0, 4, 0], [0, 2, 2]], [[0, 0, 4], [4, 0, 0]], [0.15, 0.13])
    store = make_store(folder / "train.zarr", "train-network", {
        "pa": ({"method": "bptt", "n_rec": 3, "seed": 0}, a),
        "pb": ({"method": "diag", "n_rec": 2, "seed": 1}, b),
    })
    return folder / "report", store


def test_report_html_is_self_contained(html_report, capsys):
    out, store = html_report
    code, stdout, err = run_cli(["report", store, "--out", out, "--html"], capsys)
    assert code == 0 and "report.html" in stdout, stdout + err
    page = (out / REPORT_HTML).read_text()
    figures = sorted(p.name for p in out.glob("*.png"))
    assert figures and page.count('src="data:image/png;base64,') == len(figures)
    assert not re.search(r'(src|href)="(https?:|file:|//)', page) and "<script" not in page
    summary = (out / "summary.md").read_text()
    assert "Provenance" in page and "git commit" in page and "Skipped" in summary and "Skipped" in page
    for name in figures:  # the summary's links lead to the embedded figures
        assert f'href="#fig-{name.replace(".", "-").replace("_", "-")}"' in page


@pytest.mark.skipif(CHROMIUM is None and not os.environ.get("CI"), reason="no chromium (apt-get install chromium)")
def test_report_html_in_headless_chromium(html_report, tmp_path, capsys):
    out, store = html_report
    if not (out / REPORT_HTML).exists():
        assert run_cli(["report", store, "--out", out, "--html"], capsys)[0] == 0
    shot = tmp_path / "shot.png"
    keep = os.environ.get("DIFFBRAIN_KEEP_SHOT")
    done = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--enable-logging=stderr",
                           "--v=0", "--hide-scrollbars", "--window-size=1280,5000", f"--screenshot={shot}",
                           (out / REPORT_HTML).as_uri()], capture_output=True, text=True, timeout=180,
                          env={**os.environ, "HOME": str(tmp_path)})
    log = done.stdout + done.stderr
    assert done.returncode == 0 and shot.exists(), log[-3000:]
    console = [line for line in log.splitlines() if "CONSOLE" in line or "Uncaught" in line or "net::ERR" in line]
    assert console == [], console
    pixels = matplotlib.image.imread(shot)[..., :3]
    colour = (pixels.max(axis=-1) - pixels.min(axis=-1)) > 0.2  # figures' lines and bars (text is grey)
    assert pixels.std() > 0.05 and colour.sum() > 20000, (pixels.std(), colour.sum())  # not blank
    # the same page without its figures has (almost) no colour: the colour is the figures'
    bare = tmp_path / "bare.html"
    bare.write_text(re.sub(r"<figure.*?</figure>", "", (out / REPORT_HTML).read_text(), flags=re.S))
    subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                    "--window-size=1280,5000", f"--screenshot={tmp_path / 'bare.png'}", bare.as_uri()],
                   capture_output=True, timeout=180, env={**os.environ, "HOME": str(tmp_path)}, check=True)
    bare_pixels = matplotlib.image.imread(tmp_path / "bare.png")[..., :3]
    assert ((bare_pixels.max(axis=-1) - bare_pixels.min(axis=-1)) > 0.2).mean() < colour.mean() / 10
    assert np.isfinite(pixels).all()
    if keep:
        shutil.copy(shot, keep)
