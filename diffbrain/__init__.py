"""diffbrain: differentiable brain models (GIF/HH neurons, E/I spiking networks) and their experiments.

Importing this package is cheap: JAX and the brain* stack load only in the modules that compute.
"""

__version__ = "0.1.0"
