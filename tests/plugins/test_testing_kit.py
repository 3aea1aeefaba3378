"""nasforge.testing: the conformance checks, run with one call on a space or strategy from outside the package."""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import pytest

from nasforge.core.types import Architecture, JSONDict
from nasforge.data.base import DataSpec
from nasforge.spaces.dnn import DNNSpace
from nasforge.strategies.random_search import RandomSearch
from nasforge.testing import check_space, check_strategy


class UnseededSpace(DNNSpace):
    """Broken: samples from Python's global generator, so a seed does not fix the architecture."""

    def sample(self, rng: np.random.Generator) -> Architecture:
        return super().sample(np.random.default_rng(random.randrange(1 << 30)))


class ForgetfulSearch(RandomSearch):
    """Broken: its state_dict() leaves out the generator, so a resumed search proposes other architectures."""

    def state_dict(self) -> JSONDict:
        return {}

    def load_state_dict(self, state: JSONDict) -> None:
        return None


class NotAProposal(RandomSearch):
    def ask(self, n: int) -> list[Any]:
        return [p.arch for p in super().ask(n)]


def test_a_conforming_space_and_strategy_pass_with_one_call() -> None:
    ran = check_space(DNNSpace(max_depth=3), data=DataSpec("classification", (5,), 3), samples=40)
    assert ran == ["sample_is_valid_and_seeded", "json_round_trip", "mutate_changes_key_and_stays_valid",
                   "neighbours_are_one_step", "build_forward_backward"]
    ran = check_strategy("random", spaces=["nb201", DNNSpace(max_depth=3)])
    assert "state_round_trip_continues_exactly[dnn]" in ran and "learns_on_a_smooth_landscape[nb201]" in ran
    assert check_strategy(RandomSearch, spaces=["nb201"])[0] == "proposals_are_valid[nb201]"


def test_broken_plugins_fail_with_what_broke() -> None:
    with pytest.raises(AssertionError, match="same seed must give the same architecture"):
        check_space(UnseededSpace(), samples=20)
    with pytest.raises(AssertionError, match="diverged"):
        check_strategy(ForgetfulSearch, spaces=["nb201"])
    with pytest.raises(AssertionError, match="not a Proposal"):
        check_strategy(NotAProposal, spaces=["dnn"])
