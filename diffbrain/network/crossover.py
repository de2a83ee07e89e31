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


# Measured with bench/crossover.py on the 2-core development machine while it was shared (load 7-12),
# each pair back to back: rand connectivity, dt 1 ms. simulation: the GIF network alone, one trial,
# forward-only event kernel; bptt: batch 16, T 100, the native event kernels with their own gradient.
CROSSOVER: dict[str, Crossover] = {
    # dense/event time per step, densities 0.01 / 0.05 / 0.2: n 100: 0.58 / 1.76 / 0.59 (noise at ~10 us);
    # n 400: 2.2 / 1.9 / 0.48; n 1600: 9.7 / 15 / 22; n 6400: 64 / 36 / 48
    "simulation": Crossover(((100, 0.0), (400, 0.05), (1600, 0.2), (6400, 0.2)), "bench/crossover.py, 2-core CPU"),
    # n 100: 0.59 / 2.1 / 0.81 (sub-millisecond steps: dense kept); n 400: 3.4 / 2.0 / 0.64;
    # n 1600: 3.4 / 4.8 / 0.33; n 6400: 6.2 / 2.7 / ~0.5 (event 0.87 s per time step against dense's 0.45)
    "bptt": Crossover(((100, 0.0), (400, 0.05), (1600, 0.05), (6400, 0.05)), "bench/crossover.py, 2-core CPU"),
    # diag (the project's chunked D-RTRL: traces on the non-zeros against masked dense traces), batch 16, T 100,
    # load 6.5-11, dense/event time per step at densities 0.01 / 0.05 / 0.2: n 400: 1.38 / 0.39 / 0.11;
    # n 1600: 1.58 (dense 0.32 s per time step at load 11, 0.12 s at load 6.5 a minute later: a tie within
    # the noise) / 0.20 / not run; n 200 (gradient only, batch 16): 1.29 at 0.02, 0.23 at 0.2 (batch 32).
    # Dense traces of 6400 neurons do not fit (~73 GB at batch 16): the last row holds beyond.
    "diag": Crossover(((200, 0.02), (400, 0.01), (1600, 0.01)), "bench/crossover.py, 2-core CPU (issue 11)"),
    # expsm_diag (braintrace's ES-D-RTRL, braintrace.sparse_matmul on the CSR), batch 16, T 100, load 6.2-6.9,
    # dense/event at 0.01 / 0.05: n 400: 0.83 / 0.88; n 1600: 0.93 / 0.52 (dense won everywhere measured).
    # The 6400 row is not measured: extrapolated from the trend at 0.01 (dense's n^2 work per step grows
    # past the CSR product's), so 10^5-neuron networks stay event-driven.
    "expsm_diag": Crossover(((400, 0.0), (1600, 0.0), (6400, 0.01)),
                            "bench/crossover.py, 2-core CPU (issue 11); 6400 extrapolated"),
}


def choose_impl(method: str, n_rec: int, density: float) -> str:
    """``event`` where the table says the event-driven operator wins for ``method``, else ``masked_dense``."""
    table = CROSSOVER.get(method, CROSSOVER["bptt"])
    return "event" if table.sparse_wins(n_rec, density) else "masked_dense"
