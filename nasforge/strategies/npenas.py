"""Predictor-guided evolution, after NPENAS (Wei et al., 2022).

Each step takes a parent by tournament among the best results so far, makes `mutations` mutants of it
(one- and two-step), and the surrogate (a GP, or an MLP ensemble, on the encoding and, with `proxies`,
the zero-cost proxies) filters them: only the one with the best upper confidence bound (mean + `ucb_kappa`
std) is evaluated. Not bananas' independent Thompson draws: the mutants of one parent are near-equal
siblings, and the largest of 100 independent draws goes to an uncertain one rather than the best predicted
(on NAS-Bench-201, bench/results/nb201/README.md, it left searches one or two edits from the best cell).
Unlike `bananas`, the candidates are mutants of one evolved parent, never the whole space or random
architectures, so it works in spaces too large to enumerate. A proxy warm start picks the first `initial` trials.
"""

from __future__ import annotations

from typing import Any

from nasforge.core.types import Architecture
from nasforge.strategies.proxy_bananas import ProxyBananas


class NPENAS(ProxyBananas):
    """Options as `proxy_bananas`, plus `population` (20) best results that parents come from,
    `tournament` (5) and `mutations` (100) mutants scored per step; `exhaustive` is off and
    `acquisition` is "ucb"."""

    def __init__(self, space: Any, *, seed: int = 0, max_trials: int | None = None, population: int = 20,
                 tournament: int = 5, mutations: int = 100, **options: Any) -> None:
        options.setdefault("exhaustive", 0)
        options.setdefault("acquisition", "ucb")
        super().__init__(space, seed=seed, max_trials=max_trials, mutations=mutations, **options)
        if population < 1 or tournament < 1 or mutations < 1:
            raise ValueError("npenas: population, tournament and mutations must be positive")
        self.population, self.tournament = int(population), int(tournament)

    def _use_pool(self) -> bool:
        return False

    def _candidates(self) -> list[Architecture]:
        best = self.best(self.population)
        self._n_local = 0
        if not best:
            return []
        picks = self.rng.choice(len(best), size=min(self.tournament, len(best)), replace=False)
        parent = self.arch_of(best[int(min(picks))][0])  # best is sorted: the lowest index wins
        seen: set[str] = set()
        out: list[Architecture] = []
        for i in range(self.mutations * 3):
            if len(out) >= self.mutations:
                break
            child = self.space.mutate(parent, self.rng)
            if i % 2:
                child = self.space.mutate(child, self.rng)
            key = self.space.key(child)
            if key not in seen and key not in self.proposed:
                seen.add(key)
                out.append(child)
        self._n_local = len(out)
        return out
