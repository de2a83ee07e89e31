"""What a computation may use besides its parameters: :class:`RunContext` (no JAX imported here)."""

from __future__ import annotations

import resource
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


def peak_rss_bytes() -> int:
    """Peak resident memory of this process so far (Linux reports KiB, macOS bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)


@dataclass
class RunContext:
    """What an experiment may use besides its parameters. It knows nothing of SLURM or stores.

    ``checkpoint_dir`` survives requeues of the same point (None: no checkpointing);
    ``progress(fraction, message)`` reports progress; ``devices`` are the JAX devices to use
    (empty: the experiment uses ``jax.devices()``). ``writes_checkpoints``: False on every process but the
    first when several processes compute the point together (they read the first one's checkpoint, so that
    all resume at the same iteration, and never write it).
    """

    seed: int = 0
    point_id: str = "local"
    checkpoint_dir: Path | None = None
    progress: Callable[[float, str], None] | None = None
    devices: tuple = ()
    writes_checkpoints: bool = True

    def report(self, fraction: float, message: str = "") -> None:
        if self.progress is not None:
            self.progress(float(fraction), message)
