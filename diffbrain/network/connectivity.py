"""Recurrent connectivity (dense, random, distance-dependent Gaussian) and initial weight magnitudes.

Structure is drawn with NumPy from an explicit seed. A projection from ``n_pre`` presynaptic to
``n_post`` postsynaptic neurons is a boolean mask ``[n_pre, n_post]`` (rows: presynaptic); sparse
ones are also kept in CSR form (``indptr``, ``indices``, row-major, so the non-zero weight vector
is ``dense[mask]``). Weights are stored as magnitudes; the model applies ``|w|`` and a population's
reversal potential (Dale's law), so every effective conductance weight is >= 0.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from diffbrain.network.config import NetworkConfig
from diffbrain.params import ParamError


@dataclass(frozen=True)
class Structure:
    """The fixed pattern of one projection."""

    mask: np.ndarray  # bool [n_pre, n_post]
    sparse: bool

    @property
    def shape(self) -> tuple[int, int]:
        return self.mask.shape

    @property
    def nnz(self) -> int:
        return int(self.mask.sum())

    @property
    def indptr(self) -> np.ndarray:
        return np.concatenate([[0], np.cumsum(self.mask.sum(axis=1))]).astype(np.int32)

    @property
    def indices(self) -> np.ndarray:
        return np.nonzero(self.mask)[1].astype(np.int32)

    @property
    def mean_fan_in(self) -> float:
        return max(1.0, self.nnz / self.shape[1])

    def to_dense(self, data: np.ndarray) -> np.ndarray:
        """Scatter the non-zero vector (CSR order) into a dense matrix with zeros off the pattern."""
        dense = np.zeros(self.shape, dtype=np.asarray(data).dtype)
        dense[self.mask] = np.asarray(data)
        return dense


def ring_positions(n: int, rng: np.random.Generator) -> np.ndarray:
    """Positions in [0, 1) on a ring: evenly spaced, assigned to neurons in a random order (so E and I mix)."""
    return rng.permutation(n) / n


def ring_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    d = np.abs(a[:, None] - b[None, :])
    return np.minimum(d, 1.0 - d)


def recurrent_mask(cfg: NetworkConfig, rng: np.random.Generator) -> np.ndarray:
    """The ``[n_rec, n_rec]`` recurrent mask (rows presynaptic; E neurons first, then I)."""
    n = cfg.n_rec
    if cfg.conn_method == "dense":
        return np.ones((n, n), dtype=bool)
    if cfg.conn_method == "rand":
        return rng.random((n, n)) < cfg.conn_prob
    if cfg.conn_method == "gaussian":
        pos = ring_positions(n, rng)
        prob = cfg.conn_prob * np.exp(-ring_distance(pos, pos) ** 2 / (2.0 * cfg.conn_width**2))
        return rng.random((n, n)) < prob
    raise ParamError("conn_method", f"unknown connectivity {cfg.conn_method!r}", "use dense, rand or gaussian")


def recurrent_structures(cfg: NetworkConfig, rng: np.random.Generator) -> tuple[Structure, Structure]:
    """Excitatory-presynaptic and inhibitory-presynaptic projections onto all neurons."""
    mask = recurrent_mask(cfg, rng)
    sparse = cfg.conn_method != "dense"
    exc, inh = Structure(mask[: cfg.n_exc], sparse), Structure(mask[cfg.n_exc :], sparse)
    for name, s in (("excitatory", exc), ("inhibitory", inh)):
        if s.nnz == 0:
            raise ParamError("conn_prob", f"the {name} projection drew no synapse at n_rec={cfg.n_rec}",
                             "raise conn_prob (or conn_width, or n_rec)")
    return exc, inh


def kaiming_magnitudes(rng: np.random.Generator, n: int, scale: float, fan_in: float) -> np.ndarray:
    """``|N(0, scale / fan_in)|`` samples (Kaiming normal with variance multiplier ``scale``, as the paper)."""
    return np.abs(rng.standard_normal(n) * np.sqrt(scale / max(1.0, fan_in))).astype(np.float32)


@dataclass(frozen=True)
class InitialWeights:
    """Initial parameters (magnitudes): dense ``[n_pre, n_post]`` or the CSR non-zero vector."""

    ff: np.ndarray
    exc: np.ndarray
    inh: np.ndarray
    readout: np.ndarray
    tau_adapt: np.ndarray  # ms, per neuron


def initial_weights(cfg: NetworkConfig, n_in: int, n_out: int, exc: Structure, inh: Structure,
                    rng: np.random.Generator) -> InitialWeights:
    """Draw the initial weights: Kaiming magnitudes over the (mean) fan-in, as the paper's script."""
    n = cfg.n_rec
    ff = kaiming_magnitudes(rng, n_in * n, cfg.ff_scale, n_in).reshape(n_in, n)

    def recurrent(structure: Structure, scale: float) -> np.ndarray:
        values = kaiming_magnitudes(rng, structure.nnz, scale, structure.mean_fan_in)
        return values if structure.sparse else values.reshape(structure.shape)

    w_exc = recurrent(exc, cfg.rec_scale)
    w_inh = recurrent(inh, cfg.rec_scale * cfg.w_ei_ratio)
    readout = (rng.standard_normal((n, n_out)) * np.sqrt(2.0 / n)).astype(np.float32)
    # adaptation time constants around tau_a: uniform in [min(100 ms, tau_a), 2 tau_a] as the paper's script
    tau_adapt = rng.uniform(min(100.0, cfg.tau_a), 2.0 * cfg.tau_a, n).astype(np.float32)
    return InitialWeights(ff, w_exc, w_inh, readout, tau_adapt)
