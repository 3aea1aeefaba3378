from __future__ import annotations

import pytest

from nasforge.core import registry
from nasforge.core.types import Result, TrialState
from tests.strategies import checks

NAME = "local"


def test_climbs_to_a_local_optimum_then_restarts() -> None:
    strategy = checks.make(NAME, initial=3)
    space = registry.create("space", "nb201")
    restarts = 0
    for _ in range(400):
        proposals = strategy.ask(4)
        if not proposals:
            break
        for p in proposals:
            restarts += p.info["role"] == "start"
            strategy.tell(p, Result(TrialState.COMPLETE, score=checks.objective(p.arch.tokens)))
        if restarts:
            break
    assert restarts == 1
    # the climb that ended was at a local optimum: no neighbour of it is better
    optimum = max(strategy.results, key=lambda k: strategy.results[k] or -1e9)
    score = strategy.results[optimum]
    for nb in space.neighbours(strategy.arch_of(optimum)):
        assert strategy.results.get(space.key(nb), -1e9) <= score


def test_known_neighbours_cost_no_query() -> None:
    strategy = checks.make(NAME, initial=1)
    asked: list[str] = []
    for _ in range(60):
        for p in strategy.ask(1):
            asked.append(p.key)
            strategy.tell(p, Result(TrialState.COMPLETE, score=checks.objective(p.arch.tokens)))
    assert len(asked) == len(set(asked))


def test_beats_random_on_nas_bench_201(shared_data) -> None:
    table = shared_data / checks.TABLE
    if not table.is_file():
        pytest.skip(f"{table} not found")
    seeds = range(12)
    ours = checks.mean_final_test(NAME, table, "cifar10", 100, seeds)
    random = checks.mean_final_test("random", table, "cifar10", 100, seeds)
    assert ours > random + 0.2
