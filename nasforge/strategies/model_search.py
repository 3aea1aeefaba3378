"""Google Model Search's adaptive coordinate descent (beam search that grows and mutates)."""

from __future__ import annotations

from typing import Any

import numpy as np

from nasforge.core.errors import ConfigError
from nasforge.core.seeding import restore_rng, rng_state
from nasforge.core.types import Architecture, JSONDict, Proposal, Result, TrialState


class ModelSearch:
    """Parents come from the top `beam_size` complete trials; a child grows the parent by one block
    (while the parent is shallower than the unlocked depth) or mutates one decision.

    The unlocked depth starts at `initial_depth` and rises by one every `unlock_every` completed
    trials, so the search first finds good small models and then deepens the best of them.
    User-suggested architectures (JSON, as `nasforge show` prints them) are tried first.
    Spaces without `depth`/`grow` are searched by mutation alone.

    An architecture takes one place in the beam however often it is told (the runner answers a repeated
    proposal with the stored result), and a child that was proposed before is redrawn up to `retries` times
    (a new parent from the beam and a new grow or mutation each time); when the beam's neighbourhood holds
    nothing new, a random shallow model not proposed yet is tried instead, so the search goes on.
    """

    def __init__(self, space: Any, *, seed: int = 0, max_trials: int | None = None, beam_size: int = 5,
                 unlock_every: int = 4, initial_depth: int = 1, grow_probability: float = 0.5,
                 initial_random: int = 3, suggested: list[JSONDict] | None = None, retries: int = 10) -> None:
        if beam_size < 1 or unlock_every < 1 or initial_depth < 0 or initial_random < 0:
            raise ConfigError("model_search: beam_size and unlock_every must be >= 1, "
                              "initial_depth and initial_random >= 0")
        if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
            raise ConfigError(f"model_search: retries must be an integer >= 0 (got {retries!r})")
        if not 0.0 <= grow_probability <= 1.0:
            raise ConfigError(f"model_search: grow_probability must be in [0, 1] (got {grow_probability})")
        self.space = space
        self.rng = np.random.default_rng(seed)
        self.beam_size = beam_size
        self.unlock_every = unlock_every
        self.initial_depth = initial_depth
        self.grow_probability = grow_probability
        self.initial_random = initial_random
        self.retries = retries
        try:
            self.suggested = [list(space.from_json(s).tokens) for s in (suggested or [])]
        except (ValueError, KeyError, TypeError) as exc:
            raise ConfigError(f"model_search: a suggested architecture is not valid for {space.name}: {exc}") from exc
        self.asked = 0
        self.completed: list[tuple[float, list[int]]] = []  # (score, tokens), one per complete architecture
        self.told = 0
        self._completed_keys: set[str] = set()
        self.proposed: dict[str, list[int]] = {}  # key -> tokens of every architecture proposed

    # ---- helpers -------------------------------------------------------------------------
    def _depth(self, arch: Architecture) -> int | None:
        fn = getattr(self.space, "depth", None)
        return int(fn(arch)) if fn is not None else None

    def unlocked_depth(self) -> int:
        return self.initial_depth + len(self.completed) // self.unlock_every

    def _key(self, tokens: list[int] | tuple[int, ...]) -> str:
        return str(self.space.key(Architecture(self.space.name, tuple(int(t) for t in tokens))))

    def _sample_shallow(self) -> Architecture:
        limit = max(self.unlocked_depth(), 1)
        arch = self.space.sample(self.rng)
        for _ in range(200):
            depth = self._depth(arch)
            if depth is None or depth <= limit:
                return arch
            arch = self.space.sample(self.rng)
        return arch

    def _child(self) -> tuple[Architecture, int]:
        beam = sorted(self.completed, key=lambda item: -item[0])[: self.beam_size]
        parent_index = int(self.rng.integers(len(beam)))
        parent = self.space.assemble(beam[parent_index][1])
        grow = getattr(self.space, "grow", None)
        depth = self._depth(parent)
        if (grow is not None and depth is not None and depth < self.unlocked_depth()
                and self.rng.random() < self.grow_probability):
            child = grow(parent, self.rng)
            if child is not None:
                return child, parent_index
        return self.space.mutate(parent, self.rng), parent_index

    # ---- protocol ------------------------------------------------------------------------
    def ask(self, n: int) -> list[Proposal]:
        out = []
        for _ in range(n):
            if self.suggested:
                arch = self.space.assemble(self.suggested.pop(0))
                info: JSONDict = {"origin": "suggested"}
            elif len(self.completed) < max(1, self.initial_random) or self.asked < self.initial_random:
                arch = self._sample_shallow()
                info = {"origin": "random"}
            else:
                arch, info = self._new_child()
            self.asked += 1
            key = self.space.key(arch)
            self.proposed.setdefault(key, list(arch.tokens))
            out.append(Proposal(arch=arch, key=key, info=info))
        return out

    def _new_child(self) -> tuple[Architecture, JSONDict]:
        """A beam child not proposed before (redrawn up to `retries` times), else a new random shallow model."""
        arch, _ = self._child()
        for _ in range(self.retries):
            if self.space.key(arch) not in self.proposed:
                break
            arch, _ = self._child()
        else:
            if self.space.key(arch) in self.proposed:
                for _ in range(50):
                    fresh = self._sample_shallow()
                    if self.space.key(fresh) not in self.proposed:
                        return fresh, {"origin": "random", "unlocked_depth": self.unlocked_depth()}
        return arch, {"origin": "beam", "unlocked_depth": self.unlocked_depth()}

    def tell(self, proposal: Proposal, result: Result) -> None:
        self.told += 1
        self.proposed.setdefault(proposal.key, list(proposal.arch.tokens))
        if (result.state == TrialState.COMPLETE and result.score is not None
                and proposal.key not in self._completed_keys):  # a repeat (answered from the store) adds nothing
            self._completed_keys.add(proposal.key)
            self.completed.append((float(result.score), list(proposal.arch.tokens)))

    def is_finished(self) -> bool:
        return False

    def state_dict(self) -> JSONDict:
        # proposed architectures are listed beyond the completed ones only (the state is saved after every trial)
        extra = [t for k, t in self.proposed.items() if k not in self._completed_keys]
        return {"rng": rng_state(self.rng), "asked": self.asked, "told": self.told,
                "completed": [[s, t] for s, t in self.completed], "suggested": self.suggested, "proposed": extra}

    def load_state_dict(self, state: JSONDict) -> None:
        self.rng = restore_rng(state["rng"])
        self.asked = int(state["asked"])
        self.told = int(state["told"])
        self.completed = [(float(s), [int(x) for x in t]) for s, t in state["completed"]]
        self.suggested = [list(t) for t in state["suggested"]]
        self._completed_keys = {self._key(t) for _, t in self.completed}
        self.proposed = {}
        for tokens in [t for _, t in self.completed] + [[int(x) for x in t] for t in state.get("proposed", [])]:
            self.proposed.setdefault(self._key(tokens), tokens)
