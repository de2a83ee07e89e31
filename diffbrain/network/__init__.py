"""Conductance-based E/I spiking networks on evidence accumulation, trained by BPTT or online learning.

Modules (JAX and the brain* stack are imported by the modules that compute, not here):
``config`` (validated parameters), ``connectivity`` (dense / rand / gaussian structure, CSR),
``model`` (the network), ``task`` (evidence accumulation), ``gradients`` (BPTT, D-RTRL, ES-D-RTRL and
their comparison), ``training`` (optimiser and compiled step), ``checkpoint``, ``recording`` (spike
events, rates, weight histograms), ``run`` (a whole run and its dataset). ``analysis.run_figures``
draws a run's figures.
"""
