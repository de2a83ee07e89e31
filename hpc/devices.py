"""The devices a point may use on this node: :class:`PointDevices`, the runner's ``RunContext.devices``.

JAX is imported only when an experiment looks at the devices (or has imported JAX itself), so a point that
never touches JAX never pays for importing it. On SLURM the granted GPUs are already all that JAX sees
(``CUDA_VISIBLE_DEVICES``). When several processes compute a point together (``jax.distributed``,
:mod:`hpc.distributed`) they are every process's devices (``jax.devices()``), so that a point's layout spans
all of them.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator, Sequence

from hpc.provenance import gpus


class PointDevices(Sequence):
    """The JAX devices a point may use, resolved on first use: this process's (``jax.local_devices()``), or every
    process's when several compute the point together."""

    def __init__(self):
        self._devices: tuple | None = None

    def _resolved(self) -> tuple:
        if self._devices is None:
            import jax

            self._devices = tuple(jax.devices() if jax.process_count() > 1 else jax.local_devices())
        return self._devices

    def __len__(self) -> int:
        return len(self._resolved())

    def __getitem__(self, index):
        return self._resolved()[index]

    def __iter__(self) -> Iterator:
        return iter(self._resolved())

    def __repr__(self) -> str:
        return f"PointDevices({list(self._devices) if self._devices is not None else 'not resolved yet'})"

    def describe(self) -> list[str]:
        """For the point record: the JAX devices when the point used JAX, else the CPUs and granted GPUs."""
        if self._devices is not None or "jax" in sys.modules:
            try:
                return [str(d) for d in self._resolved()]
            except RuntimeError:  # no backend could start
                pass
        return [f"cpu x{os.cpu_count()}"] + [f"gpu:{g}" for g in gpus()]
