"""Random search: the baseline every other strategy must beat."""

from __future__ import annotations

from typing import Any

import numpy as np

from nasforge.core.seeding import restore_rng, rng_state
from nasforge.core.types import JSONDict, Proposal, Result


class RandomSearch:
    """Uniform samples from the space's decision walk."""

    def __init__(self, space: Any, *, seed: int = 0, max_trials: int | None = None) -> None:
        self.space = space
        self.rng = np.random.default_rng(seed)

    def ask(self, n: int) -> list[Proposal]:
        out = []
        for _ in range(n):
            arch = self.space.sample(self.rng)
            out.append(Proposal(arch=arch, key=self.space.key(arch)))
        return out

    def tell(self, proposal: Proposal, result: Result) -> None:
        return None

    def is_finished(self) -> bool:
        return False

    def state_dict(self) -> JSONDict:
        return {"rng": rng_state(self.rng)}

    def load_state_dict(self, state: JSONDict) -> None:
        self.rng = restore_rng(state["rng"])
