"""The checks every strategy passes: determinism, exact resume with trials in flight, failures.

Model-based strategies (bananas, reinforce, qlearning) are never stored as models: they are rebuilt on
load from the results and the seed, so resuming with trials in flight must continue exactly.
"""

from __future__ import annotations

import pytest

from tests.strategies import checks

NAMES = ['bananas', 'evolution', 'local', 'qlearning', 'reinforce']


@pytest.mark.parametrize("name", NAMES)
def test_same_seed_same_proposals(name: str) -> None:
    checks.check_determinism(name)


@pytest.mark.parametrize("name", NAMES)
def test_resume_with_trials_in_flight(name: str) -> None:
    checks.check_resume_with_pending(name)


@pytest.mark.parametrize("name", NAMES)
def test_failures_and_strangers(name: str) -> None:
    checks.check_failures(name)
    checks.check_ignores_strangers(name)
