"""The conformance checks every strategy passes (tests/conformance runs them on each built-in strategy).

A check takes `make(seed, max_trials, space)`, a function returning a fresh strategy (determinism and the
state round trip need two of them), and a space: a name (each strategy then gets a space of its own) or an
instance. `check_strategy` builds that from a strategy class (or a
registered name or import path) and runs every check; each raises AssertionError saying what broke.
The objective is the synthetic evaluator's smooth landscape; every seventh trial fails, as real ones do.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from nasforge.core import registry
from nasforge.core.types import Proposal, Result, TrialState
from nasforge.evaluators.synthetic import SyntheticEvaluator

MakeStrategy = Callable[..., Any]
OBJECTIVE = SyntheticEvaluator()


def result_for(p: Proposal, number: int) -> Result:
    if number % 7 == 6:  # every seventh trial fails, as real trials sometimes do
        return Result(TrialState.FAILED, error="boom")
    score = OBJECTIVE.value(p.arch)
    return Result(TrialState.COMPLETE, metrics={"valid_accuracy": score}, score=score)


def drive(strategy: Any, steps: int, batch: int = 2, start: int = 0) -> list[str]:
    """Ask in batches, tell in reverse order (as parallel workers would), like the runner."""
    keys: list[str] = []
    seen: dict[str, Result] = {}
    number = start
    while len(keys) < steps:
        proposals = strategy.ask(batch)
        assert len(proposals) <= batch, f"ask({batch}) returned {len(proposals)} proposals"
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


def proposals_are_valid(make: MakeStrategy, space: Any) -> None:
    strategy = make(seed=0, max_trials=60, space=space)
    own = strategy.space if hasattr(strategy, "space") else space_of(space)
    for p in strategy.ask(3):
        assert isinstance(p, Proposal), f"ask() returned {type(p).__name__}, not a Proposal"
        assert own.key(own.assemble(p.arch.tokens)) == p.key, f"proposal key {p.key} is not its space key"
        json.dumps(p.info)


def same_seed_same_proposals(make: MakeStrategy, space: Any) -> None:
    first = drive(make(seed=3, max_trials=60, space=space), 30)
    assert first == drive(make(seed=3, max_trials=60, space=space), 30), "the same seed gave other proposals"


def state_round_trip_continues_exactly(make: MakeStrategy, space: Any) -> None:
    a = make(seed=5, max_trials=60, space=space)
    drive(a, 20)
    state = json.loads(json.dumps(a.state_dict()))  # must be pure JSON
    b = make(seed=999, max_trials=60, space=space)
    b.load_state_dict(state)
    assert drive(a, 20, start=100) == drive(b, 20, start=100), "a strategy loaded from state_dict() diverged"


def survives_only_failures(make: MakeStrategy, space: Any) -> None:
    strategy = make(seed=0, max_trials=60, space=space)
    for _ in range(5):
        for p in strategy.ask(2):
            strategy.tell(p, Result(TrialState.FAILED, error="boom"))
    assert len(strategy.ask(1)) <= 1


def learns_on_a_smooth_landscape(make: MakeStrategy, space: Any) -> None:
    """Not a benchmark: only that feedback is used (best found beats the average random sample)."""
    rng = np.random.default_rng(0)
    sampler = space_of(space)
    random_mean = float(np.mean([OBJECTIVE.value(sampler.sample(rng)) for _ in range(200)]))
    strategy = make(seed=1, max_trials=80, space=space)
    best = -1.0
    for _ in range(80):
        for p in strategy.ask(1):
            score = OBJECTIVE.value(p.arch)
            strategy.tell(p, Result(TrialState.COMPLETE, metrics={"valid_accuracy": score}, score=score))
            best = max(best, score)
    assert best > random_mean, f"best score {best:.4f} found is not above the random mean {random_mean:.4f}"


def keeps_finding_new_architectures(make: MakeStrategy, space: Any, count: int = 300,
                                    patience: int = 2000) -> None:
    """Driven as the runner drives it (one at a time; a repeat is told the stored result at once and makes no
    trial; `patience` repeats in a row end the search), a strategy reaches `count` distinct architectures on
    a space that has more: a converged strategy must not keep proposing what it already has."""
    strategy = make(seed=0, max_trials=count, space=space)
    seen: dict[str, Result] = {}
    repeats = 0
    while len(seen) < count and repeats < patience:
        proposals = strategy.ask(1)
        if not proposals:
            break
        (p,) = proposals
        if p.key in seen:
            repeats += 1
            strategy.tell(p, seen[p.key])
            continue
        repeats = 0
        seen[p.key] = result_for(p, len(seen))
        strategy.tell(p, seen[p.key])
    assert len(seen) >= count, (f"stopped at {len(seen)} distinct architectures of {count} wanted "
                                f"({repeats} repeats in a row at the end)")


# checks run on every space given, and checks run on the first one only (as tests/conformance does)
EVERY_SPACE: dict[str, Callable[[MakeStrategy, Any], None]] = {
    "proposals_are_valid": proposals_are_valid,
    "same_seed_same_proposals": same_seed_same_proposals,
    "state_round_trip_continues_exactly": state_round_trip_continues_exactly,
}
FIRST_SPACE: dict[str, Callable[[MakeStrategy, Any], None]] = {
    "survives_only_failures": survives_only_failures,
    "learns_on_a_smooth_landscape": learns_on_a_smooth_landscape,
}


def maker(strategy: Any, **options: Any) -> MakeStrategy:
    """`make(seed, max_trials, space)` for a strategy class or function, a registered name or an import path."""
    factory = registry.resolve("strategy", strategy) if isinstance(strategy, str) else strategy

    def make(seed: int, max_trials: int, space: Any) -> Any:
        return factory(space=space_of(space), seed=seed, max_trials=max_trials, **options)

    return make


def space_of(space: Any) -> Any:
    """A space name gives a new space each call (as the runner builds one per strategy); an instance is itself."""
    return registry.create("space", space) if isinstance(space, str) else space


def check_strategy(strategy: Any, spaces: Sequence[Any] = ("nb201", "dnn"), **options: Any) -> list[str]:
    """Every strategy check on `strategy` (a class, a registered name or an import path; `options` go to its
    constructor) over `spaces` (space names or instances); returns the checks run."""
    make = maker(strategy, **options)
    if not spaces:
        raise ValueError("check_strategy needs at least one space")
    run = []
    for space in spaces:
        for name, check in EVERY_SPACE.items():
            check(make, space)
            run.append(f"{name}[{_label(space)}]")
    for name, check in FIRST_SPACE.items():
        check(make, spaces[0])
        run.append(f"{name}[{_label(spaces[0])}]")
    return run


def _label(space: Any) -> str:
    return space if isinstance(space, str) else str(getattr(space, "name", type(space).__name__))
