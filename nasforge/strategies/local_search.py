"""Local search (White et al., 2020, "Local search is state of the art for NAS benchmarks").

Evaluate every neighbour of the current architecture, move to the best one if it improves,
and restart from a random architecture at a local optimum. Neighbours whose key already has
a result are scored from memory, so a revisited region costs nothing.
"""

from __future__ import annotations

from typing import Any

from nasforge.core.types import JSONDict, Proposal, Result
from nasforge.strategies.common import BaseStrategy, rank


class LocalSearch(BaseStrategy):
    """Options: `initial` (10) random architectures before the first climb, whose best is the start."""

    def __init__(self, space: Any, *, seed: int = 0, max_trials: int | None = None, initial: int = 10) -> None:
        super().__init__(space, seed=seed, max_trials=max_trials)
        if initial < 1:
            raise ValueError("local: initial must be at least 1")
        self.initial = int(initial)
        self.phase = "init"  # init -> climb; back to "start" (one random restart) at a local optimum
        self.phase_left = self.initial  # proposals still to make in init/start
        self.current: str | None = None  # key of the architecture being climbed from
        self.queue: list[list[int]] = []  # neighbours still to propose
        self.waiting: set[str] = set()  # keys of this round still without a result
        self.round: list[str] = []  # keys of this round (init samples or neighbours)

    # ---- helpers -----------------------------------------------------------------------
    def _score(self, key: str) -> float:
        return rank(self.results.get(key))

    def _open_neighbourhood(self) -> None:
        assert self.current is not None
        self.queue = [list(a.tokens) for a in self.space.neighbours(self.arch_of(self.current))]
        order = self.rng.permutation(len(self.queue))
        self.queue = [self.queue[i] for i in order]
        self.round = []

    def _round_done(self) -> None:
        """All results of a round are in: pick the best and climb (or restart at an optimum)."""
        best = max(self.round, key=self._score, default=None)
        if self.phase in ("init", "start"):
            self.current = best
            self.phase = "climb"
            self._open_neighbourhood()
            return
        assert self.current is not None
        if best is not None and self._score(best) > self._score(self.current):
            self.current = best
            self._open_neighbourhood()
        else:  # local optimum: start again from one random architecture
            self.phase, self.phase_left, self.current, self.round = "start", 1, None, []

    # ---- ask/tell ----------------------------------------------------------------------
    def ask(self, n: int) -> list[Proposal]:
        out: list[Proposal] = []
        for _ in range(10_000):  # bounded: each pass proposes, waits, or advances a round
            if len(out) >= n:
                break
            if self.phase in ("init", "start"):
                if self.phase_left > 0:
                    self.phase_left -= 1
                    p = self._propose(self.fresh_sample(), role=self.phase)
                    self.round.append(p.key)
                    self.waiting.add(p.key)
                    out.append(p)
                    continue
            else:
                while self.queue:
                    tokens = self.queue.pop()
                    arch = self.space.assemble(tokens)
                    key = self.space.key(arch)
                    self.round.append(key)
                    if key in self.results or key in self.waiting:
                        continue  # known or in flight: no new query
                    self.waiting.add(key)
                    out.append(self._propose(arch, role="neighbour", centre=self.current))
                    break
                else:
                    if not self.waiting:
                        self._round_done()
                    else:
                        break
                continue
            if self.waiting:
                break
            self._round_done()
        return out

    def tell(self, proposal: Proposal, result: Result) -> None:
        self._record(proposal, result)
        self.waiting.discard(proposal.key)

    def state_dict(self) -> JSONDict:
        return {**self.base_state(), "phase": self.phase, "phase_left": self.phase_left,
                "current": self.current, "queue": self.queue, "waiting": sorted(self.waiting),
                "round": self.round}

    def load_state_dict(self, state: JSONDict) -> None:
        self.load_base_state(state)
        self.phase = str(state["phase"])
        self.phase_left = int(state["phase_left"])
        self.current = state["current"]
        self.queue = [[int(t) for t in q] for q in state["queue"]]
        self.waiting = set(state["waiting"])
        self.round = list(state["round"])
