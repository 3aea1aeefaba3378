"""`--pick`: a small parser that never evaluates code, and the trial it chooses."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from nasforge.core.errors import ConfigError, UserError
from nasforge.core.types import TrialState
from nasforge.objectives.pick import Condition, parse_pick, pick_trial


def test_parse_conditions() -> None:
    assert parse_pick("latency_ms<5 AND params <= 1e6 and valid_accuracy>=.9") == [
        Condition("latency_ms", "<", 5.0), Condition("params", "<=", 1e6), Condition("valid_accuracy", ">=", 0.9)]


@pytest.mark.parametrize("text", ["", "latency_ms", "latency_ms < five", "__import__('os').system('x')<1",
                                  "a<1 or b<2", "1<latency_ms", "a<1 and", "a<nan"])
def test_anything_else_is_refused(text: str) -> None:
    with pytest.raises(ConfigError, match="--pick"):
        parse_pick(text)


def trials() -> list[SimpleNamespace]:
    rows = [(0, 0.90, 7.0, 900), (1, 0.85, 3.0, 400), (2, 0.80, 1.0, 100), (3, 0.95, 2.0, 100)]
    out = [SimpleNamespace(number=n, state=TrialState.COMPLETE, score=a, params=p,
                           metrics={"valid_accuracy": a, "latency_ms": lat}) for n, a, lat, p in rows]
    out[3].state = TrialState.PRUNED  # never trained: never picked
    return out


def test_best_score_meeting_every_condition() -> None:
    assert pick_trial(trials(), "latency_ms<5").number == 1
    assert pick_trial(trials(), "latency_ms<5 and params<200").number == 2
    with pytest.raises(UserError, match=r"no complete trial .* meets latency_ms<0\.5"):
        pick_trial(trials(), "latency_ms<0.5", "s")
    with pytest.raises(UserError, match="has a metric 'flops'"):
        pick_trial(trials(), "flops<5", "s")
