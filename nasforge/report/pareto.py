"""The objective-versus-cost front of stored trials: what is best for its size.

A small stand-in until the store keeps a Pareto front of its own (multi-objective search): it is
computed from complete trials, the objective oriented so that higher is better (`TrialRow.score`)
and each cost (params, FLOPs) lower is better.
"""

from __future__ import annotations

from collections.abc import Sequence

from nasforge.core.types import TrialState
from nasforge.storage.sql import TrialRow

COSTS = ("params", "flops")


def cost_of(trial: TrialRow, cost: str) -> float | None:
    """`params` from the trial's column, any other cost from its metrics (the train evaluator stores `flops`)."""
    value = trial.params if cost == "params" else trial.metrics.get(cost)
    return None if value is None else float(value)


def front_indices(scores: Sequence[float], costs: Sequence[float]) -> list[int]:
    """Indices of the points no other point dominates (higher score at no more cost, or less cost at no lower
    score), in order of increasing cost; of equal points the first is kept."""
    order = sorted(range(len(scores)), key=lambda i: (costs[i], -scores[i], i))
    front: list[int] = []
    best = float("-inf")
    for i in order:
        if scores[i] > best:
            front.append(i)
            best = scores[i]
    return front


def pareto_trials(trials: Sequence[TrialRow], cost: str = "params") -> list[TrialRow]:
    """Complete trials with a score and the cost, on the score-versus-cost front, cheapest first."""
    usable = [t for t in trials if t.state == TrialState.COMPLETE and t.score is not None
              and cost_of(t, cost) is not None]
    scores = [float(t.score) for t in usable if t.score is not None]
    costs = [float(c) for t in usable if (c := cost_of(t, cost)) is not None]
    return [usable[i] for i in front_indices(scores, costs)]
