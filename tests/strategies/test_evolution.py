from __future__ import annotations

import pytest

from nasforge.core.types import Result, TrialState
from tests.strategies import checks

NAME = "evolution"


def test_founders_then_children_and_ageing() -> None:
    strategy = checks.make(NAME, population_size=6, sample_size=3)
    founders = strategy.ask(10)
    assert len(founders) == 6, "no children before any founder has a result"
    assert all(p.info["role"] == "founder" for p in founders)
    for p in founders:
        strategy.tell(p, Result(TrialState.COMPLETE, score=checks.objective(p.arch.tokens)))
    children = strategy.ask(4)
    assert [p.info["role"] for p in children] == ["child"] * 4
    first = list(strategy.population)
    for p in children:
        strategy.tell(p, Result(TrialState.COMPLETE, score=checks.objective(p.arch.tokens)))
    assert len(strategy.population) == 6
    assert strategy.population[:2] == first[4:], "the oldest leave first, whatever their score"


def test_parent_is_the_tournament_winner() -> None:
    strategy = checks.make(NAME, population_size=5, sample_size=5)
    founders = strategy.ask(5)
    for i, p in enumerate(founders):
        ok = i != 2
        strategy.tell(p, Result(TrialState.COMPLETE, score=float(i)) if ok else Result(TrialState.FAILED))
    best = founders[4].key
    assert all(p.info["parent_key"] == best for p in strategy.ask(5))


def test_beats_random_on_nas_bench_201(shared_data) -> None:
    table = shared_data / checks.TABLE
    if not table.is_file():
        pytest.skip(f"{table} not found")
    seeds = range(12)
    ours = checks.mean_final_test(NAME, table, "cifar10", 100, seeds)
    random = checks.mean_final_test("random", table, "cifar10", 100, seeds)
    assert ours > random + 0.2
