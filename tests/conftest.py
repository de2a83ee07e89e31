"""Test-wide settings: CPU JAX, Agg figures, quiet progress."""

import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("DIFFBRAIN_NO_PROGRESS", "1")
os.environ.setdefault("DIFFBRAIN_COMPILATION_CACHE", "off")  # hermetic: tests/cli/test_compile_cache.py turns it on
# the memory planner compiles proxies (seconds each): off, except in tests/sweeps/test_memory_plan.py
os.environ.setdefault("DIFFBRAIN_MEMORY_PLAN", "off")

# The session fixture `slurm_cluster` (a real one-node SLURM; see tests/cluster/README.md).
from cluster.fixture import slurm_cluster  # noqa: E402,F401
