"""The names of the fitting methods, declared once and JAX-free: the fitting package dispatches on them, the
``fit-neuron`` experiment and ``diffbrain fit --method`` offer them as choices.
"""

BASELINE_METHODS = ("de", "pso", "twopointsde", "bayes")  # gradient-free (nevergrad, scikit-optimize)
FIT_METHODS = ("gradient", *BASELINE_METHODS)
