"""User options (`--objectives`, `--max-*`, `--scalarize`, `--latency-option`) checked and turned into a
study's settings, before any study is touched."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from nasforge.core.errors import ConfigError
from nasforge.objectives.latency import LatencySettings
from nasforge.objectives.spec import (
    CHEAP_COSTS,
    MEASURED_COSTS,
    Goals,
    parse_constraints,
    parse_objectives,
    parse_weights,
)

MULTI_OBJECTIVE_STRATEGIES = ("nsga2",)  # strategies that take the objectives themselves
PENALISED_ONESHOT = ("darts", "enas")  # one-shot methods with a resource penalty (nasforge.oneshot.resource)


@dataclass(frozen=True)
class GoalSettings:
    objective: str
    direction: str
    objectives: list[str] | None = None
    constraints: dict[str, float] | None = None
    scalarize: dict[str, float] | None = None
    latency: dict[str, Any] | None = None


def resolve_goals(*, objective: str, direction: str, objectives: Any = None,
                  constraints: Mapping[str, Any] | None = None, scalarize: Any = None,
                  latency_options: Mapping[str, Any] | None = None, strategy: str = "",
                  oneshot: bool = False, evaluator: Any = None, evaluator_name: str = "") -> GoalSettings:
    """The study's objective (the first of `objectives`, else the task's), objectives, constraints, weights
    and latency settings, each validated; `evaluator` (an instance) is checked to be able to give the costs."""
    for label, value in (("constraints", constraints), ("latency_options", latency_options)):
        if value is not None and not isinstance(value, Mapping):
            raise ConfigError(f"{label} must be a mapping of names to values (got {value!r})")
    objs = parse_objectives(objectives) if objectives is not None else []
    limits = parse_constraints(constraints)
    if oneshot and (objs or limits or scalarize is not None):
        hint = ("; use --strategy-option resource_penalty=W (and resource=flops|params|latency_ms) for a "
                "cost-aware search") if strategy in PENALISED_ONESHOT else ""
        raise ConfigError(f"--strategy {strategy} is a one-shot search: it takes no --objectives, --scalarize or "
                          f"--max-* constraints{hint}")
    if objs:
        objective, direction = objs[0].name, objs[0].direction
    weights = parse_weights(scalarize, [o.name for o in objs[1:]])
    if scalarize is not None and len(objs) < 2:
        raise ConfigError("--scalarize weighs secondary objectives into the score: give --objectives with two or "
                          "more (e.g. valid_accuracy,latency_ms)")
    if weights and strategy in MULTI_OBJECTIVE_STRATEGIES:
        raise ConfigError(f"--scalarize is for single-objective strategies; {strategy} optimises every objective")
    goals = Goals(objectives=tuple(objs), constraints=limits, weights=weights)
    wanted = goals.costs_needed()
    measured = [c for c in wanted if c in MEASURED_COSTS]
    if latency_options and not measured:
        raise ConfigError("--latency-option sets how latency_ms or peak_memory_mb are measured: add one of them "
                          "to --objectives or a --max-latency-ms / --max-peak-memory-mb constraint")
    latency = LatencySettings.from_options(latency_options).to_json() if measured else None
    if evaluator is not None and wanted:
        _check_evaluator(evaluator, evaluator_name, wanted, measured)
    return GoalSettings(objective=objective, direction=direction, objectives=[o.text() for o in objs] or None,
                        constraints=limits or None, scalarize=weights or None, latency=latency)


def _check_evaluator(evaluator: Any, name: str, wanted: list[str], measured: list[str]) -> None:
    known = callable(getattr(evaluator, "known_costs", None))
    inputs = getattr(evaluator, "cost_inputs", None)
    if not callable(inputs):
        if measured or not known:
            raise ConfigError(f"the {name} evaluator builds no model, so {', '.join(measured or wanted)} cannot be "
                              "computed; it reports only " + (", ".join(CHEAP_COSTS) if known else "its metrics"))
        return
    if measured or not known:
        inputs(None)  # e.g. a benchmark table whose dataset has no known input shape fails here, in one line


def strategy_options(strategy: str, options: dict[str, Any], settings: GoalSettings) -> dict[str, Any]:
    """A multi-objective strategy is given the study's objectives unless its options name them."""
    if strategy in MULTI_OBJECTIVE_STRATEGIES and settings.objectives and "objectives" not in options:
        return {**options, "objectives": list(settings.objectives)}
    return options
