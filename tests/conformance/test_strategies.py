"""Every registered strategy, on every pure-Python space: ask/tell, determinism, state round trip (the checks live
in nasforge.testing, so a plugin author runs the same ones on their own strategy)."""

from __future__ import annotations

import pytest

from nasforge.core import registry
from nasforge.testing import strategies

STRATEGIES = registry.available("strategy")
SPACES = ["nb201", "dnn"]


def make(name: str) -> strategies.MakeStrategy:
    return strategies.maker(name)


@pytest.mark.parametrize("space_name", SPACES)
@pytest.mark.parametrize("name", STRATEGIES)
def test_proposals_are_valid(name: str, space_name: str) -> None:
    strategies.proposals_are_valid(make(name), space_name)


@pytest.mark.parametrize("space_name", SPACES)
@pytest.mark.parametrize("name", STRATEGIES)
def test_same_seed_same_proposals(name: str, space_name: str) -> None:
    strategies.same_seed_same_proposals(make(name), space_name)


@pytest.mark.parametrize("space_name", SPACES)
@pytest.mark.parametrize("name", STRATEGIES)
def test_state_round_trip_continues_exactly(name: str, space_name: str) -> None:
    strategies.state_round_trip_continues_exactly(make(name), space_name)


@pytest.mark.parametrize("name", STRATEGIES)
def test_survives_only_failures(name: str) -> None:
    strategies.survives_only_failures(make(name), "nb201")


@pytest.mark.parametrize("name", STRATEGIES)
def test_learns_on_a_smooth_landscape(name: str) -> None:
    strategies.learns_on_a_smooth_landscape(make(name), "nb201")


# Distinct architectures each must reach on nb201 (thousands of distinct cells) before 2,000 repeats in a row, as
# the runner counts them: every strategy 300, the model-fitting ones fewer, as each query refits their model.
DISTINCT = {"bananas": 60, "proxy_bananas": 60, "npenas": 100}


@pytest.mark.parametrize("name", STRATEGIES)
def test_keeps_finding_new_architectures(name: str) -> None:
    strategies.keeps_finding_new_architectures(make(name), "nb201", count=DISTINCT.get(name, 300))
