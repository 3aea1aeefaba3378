"""Regularized (aging) evolution, after Real et al. (2019).

Tournament selection picks a parent, a one-token mutation makes the child, and the *oldest*
member (not the worst) leaves the population. Ageing keeps the search from clinging to an
architecture that was lucky once, and works asynchronously: a child joins when its result
arrives, whatever the order.
"""

from __future__ import annotations

from typing import Any

from nasforge.core.types import JSONDict, Proposal, Result
from nasforge.strategies.common import BaseStrategy, rank


class RegularizedEvolution(BaseStrategy):
    """Options: `population_size` (30) random founders and population cap, `sample_size` (10) per tournament."""

    def __init__(self, space: Any, *, seed: int = 0, max_trials: int | None = None,
                 population_size: int = 30, sample_size: int = 10, retries: int = 10) -> None:
        super().__init__(space, seed=seed, max_trials=max_trials)
        if population_size < 1 or not sample_size >= 1:
            raise ValueError("evolution: population_size and sample_size must be positive")
        self.population_size = int(population_size)
        self.sample_size = int(sample_size)
        self.retries = max(0, int(retries))
        self.founders_asked = 0
        self.population: list[tuple[list[int], str, float | None]] = []  # oldest first

    def ask(self, n: int) -> list[Proposal]:
        out: list[Proposal] = []
        for _ in range(n):
            if self.founders_asked < self.population_size:
                self.founders_asked += 1
                out.append(self._propose(self.fresh_sample(), role="founder"))
                continue
            if not self.population:
                break  # founders still running: nothing to select from yet
            size = min(self.sample_size, len(self.population))
            picks = self.rng.choice(len(self.population), size=size, replace=False)
            # ties go to the younger member, which has survived fewer tournaments
            parent = max(picks, key=lambda i: (rank(self.population[i][2]), i))
            tokens, key, _ = self.population[parent]
            parent_arch = self.space.assemble(tokens)
            child = self.space.mutate(parent_arch, self.rng)
            for _ in range(self.retries):
                if self.space.key(child) not in self.proposed:
                    break
                child = self.space.mutate(parent_arch, self.rng)
            out.append(self._propose(child, role="child", parent_key=key))
        return out

    def tell(self, proposal: Proposal, result: Result) -> None:
        pid, score = self._record(proposal, result)
        if pid is None:
            return  # not ours (or told twice): it already took its place
        self.population.append((list(proposal.arch.tokens), proposal.key, score))
        if len(self.population) > self.population_size:
            self.population.pop(0)

    def state_dict(self) -> JSONDict:
        return {**self.base_state(), "founders_asked": self.founders_asked,
                "population": [[t, k, s] for t, k, s in self.population]}

    def load_state_dict(self, state: JSONDict) -> None:
        self.load_base_state(state)
        self.founders_asked = int(state["founders_asked"])
        self.population = [([int(x) for x in t], str(k), None if s is None else float(s))
                           for t, k, s in state["population"]]
