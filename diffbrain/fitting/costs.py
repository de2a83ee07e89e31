"""Fair accounting: every evaluation counted in forward-equivalents, so that budgets compare like with like.

A forward (one candidate's loss) counts 1. A value-and-gradient (reverse mode) and a residual Jacobian
(forward mode, P tangents) count as their measured cost relative to a forward: per start, with 20 starts in
one vmapped call, best of 5 interleaved calls, on the project's 2-core machine (``bench/fit_eval_cost.py``
prints them; rerun it after changing a model and update the table). The multiples are constants, not
timed at run time, so that a fit's budget and result do not depend on the machine's load.
"""

from __future__ import annotations

# (model, target) -> {kind: forwards per evaluation}: medians of 2-5 runs of bench/fit_eval_cost.py on the 2-core
# machine at load 5-9 (the ratios, not the seconds, are what carries over). GIF's Jacobian is that of the program
# shared by the spike-forced and the free run (potential) or of the spike-forced residuals (spike targets).
# HH has no warm start: its spike entry's Jacobian is the potential one, never charged in practice.
MULTIPLES: dict[tuple[str, str], dict[str, float]] = {
    ("gif", "potential"): {"value_and_grad": 4.5, "jacobian": 7.9},
    ("gif", "spike"): {"value_and_grad": 4.1, "jacobian": 4.9},
    ("hh", "potential"): {"value_and_grad": 2.9, "jacobian": 2.8},
    ("hh", "spike"): {"value_and_grad": 3.1, "jacobian": 2.8},
}
KINDS = ("forward", "value_and_grad", "jacobian")
UNMEASURED = {"value_and_grad": 5.0, "jacobian": 5.0}  # a model without a measurement: a cautious guess


def multiple(model: str, target: str, kind: str) -> float:
    """Forward-equivalents of one evaluation of ``kind`` (forward, value_and_grad, jacobian)."""
    if kind == "forward":
        return 1.0
    if kind not in KINDS:
        raise ValueError(f"unknown evaluation kind {kind!r}")
    return MULTIPLES.get((model, target), UNMEASURED)[kind]


class Ledger:
    """Evaluations by kind and their total in forward-equivalents for one fit."""

    def __init__(self, model: str, target: str):
        self.model, self.target = model, target
        self.counts = {kind: 0 for kind in KINDS}

    def add(self, kind: str, count: int) -> None:
        self.counts[kind] += int(count)

    def cost(self, kind: str) -> float:
        return multiple(self.model, self.target, kind)

    @property
    def total(self) -> float:
        return sum(n * self.cost(kind) for kind, n in self.counts.items())

    def summary(self) -> dict:
        return {"evaluations_by_kind": dict(self.counts),
                "forward_equivalents_per_evaluation": {k: self.cost(k) for k in KINDS},
                "forward_equivalents": round(self.total, 3)}
