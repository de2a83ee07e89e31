"""The commands that compute keep their compiled programs in a persistent cache; a figure's long lines are cut
to their envelope."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np

from analysis.run_figures import envelope
from sweeps.cli import compile_cache


def test_cache_folder_follows_the_setting(tmp_path):
    assert compile_cache.cache_dir({"XDG_CACHE_HOME": str(tmp_path)}) == tmp_path / "diffbrain" / "jax"
    assert compile_cache.cache_dir({"DIFFBRAIN_COMPILATION_CACHE": str(tmp_path / "c")}) == tmp_path / "c"
    assert compile_cache.cache_dir({"DIFFBRAIN_COMPILATION_CACHE": "off"}) is None
    env = {"DIFFBRAIN_COMPILATION_CACHE": str(tmp_path / "c"), "JAX_COMPILATION_CACHE_DIR": "/elsewhere"}
    assert compile_cache.enable(env) is None and env["JAX_COMPILATION_CACHE_DIR"] == "/elsewhere"  # user's wins


SECOND_RUN = """
import sys, jax, jax.monitoring
hits = []
jax.monitoring.register_event_listener(lambda event, **kw: hits.append(event))
from sweeps.cli import main
try:
    main(sys.argv[1:])
except SystemExit:
    pass
prefix = "/jax/compilation_cache/"
print("HITS", hits.count(prefix + "cache_hits"), "MISSES", hits.count(prefix + "cache_misses"))
"""


def test_second_simulate_reads_the_programs_the_first_wrote(tmp_path):
    cache = tmp_path / "cache"
    env = {**os.environ, "DIFFBRAIN_COMPILATION_CACHE": str(cache)}
    env.pop("JAX_COMPILATION_CACHE_DIR", None)
    args = ["simulate", "gif", "--duration", "50", "--out", str(tmp_path / "t.npz")]
    first = [sys.executable, "-c", "from sweeps.cli import main; main()", *args]
    subprocess.run(first, env=env, check=True, capture_output=True, timeout=300)
    assert any(cache.iterdir()), "the first run wrote no compiled program"
    # the second run imports JAX before the command starts: the cache is then set through jax.config
    second = subprocess.run([sys.executable, "-c", SECOND_RUN, *args], env=env, check=True, capture_output=True,
                            text=True, timeout=300)
    counts = second.stdout.split("HITS")[-1].split()
    hits, misses = int(counts[0]), int(counts[2])
    assert hits >= 1 and misses == 0, second.stdout


def test_envelope_keeps_every_extreme_of_a_long_line():
    t = np.arange(100_000) * 0.01
    v = np.sin(t) + (np.arange(t.size) % 7919 == 0) * 50.0  # narrow spikes the plot must not lose
    tt, vv = envelope(t, v, max_points=2000)
    assert vv.size <= 2000 + 100 and np.all(np.diff(tt) >= 0)
    assert vv.max() == v.max() and vv.min() == v.min()
    assert np.count_nonzero(vv > 10) == np.count_nonzero(v > 10)
    short = np.arange(10.0)
    assert envelope(short, short)[1] is short
