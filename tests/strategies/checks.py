"""Shared checks for the search strategies: the runner's ways of calling ask/tell, and the real table."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from nasforge.core import registry
from nasforge.core.types import Proposal, Result, TrialState

TABLE = Path("nasbench201") / "nb201_12epoch.csv"


def objective(tokens: tuple[int, ...]) -> float:
    """A deterministic landscape with an optimum (all tokens 3) and some interaction."""
    return float(sum(1.0 for t in tokens if t == 3) + 0.5 * (tokens[0] == tokens[-1]) - 0.1 * sum(tokens))


def make(name: str, seed: int = 0, max_trials: int = 60, space: str = "nb201", **options: Any) -> Any:
    return registry.create("strategy", name, space=registry.create("space", space), seed=seed,
                           max_trials=max_trials, **options)


def drive(strategy: Any, trials: int, batch: int = 3, fail_every: int = 5,
          seen: dict[str, Result] | None = None, start: int = 0) -> list[str]:
    """Like the runner with parallel workers: ask a batch, answer duplicates from memory at once,
    tell the rest in reverse order; every `fail_every`-th new trial fails."""
    seen = {} if seen is None else seen
    keys: list[str] = []
    number = start
    for _ in range(trials * 50):
        if len(keys) >= trials:
            break
        proposals = strategy.ask(batch)
        assert len(proposals) <= batch
        fresh = []
        for p in proposals:
            json.dumps(p.info)
            keys.append(p.key)
            if p.key in seen:
                strategy.tell(p, seen[p.key])
            else:
                fresh.append(p)
        for p in reversed(fresh):
            number += 1
            if fail_every and number % fail_every == 0:
                res = Result(TrialState.FAILED, error="boom")
            else:
                value = objective(p.arch.tokens)
                res = Result(TrialState.COMPLETE, metrics={"valid_accuracy": value}, score=value)
            if p.key not in seen:
                seen[p.key] = res
            strategy.tell(p, res)
    return keys[:trials]


def check_determinism(name: str, **options: Any) -> None:
    assert drive(make(name, seed=4, **options), 40) == drive(make(name, seed=4, **options), 40)
    assert drive(make(name, seed=4, **options), 40) != drive(make(name, seed=5, **options), 40)


def check_resume_with_pending(name: str, **options: Any) -> None:
    """Save while proposals are in flight; the resumed copy gets reconstructed proposals told."""
    a = make(name, seed=7, **options)
    seen: dict[str, Result] = {}
    drive(a, 25, seen=seen)
    inflight = a.ask(3)
    state = json.loads(json.dumps(a.state_dict()))
    b = make(name, seed=123, **options)
    b.load_state_dict(state)
    for s in (a, b):
        for p in reversed(inflight):
            copy = Proposal(arch=replace(p.arch), key=p.key, seed=p.seed, parent=p.parent,
                            budget=dict(p.budget), info=json.loads(json.dumps(p.info)))
            value = objective(p.arch.tokens)
            s.tell(copy if s is b else p, Result(TrialState.COMPLETE, metrics={}, score=value))
    assert drive(a, 30, seen=dict(seen), start=500) == drive(b, 30, seen=dict(seen), start=500)


def check_failures(name: str, **options: Any) -> None:
    """Only failures, then a mixture: it keeps proposing valid architectures."""
    strategy = make(name, **options)
    for _ in range(8):
        for p in strategy.ask(2):
            strategy.tell(p, Result(TrialState.FAILED, error="boom"))
    drive(strategy, 30, fail_every=2)
    space = registry.create("space", "nb201")
    for p in strategy.ask(2):
        assert space.key(space.assemble(p.arch.tokens)) == p.key


def check_ignores_strangers(name: str, **options: Any) -> None:
    """A result for a proposal it never made (or told twice) must not break it."""
    strategy = make(name, **options)
    space = registry.create("space", "nb201")
    arch = space.sample(np.random.default_rng(0))
    stranger = Proposal(arch=arch, key=space.key(arch), info={"id": 10_000})
    strategy.tell(stranger, Result(TrialState.COMPLETE, score=1.0))
    p = strategy.ask(1)[0]
    strategy.tell(p, Result(TrialState.COMPLETE, score=2.0))
    strategy.tell(p, Result(TrialState.COMPLETE, score=2.0))
    assert len(strategy.ask(2)) <= 2


def mean_final_test(name: str, table: Path, dataset: str, queries: int, seeds: range, **options: Any) -> float:
    from nasforge.bench.simulate import simulate

    return float(np.mean([simulate(name, str(table), dataset, queries, s, **options)[-1][1] for s in seeds]))
