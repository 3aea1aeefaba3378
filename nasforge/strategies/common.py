"""Bookkeeping every search strategy needs: proposal ids, pending trials, the history of results.

Strategies are told results out of order (parallel workers), more than once per key (the
runner answers duplicates from its store) and after a resume with reconstructed proposals, so
a proposal is matched by the id it carries in `info`, never by object identity.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from nasforge.core.seeding import restore_rng, rng_state
from nasforge.core.types import Architecture, JSONDict, Proposal, Result, TrialState

WORST = -math.inf


def score_of(result: Result) -> float | None:
    """The result's score, or None for a failed, pruned or unscored trial (which ranks worst)."""
    if result.state != TrialState.COMPLETE or result.score is None:
        return None
    score = float(result.score)
    return score if math.isfinite(score) else None


def rank(score: float | None) -> float:
    return WORST if score is None else score


class BaseStrategy:
    """Holds the space, a seeded generator, pending proposals and every result told so far."""

    def __init__(self, space: Any, *, seed: int = 0, max_trials: int | None = None) -> None:
        if max_trials is not None and max_trials < 1:
            raise ValueError(f"max_trials must be positive, got {max_trials}")
        self.space = space
        self.seed = int(seed)
        self.max_trials = max_trials
        self.rng = np.random.default_rng(self.seed)
        self.next_id = 0
        self.pending: dict[int, list[int]] = {}  # proposal id -> tokens
        self.results: dict[str, float | None] = {}  # key -> first score told (None = failed)
        self.tokens_of: dict[str, list[int]] = {}
        self.proposed: set[str] = set()  # every key ever asked (for avoiding waste)
        self.proposed_tokens: dict[str, list[int]] = {}

    # ---- proposals ---------------------------------------------------------------------
    def _propose(self, arch: Architecture, **info: Any) -> Proposal:
        pid = self.next_id
        self.next_id += 1
        key = self.space.key(arch)
        self.pending[pid] = list(arch.tokens)
        self._note_proposed(key, arch.tokens)
        return Proposal(arch=arch, key=key, info={"id": pid, **info})

    def _record(self, proposal: Proposal, result: Result) -> tuple[int | None, float | None]:
        """Note a result; returns the proposal's id (None when it was not pending) and its score."""
        pid = proposal.info.get("id")
        pid = int(pid) if pid is not None else None
        if pid is not None and pid not in self.pending:
            pid = None
        if pid is not None:
            del self.pending[pid]
        score = score_of(result)
        key = proposal.key
        if key not in self.results:
            self.results[key] = score
            self.tokens_of[key] = list(proposal.arch.tokens)
        self._note_proposed(key, proposal.arch.tokens)
        return pid, score

    @property
    def queries(self) -> int:
        """Distinct architectures with a result: the budget a benchmark counts."""
        return len(self.results)

    def budget_fraction(self) -> float:
        return 0.0 if not self.max_trials else min(1.0, self.queries / self.max_trials)

    def best(self, k: int = 1) -> list[tuple[str, float]]:
        """The k best (key, score) told so far, failures excluded; ties keep the earlier result."""
        scored = [(key, s) for key, s in self.results.items() if s is not None]
        order = sorted(range(len(scored)), key=lambda i: -scored[i][1])
        return [scored[i] for i in order[:k]]

    def arch_of(self, key: str) -> Architecture:
        return Architecture(self.space.name, tuple(self.tokens_of[key]))

    def fresh_sample(self, tries: int = 50) -> Architecture:
        """A random architecture not proposed before, where one is found within `tries` draws."""
        arch = self.space.sample(self.rng)
        for _ in range(tries - 1):
            if self.space.key(arch) not in self.proposed:
                break
            arch = self.space.sample(self.rng)
        return arch

    def is_finished(self) -> bool:
        return False

    # ---- state -------------------------------------------------------------------------
    # The runner saves the state after every trial, so it is kept compact: keys are recomputed
    # from tokens on load (a key is a function of the tokens), and only proposed keys that have
    # no result yet are listed besides the results.
    def base_state(self) -> JSONDict:
        extra = [self.proposed_tokens[k] for k in sorted(self.proposed) if k not in self.results]
        return {
            "seed": self.seed,
            "rng": rng_state(self.rng),
            "next_id": self.next_id,
            "pending": [[pid, toks] for pid, toks in self.pending.items()],
            "results": [[self.tokens_of[k], s] for k, s in self.results.items()],
            "proposed": extra,
        }

    def load_base_state(self, state: JSONDict) -> None:
        self.seed = int(state["seed"])  # derived seeds (model fits, new parameters) follow the study's seed
        self.rng = restore_rng(state["rng"])
        self.next_id = int(state["next_id"])
        self.pending = {int(pid): [int(t) for t in toks] for pid, toks in state["pending"]}
        self.results, self.tokens_of, self.proposed, self.proposed_tokens = {}, {}, set(), {}
        for toks, score in state["results"]:
            key = self._key_of(toks)
            self.results[key] = None if score is None else float(score)
            self.tokens_of[key] = [int(t) for t in toks]
            self._note_proposed(key, toks)
        for toks in state["proposed"]:
            self._note_proposed(self._key_of(toks), toks)

    def _key_of(self, tokens: list[int]) -> str:
        return str(self.space.key(Architecture(self.space.name, tuple(int(t) for t in tokens))))

    def _note_proposed(self, key: str, tokens: list[int] | tuple[int, ...]) -> None:
        if key not in self.proposed:
            self.proposed.add(key)
            self.proposed_tokens[key] = [int(t) for t in tokens]


class TokenEncoder:
    """Architecture -> feature vector, derived from the decision walk alone (works for any space).

    One indicator per (position, decision name, token) seen in `fit`, plus the space's own
    `encode(arch)` when it has one (e.g. a path encoding). Indicators first seen after the last
    `fit` have no column yet and are left out.
    """

    def __init__(self, space: Any, use_space_encoding: bool = True) -> None:
        self.space = space
        self.index: dict[str, int] = {}
        self.use_space = use_space_encoding and callable(getattr(space, "encode", None))
        self._names: dict[tuple[int, ...], list[str]] = {}
        self._rows: dict[tuple[int, ...], tuple[np.ndarray, np.ndarray]] = {}

    def _names_of(self, arch: Architecture) -> list[str]:
        names = self._names.get(arch.tokens)
        if names is None:
            names = [f"{pos}:{dec.name}:{tok}" for pos, (dec, tok) in enumerate(self.space.walk(arch.tokens))]
            self._names[arch.tokens] = names
        return names

    def fit(self, archs: list[Architecture]) -> np.ndarray:
        size = len(self.index)
        for arch in archs:
            for name in self._names_of(arch):
                if name not in self.index:
                    self.index[name] = len(self.index)
        if len(self.index) != size:
            self._rows.clear()  # columns changed
        return self.encode(archs)

    def _row(self, arch: Architecture) -> tuple[np.ndarray, np.ndarray]:
        row = self._rows.get(arch.tokens)
        if row is None:
            cols = np.array([self.index[n] for n in self._names_of(arch) if n in self.index], dtype=np.intp)
            extra = np.asarray(self.space.encode(arch), dtype=np.float64) if self.use_space else np.zeros(0)
            row = self._rows[arch.tokens] = (cols, extra)
        return row

    def encode(self, archs: list[Architecture]) -> np.ndarray:
        rows = [self._row(a) for a in archs]
        width = max((len(r[1]) for r in rows), default=0)
        base = len(self.index)
        out = np.zeros((len(archs), base + width), dtype=np.float64)
        for i, (cols, extra) in enumerate(rows):
            out[i, cols] = 1.0
            out[i, base:base + len(extra)] = extra
        return out
