"""The outcome of one fit, whatever the method: best parameters, losses, budget used and timing."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

LOSS_UNITS = {"potential": "mV", "spike": "1"}


@dataclass
class FitResult:
    """Best parameters and how they were found.

    ``loss`` is the reported loss of the best parameters: voltage RMSE (mV) for potential targets, the
    exact gamma-factor loss for spike targets. ``start_loss`` holds it for every start (gradient) or for
    the best candidate of every population (baselines). ``progress_*`` is the best objective-derived loss
    so far (RMSE, or the smooth gamma loss, an upper bound of the exact one) against elapsed seconds.
    """

    model: str
    target: str
    method: str
    names: tuple[str, ...]
    best: np.ndarray  # [P] model units
    loss: float
    start_params: np.ndarray  # [S, P]
    start_loss: np.ndarray  # [S]
    evaluations: int
    seconds: float
    seed: int
    progress_seconds: np.ndarray
    progress_loss: np.ndarray
    info: dict = field(default_factory=dict)

    @property
    def params(self) -> dict[str, float]:
        return {n: float(v) for n, v in zip(self.names, self.best, strict=True)}

    @property
    def loss_units(self) -> str:
        return LOSS_UNITS[self.target]

    def summary(self) -> dict:
        """JSON-ready record (the CLI's fit.json)."""
        return {
            "model": self.model,
            "target": self.target,
            "method": self.method,
            "params": self.params,
            "loss": None if not math.isfinite(self.loss) else float(self.loss),
            "loss_units": self.loss_units,
            "evaluations": int(self.evaluations),
            "seconds": float(self.seconds),
            "seed": int(self.seed),
        }


class Progress:
    """Best loss so far against elapsed wall seconds, and an optional ``report(fraction, message)`` hook."""

    def __init__(self, report: Callable[[float, str], None] | None = None, to_loss: Callable = lambda x: x):
        self.start = time.perf_counter()
        self.seconds: list[float] = []
        self.losses: list[float] = []
        self.best = math.inf
        self.report = report
        self.to_loss = to_loss

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def record(self, objective_values, fraction: float, what: str = "") -> None:
        values = np.asarray(objective_values, dtype=np.float64).ravel()
        finite = values[np.isfinite(values)]
        if finite.size:
            self.best = min(self.best, float(self.to_loss(finite.min())))
        self.seconds.append(self.elapsed())
        self.losses.append(self.best)
        if self.report is not None:
            self.report(min(max(fraction, 0.0), 1.0), f"{what} best loss {self.best:.4g}")

    def tick(self, fraction: float, what: str = "") -> None:
        """Report progress without recording a loss."""
        if self.report is not None:
            self.report(min(max(fraction, 0.0), 1.0), what)

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        return np.asarray(self.seconds), np.asarray(self.losses)


def objective_to_loss(target: str) -> Callable[[float], float]:
    """Objective value -> reported-loss scale (MSE -> RMSE; the gamma loss is kept)."""
    if target == "potential":
        return lambda x: math.sqrt(max(float(x), 0.0))
    return float
