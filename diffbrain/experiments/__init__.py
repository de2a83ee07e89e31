"""Experiments by name: plain functions ``(params, ctx) -> xarray.Dataset``.

Each experiment lives in its own module that defines ``EXPERIMENT`` (an :class:`Experiment`) and
imports JAX only inside its run function, so that listing and validating parameters (``sweep plan``)
stays fast. Sweeps find experiments here by name; nothing here knows about SLURM or stores.
"""

from __future__ import annotations

import importlib

from diffbrain.experiments.base import REQUIRED, Experiment, Param, ParamError, RunContext

__all__ = ["REQUIRED", "Experiment", "Param", "ParamError", "RunContext", "get", "names"]

# name -> module defining EXPERIMENT; modules are imported on first use only.
_MODULES: dict[str, str] = {
    "cluster-check": "diffbrain.experiments.cluster_check",
    "fit-neuron": "diffbrain.experiments.fit_neuron",
    "train-network": "diffbrain.experiments.train_network",
    "scaling-probe": "diffbrain.experiments.scaling_probe",
    "simulate-network": "diffbrain.experiments.simulate_network",
}


def names() -> list[str]:
    """Registered experiment names."""
    return sorted(_MODULES)


def get(name: str) -> Experiment:
    """The experiment registered as ``name``; :class:`ParamError` (field ``experiment``) if unknown."""
    if name not in _MODULES:
        raise ParamError("experiment", f"unknown experiment {name!r}", f"use one of: {', '.join(names())}")
    experiment = importlib.import_module(_MODULES[name]).EXPERIMENT
    assert experiment.name == name, (experiment.name, name)
    return experiment
