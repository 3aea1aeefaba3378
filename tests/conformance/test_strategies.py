"""Every registered strategy, on every pure-Python space: ask/tell, determinism, state round trip."""

from __future__ import annotations

import json

import numpy as np
import pytest

from nasforge.core import registry
from nasforge.core.types import Proposal, Result, TrialState
from nasforge.evaluators.synthetic import SyntheticEvaluator

STRATEGIES = registry.available("strategy")
SPACES = ["nb201", "dnn"]
OBJECTIVE = SyntheticEvaluator()


def result_for(p: Proposal, number: int) -> Result:
    if number % 7 == 6:  # every seventh trial fails, as real trials sometimes do
        return Result(TrialState.FAILED, error="boom")
    score = OBJECTIVE.value(p.arch)
    return Result(TrialState.COMPLETE, metrics={"valid_accuracy": score}, score=score)


def drive(strategy, steps: int, batch: int = 2, start: int = 0) -> list[str]:
    """Ask in batches, tell in reverse order (as parallel workers would), like the runner."""
    keys: list[str] = []
    seen: dict[str, Result] = {}
    number = start
    while len(keys) < steps:
        proposals = strategy.ask(batch)
        assert len(proposals) <= batch
        if not proposals:
            break
        for p in reversed(proposals):
            keys.append(p.key)
            if p.key in seen:
                strategy.tell(p, seen[p.key])
                continue
            res = result_for(p, number)
            number += 1
            seen[p.key] = res
            strategy.tell(p, res)
    return keys[:steps]


def make(name: str, space_name: str, seed: int = 0, max_trials: int = 60):
    space = registry.create("space", space_name)
    return registry.create("strategy", name, space=space, seed=seed, max_trials=max_trials)


@pytest.mark.parametrize("space_name", SPACES)
@pytest.mark.parametrize("name", STRATEGIES)
def test_proposals_are_valid(name: str, space_name: str) -> None:
    strategy = make(name, space_name)
    space = strategy.space if hasattr(strategy, "space") else registry.create("space", space_name)
    for p in strategy.ask(3):
        assert isinstance(p, Proposal)
        assert space.key(space.assemble(p.arch.tokens)) == p.key
        json.dumps(p.info)


@pytest.mark.parametrize("space_name", SPACES)
@pytest.mark.parametrize("name", STRATEGIES)
def test_same_seed_same_proposals(name: str, space_name: str) -> None:
    assert drive(make(name, space_name, seed=3), 30) == drive(make(name, space_name, seed=3), 30)


@pytest.mark.parametrize("space_name", SPACES)
@pytest.mark.parametrize("name", STRATEGIES)
def test_state_round_trip_continues_exactly(name: str, space_name: str) -> None:
    a = make(name, space_name, seed=5)
    drive(a, 20)
    state = json.loads(json.dumps(a.state_dict()))  # must be pure JSON
    b = make(name, space_name, seed=999)
    b.load_state_dict(state)
    assert drive(a, 20, start=100) == drive(b, 20, start=100)


@pytest.mark.parametrize("name", STRATEGIES)
def test_survives_only_failures(name: str) -> None:
    strategy = make(name, "nb201")
    for _ in range(5):
        for p in strategy.ask(2):
            strategy.tell(p, Result(TrialState.FAILED, error="boom"))
    assert len(strategy.ask(1)) <= 1


@pytest.mark.parametrize("name", STRATEGIES)
def test_learns_on_a_smooth_landscape(name: str) -> None:
    """Not a benchmark: only that feedback is used (best found beats the average random sample)."""
    space = registry.create("space", "nb201")
    rng = np.random.default_rng(0)
    random_mean = float(np.mean([OBJECTIVE.value(space.sample(rng)) for _ in range(200)]))
    strategy = make(name, "nb201", seed=1, max_trials=80)
    best = -1.0
    for _ in range(80):
        for p in strategy.ask(1):
            score = OBJECTIVE.value(p.arch)
            strategy.tell(p, Result(TrialState.COMPLETE, metrics={"valid_accuracy": score}, score=score))
            best = max(best, score)
    assert best > random_mean
