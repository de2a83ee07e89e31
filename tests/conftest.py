"""Test-wide settings: CPU JAX, Agg figures, quiet progress."""

import os
import tempfile

os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("DIFFBRAIN_NO_PROGRESS", "1")
os.environ.setdefault("DIFFBRAIN_COMPILATION_CACHE", "off")  # hermetic: tests/cli/test_compile_cache.py turns it on
# the memory planner compiles proxies (seconds each): off, except in tests/sweeps/test_memory_plan.py
os.environ.setdefault("DIFFBRAIN_MEMORY_PLAN", "off")
# and never the user's ~/.cache (a point records the planner's figure from it)
os.environ.setdefault("DIFFBRAIN_PLAN_CACHE", os.path.join(tempfile.gettempdir(), f"diffbrain-plans-{os.getpid()}"))

# The session fixture `slurm_cluster` (a real one-node SLURM; see tests/cluster/README.md).
from cluster.fixture import slurm_cluster  # noqa: E402,F401
