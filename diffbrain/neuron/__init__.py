"""Neuron models (GIF, Hodgkin-Huxley) simulated on batches of current traces in one jitted scan."""

from diffbrain.neuron import gif, hh
from diffbrain.neuron.base import ModelParam, NeuronModel
from diffbrain.neuron.simulate import Simulation, get_model, simulate

MODELS: dict[str, NeuronModel] = {gif.MODEL.name: gif.MODEL, hh.MODEL.name: hh.MODEL}

__all__ = ["MODELS", "ModelParam", "NeuronModel", "Simulation", "get_model", "simulate"]
