"""The global stage of the gradient method: a space-filling screen of the unit box with the batched forward.

A Latin hypercube design (one point in each of ``size`` strata of every parameter) is evaluated in
batches of SCREEN_BATCH candidates, one vmapped forward each (the same compiled program for every
batch), and the best loss so far is recorded after every batch: the loss-vs-time curve of a gradient fit
starts with the first batch. The screen's size is capped by a share of the evaluation budget.
"""

from __future__ import annotations

import numpy as np

# Candidates per vmapped forward call: the baselines' default population, so that a screen and a baseline of one
# problem share one compiled program (on 2 CPU cores the cost per candidate changes little above ~16).
SCREEN_BATCH = 20
SCREEN_SHARE = 0.25  # at most this share of the budget (forward-equivalents) goes to the screen
SCREEN_MIN, SCREEN_MAX = 200, 4000  # the screen's size when the budget allows


def screen_size(budget: float, starts: int, share: float = SCREEN_SHARE) -> int:
    """Candidates screened: whole batches, ``share`` of ``budget`` but at least SCREEN_MIN (never more than half the
    budget) and at most SCREEN_MAX, and at least one per polished start."""
    budget = float(budget)
    cap = min(float(SCREEN_MAX), max(min(float(SCREEN_MIN), 0.5 * budget), share * budget))
    size = SCREEN_BATCH * int(cap // SCREEN_BATCH) if cap >= SCREEN_BATCH else int(cap)
    return max(size, starts, 1)


def design(n_params: int, size: int, seed: int) -> np.ndarray:
    """A Latin hypercube of ``size`` points in the unit box [size, P] (seeded): every parameter's range is cut
    into ``size`` equal strata and each stratum holds exactly one point, at a uniform position inside it.

    (NumPy rather than ``scipy.stats.qmc``: importing scipy.stats takes longer than a whole screen.)
    """
    rng = np.random.default_rng([seed, 7])
    strata = rng.permuted(np.tile(np.arange(size), (n_params, 1)), axis=1).T  # [size, P], a permutation per column
    return (strata + rng.uniform(size=(size, n_params))) / size


def run_screen(problem, points: np.ndarray, on_batch=None, batch: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(objective, reported loss) [N] at ``points`` [N, P], ``batch`` at a time (default: SCREEN_BATCH or N);
    ``on_batch(objective values, done)`` after each batch. A short last batch is padded (one compiled shape)."""
    import jax.numpy as jnp

    from diffbrain.fitting import problem as fp

    dtype = jnp.result_type(float)
    batch = batch or min(SCREEN_BATCH, len(points))
    values, reported = np.full(len(points), np.nan), np.full(len(points), np.nan)
    for lo in range(0, len(points), batch):
        chunk = points[lo:lo + batch]
        n = len(chunk)
        if n < batch:
            chunk = np.concatenate([chunk, np.repeat(chunk[-1:], batch - n, axis=0)])
        out, rep = (np.asarray(x, dtype=np.float64) for x in fp.batch_losses(problem, jnp.asarray(chunk, dtype)))
        values[lo:lo + n], reported[lo:lo + n] = out[:n], rep[:n]
        if on_batch is not None:
            on_batch(values[lo:lo + n], lo + n)
    return values, reported


def best_order(values: np.ndarray) -> np.ndarray:
    """Indices of the screened points from lowest objective up (non-finite ones last)."""
    return np.argsort(np.where(np.isfinite(values), values, np.inf), kind="stable")
