"""Test-wide settings: CPU JAX, Agg figures, quiet progress."""

import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("DIFFBRAIN_NO_PROGRESS", "1")
