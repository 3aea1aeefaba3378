"""NSGA-II (Deb et al., 2002) for several objectives at once, run steady-state so parallel workers never wait.

The population is the best `population_size` architectures told so far, ranked by non-dominated sorting
and, within a front, by crowding distance (boundary points first). A parent is the winner of a binary
tournament on (front, crowding); two parents make a child by the space's crossover (uniform over the
decision walk, repaired where the walks differ) followed by one mutation. Each result joins the
population as it arrives and the worst member leaves (a (mu + 1) scheme: results may come in any order).

Duplicates are eliminated, as NSGA-II implementations do (pymoo's `eliminate_duplicates`): an architecture
takes one place in the population however often it is told (the runner answers a repeated proposal with the
stored result), and a child proposed before is bred again, up to `retries` times; when every try repeats
one, a random architecture not proposed yet is tried instead, so a converged population keeps searching.

Constraints follow Deb's rule: a feasible architecture beats an infeasible one, and of two infeasible ones
the smaller violation wins; a trial pruned before training carries its violation in its metrics
(`constraint_violation`), so the population can still move towards feasibility when nothing meets the
limits yet. Failed trials take no place at all.
"""

from __future__ import annotations

import math
from typing import Any

from nasforge.core.types import JSONDict, Proposal, Result, TrialState
from nasforge.objectives.pareto import crowding_distance, non_dominated_sort
from nasforge.objectives.spec import Goals, parse_objectives
from nasforge.strategies.common import BaseStrategy

Member = tuple[list[int], str, list[float] | None, float]  # tokens, key, oriented objectives, violation


class NSGA2(BaseStrategy):
    """Options: `population_size` (20) random founders and population cap, `objectives` (the study's, e.g.
    ["valid_accuracy:max", "latency_ms:min"]; None: the score alone), `crossover_rate` (0.9), `retries` (10)
    draws to avoid re-proposing an architecture."""

    def __init__(self, space: Any, *, seed: int = 0, max_trials: int | None = None, population_size: int = 20,
                 objectives: list[str] | str | None = None, crossover_rate: float = 0.9, retries: int = 10) -> None:
        super().__init__(space, seed=seed, max_trials=max_trials)
        if int(population_size) < 2:
            raise ValueError("nsga2: population_size must be at least 2")
        if not 0.0 <= float(crossover_rate) <= 1.0:
            raise ValueError(f"nsga2: crossover_rate must be in [0, 1], got {crossover_rate}")
        self.population_size = int(population_size)
        self.goals = Goals(objectives=tuple(parse_objectives(objectives, "nsga2 objectives"))) if objectives else None
        self.crossover_rate = float(crossover_rate)
        self.retries = max(0, int(retries))
        self.founders_asked = 0
        self.population: list[Member] = []
        self._order: list[tuple[int, float]] | None = None  # (front, crowding) per member, cached

    # ---- ranking ------------------------------------------------------------------------------
    def _point(self, result: Result) -> tuple[list[float] | None, float] | None:
        """(objectives, violation) of a result, or None when it cannot take a place (failed, unscored)."""
        if result.state == TrialState.PRUNED:
            violation = result.metrics.get("constraint_violation", math.inf)
            return None, float(violation) if violation is not None and violation > 0 else math.inf
        if result.state != TrialState.COMPLETE or result.score is None:
            return None
        values = [float(result.score)] if self.goals is None else self.goals.values(result.metrics)
        return (values, 0.0) if values is not None else None

    def _ranks(self, members: list[Member]) -> list[tuple[int, float]]:
        """(front, crowding) per member: feasible fronts first, then the infeasible by violation."""
        feasible = [i for i, m in enumerate(members) if m[2] is not None]
        points = [members[i][2] for i in feasible]
        ranks: list[tuple[int, float]] = [(0, 0.0)] * len(members)
        fronts = non_dominated_sort(points)  # type: ignore[arg-type]
        for f, front in enumerate(fronts):
            crowd = crowding_distance(points, front)  # type: ignore[arg-type]
            for j in front:
                ranks[feasible[j]] = (f, crowd[j])
        infeasible = sorted((i for i, m in enumerate(members) if m[2] is None), key=lambda i: (members[i][3], i))
        for k, i in enumerate(infeasible):
            ranks[i] = (len(fronts) + k, 0.0)
        return ranks

    def _order_of(self) -> list[tuple[int, float]]:
        if self._order is None:
            self._order = self._ranks(self.population)
        return self._order

    def _tournament(self) -> Member:
        ranks = self._order_of()
        a, b = (int(i) for i in self.rng.choice(len(self.population), size=2, replace=len(self.population) < 2))
        better = a if (ranks[a][0], -ranks[a][1], a) <= (ranks[b][0], -ranks[b][1], b) else b
        return self.population[better]

    # ---- ask/tell -----------------------------------------------------------------------------
    def ask(self, n: int) -> list[Proposal]:
        out: list[Proposal] = []
        for _ in range(n):
            if self.founders_asked < self.population_size:
                self.founders_asked += 1
                out.append(self._propose(self.fresh_sample(), role="founder"))
                continue
            if not self.population:
                break  # every founder still running: nothing to select from yet
            child = self._child()
            for _ in range(self.retries):
                if self.space.key(child) not in self.proposed:
                    break
                child = self._child()
            else:
                if self.space.key(child) in self.proposed:
                    fresh = self.fresh_sample()
                    if self.space.key(fresh) not in self.proposed:
                        out.append(self._propose(fresh, role="random"))
                        continue
            out.append(self._propose(child, role="child"))
        return out

    def _child(self) -> Any:
        first, second = self._tournament(), self._tournament()
        parent = self.space.assemble(first[0])
        cross = getattr(self.space, "crossover", None)
        if callable(cross) and self.rng.random() < self.crossover_rate:
            parent = cross(parent, self.space.assemble(second[0]), self.rng)
        return self.space.mutate(parent, self.rng)

    def tell(self, proposal: Proposal, result: Result) -> None:
        pid, _ = self._record(proposal, result)
        placed = self._point(result)
        if pid is None or placed is None or any(m[1] == proposal.key for m in self.population):
            return  # not ours, told twice, failed, or already a member: it takes no (second) place
        self.population.append((list(proposal.arch.tokens), proposal.key, placed[0], placed[1]))
        self._order = None
        if len(self.population) > self.population_size:
            ranks = self._order_of()
            worst = max(range(len(self.population)), key=lambda i: (ranks[i][0], -ranks[i][1], -i))
            self.population.pop(worst)
            self._order = None

    def state_dict(self) -> JSONDict:
        return {**self.base_state(), "founders_asked": self.founders_asked,
                "population": [[t, k, p, None if math.isinf(v) else v] for t, k, p, v in self.population]}

    def load_state_dict(self, state: JSONDict) -> None:
        self.load_base_state(state)
        self.founders_asked = int(state["founders_asked"])
        self.population = [([int(x) for x in t], str(k), None if p is None else [float(x) for x in p],
                             math.inf if v is None else float(v)) for t, k, p, v in state["population"]]
        self._order = None
