"""`HillClimb`: a few random architectures, then mutations of the best one found so far.

A strategy proposes with `ask(n)`, learns from `tell(proposal, result)` (`result.score` is oriented so that
higher is better) and saves everything it needs to continue in `state_dict()`, as JSON: a resumed study
calls `load_state_dict()` and must go on exactly as if it had never stopped.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from nasforge.core.seeding import restore_rng, rng_state
from nasforge.core.types import JSONDict, Proposal, Result, TrialState


class HillClimb:
    option_help: ClassVar[dict[str, str]] = {"warmup": "random architectures before the first mutation"}

    def __init__(self, space: Any, *, seed: int = 0, max_trials: int | None = None, warmup: int = 4) -> None:
        if int(warmup) < 1:
            raise ValueError(f"warmup must be at least 1, got {warmup}")
        self.space = space
        self.warmup = int(warmup)
        self.rng = np.random.default_rng(seed)
        self.asked = 0
        self.best: tuple[float, list[int]] | None = None

    def ask(self, n: int) -> list[Proposal]:
        proposals = []
        for _ in range(n):
            if self.asked < self.warmup or self.best is None:
                arch = self.space.sample(self.rng)
            else:
                arch = self.space.mutate(self.space.assemble(self.best[1]), self.rng)
            self.asked += 1
            proposals.append(Proposal(arch=arch, key=self.space.key(arch)))
        return proposals

    def tell(self, proposal: Proposal, result: Result) -> None:
        if result.state is not TrialState.COMPLETE or result.score is None:
            return
        if self.best is None or result.score > self.best[0]:
            self.best = (float(result.score), [int(t) for t in proposal.arch.tokens])

    def is_finished(self) -> bool:
        return False

    def state_dict(self) -> JSONDict:
        best = None if self.best is None else {"score": self.best[0], "tokens": self.best[1]}
        return {"rng": rng_state(self.rng), "asked": self.asked, "best": best}

    def load_state_dict(self, state: JSONDict) -> None:
        self.rng = restore_rng(state["rng"])
        self.asked = int(state["asked"])
        best = state.get("best")
        self.best = None if best is None else (float(best["score"]), [int(t) for t in best["tokens"]])
