"""Objectives, directions, constraints and the scalarised score."""

from __future__ import annotations

import math

import pytest

from nasforge.core.errors import ConfigError
from nasforge.objectives.spec import (
    MAXIMIZE,
    MINIMIZE,
    Goals,
    Objective,
    parse_constraints,
    parse_objectives,
    parse_weights,
)


def test_default_directions_and_overrides() -> None:
    objs = parse_objectives("valid_accuracy, params,latency_ms:max, valid_rmse")
    assert [(o.name, o.direction) for o in objs] == [
        ("valid_accuracy", MAXIMIZE), ("params", MINIMIZE), ("latency_ms", MAXIMIZE), ("valid_rmse", MINIMIZE)]
    assert parse_objectives(["flops:minimize", "my_metric:max"])[1] == Objective("my_metric", MAXIMIZE)


@pytest.mark.parametrize("text, message", [
    ("valid_accuracy,widgets", "widgets:max"),  # a name that says nothing needs a direction
    ("params:smallest", "max or min"),
    ("params,params", "twice"),
    ("os.system('x')", "not a metric name"),
    (",", "no objective"),
])
def test_bad_objectives_are_one_line_errors(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        parse_objectives(text)


def test_constraints_accept_only_costs_with_positive_limits() -> None:
    assert parse_constraints({"params": "1e6", "latency_ms": 5}) == {"params": 1e6, "latency_ms": 5.0}
    for bad in ({"valid_accuracy": 1}, {"params": 0}, {"flops": math.inf}, {"params": True}, {"params": "lots"}):
        with pytest.raises(ConfigError):
            parse_constraints(bad)


def test_violation_is_the_largest_relative_excess() -> None:
    goals = Goals(constraints={"params": 100.0, "latency_ms": 2.0})
    assert goals.violation({"params": 100.0, "latency_ms": 1.0}) == (0.0, None)
    excess, reason = goals.violation({"params": 150.0, "latency_ms": 4.0})
    assert excess == pytest.approx(1.0) and reason is not None and "latency_ms 4 > 2" in reason
    assert "--max-latency-ms" in reason


def test_values_are_oriented_and_missing_ones_give_none() -> None:
    goals = Goals(objectives=tuple(parse_objectives("valid_accuracy,params")))
    assert goals.values({"valid_accuracy": 0.9, "params": 10.0}) == [0.9, -10.0]
    assert goals.values({"valid_accuracy": 0.9}) is None
    assert goals.missing({"valid_accuracy": 0.9}) == ["params"]
    assert goals.score({"valid_accuracy": 0.9, "params": 10.0}) == 0.9  # without weights: the first objective


def test_scalarised_score_trades_accuracy_for_cost() -> None:
    objs = tuple(parse_objectives("valid_accuracy,latency_ms"))
    goals = Goals(objectives=objs, constraints={"latency_ms": 5.0}, weights={"latency_ms": 0.5})
    at_target = goals.score({"valid_accuracy": 0.8, "latency_ms": 5.0})
    slower = goals.score({"valid_accuracy": 0.8, "latency_ms": 20.0})
    assert at_target == pytest.approx(0.8)  # (c / T) ** -w is 1 at the limit
    assert slower == pytest.approx(0.8 * 4 ** -0.5)
    # a minimised first objective: the score is negative, and cost must still make it worse
    rmse = Goals(objectives=tuple(parse_objectives("valid_rmse,params")), weights={"params": 1.0})
    assert rmse.score({"valid_rmse": 2.0, "params": 4.0}) < rmse.score({"valid_rmse": 2.0, "params": 2.0}) < 0


def test_weights_name_secondary_objectives_only() -> None:
    assert parse_weights(0.07, ["params", "flops"]) == {"params": 0.07, "flops": 0.07}
    assert parse_weights("params=0.1", ["params", "flops"]) == {"params": 0.1}
    with pytest.raises(ConfigError, match="not a secondary objective"):
        parse_weights("valid_accuracy=1", ["params"])
    with pytest.raises(ConfigError):
        parse_weights(-1, ["params"])


def test_goals_json_round_trip() -> None:
    goals = Goals(objectives=tuple(parse_objectives("valid_accuracy,latency_ms")), constraints={"params": 5.0},
                  weights={"latency_ms": 0.1}, latency={"threads": 2})
    back = Goals.from_json(goals.to_json())
    assert back.objectives == goals.objectives and dict(back.constraints) == {"params": 5.0}
    assert back.costs_needed() == ["params", "latency_ms"]
