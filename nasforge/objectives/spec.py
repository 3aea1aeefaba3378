"""What a study optimises and what it must respect: objectives with directions, cost constraints, and
an optional scalarisation for single-objective strategies.

Everything here is JSON in and out (`Goals.to_json`), so it travels in a `TrialSpec` and is stored with
the study; the worker, the runner, NSGA-II and the reports all read the same definition.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from nasforge.core.errors import ConfigError
from nasforge.core.types import JSONDict

MAXIMIZE, MINIMIZE = "maximize", "minimize"
# Costs nasforge computes itself: the first two from the architecture alone (before training), the
# others measured by running the built model on the device it will run on.
CHEAP_COSTS = ("params", "flops")
MEASURED_COSTS = ("latency_ms", "peak_memory_mb")
COSTS = CHEAP_COSTS + MEASURED_COSTS
CONSTRAINT_FLAGS = {"params": "--max-params", "flops": "--max-flops", "latency_ms": "--max-latency-ms",
                    "peak_memory_mb": "--max-peak-memory-mb"}
_DIRECTION_WORDS = {"max": MAXIMIZE, "maximize": MAXIMIZE, "maximise": MAXIMIZE,
                    "min": MINIMIZE, "minimize": MINIMIZE, "minimise": MINIMIZE}
# Default directions by what a metric's name says it is.
_HIGHER = ("accuracy", "r2", "auc", "f1", "reward", "precision", "recall")
_LOWER = ("loss", "rmse", "mae", "mse", "perplexity", "error", "time", "seconds")


@dataclass(frozen=True)
class Objective:
    name: str
    direction: str = MAXIMIZE

    @property
    def sign(self) -> float:
        """+1 when higher is better, -1 when lower is: `sign * value` is always to be maximised."""
        return 1.0 if self.direction == MAXIMIZE else -1.0

    def text(self) -> str:
        return f"{self.name}:{'max' if self.direction == MAXIMIZE else 'min'}"


def default_direction(name: str) -> str | None:
    """Costs are minimised, accuracies maximised; None when the name does not say."""
    lowered = name.lower()
    if lowered in COSTS:
        return MINIMIZE
    if any(word in lowered for word in _HIGHER):
        return MAXIMIZE
    if any(word in lowered for word in _LOWER):
        return MINIMIZE
    return None


def parse_objectives(value: str | Sequence[str] | None, flag: str = "--objectives") -> list[Objective]:
    """`"valid_accuracy,params"` or `["valid_accuracy:max", "latency_ms:min"]` -> objectives, in order."""
    if value is None:
        return []
    items = value.split(",") if isinstance(value, str) else list(value)
    out: list[Objective] = []
    for raw in items:
        if not isinstance(raw, str):
            raise ConfigError(f"{flag}: each objective is a metric name, optionally NAME:max or NAME:min "
                              f"(got {raw!r})")
        text = raw.strip()
        if not text:
            continue
        name, _, word = text.partition(":")
        name = name.strip()
        if not name.replace("_", "").replace("-", "").replace(".", "").isalnum():
            raise ConfigError(f"{flag}: {text!r} is not a metric name (letters, digits and _ only)")
        if word:
            direction = _DIRECTION_WORDS.get(word.strip().lower())
            if direction is None:
                raise ConfigError(f"{flag}: direction {word!r} of {name!r} must be max or min")
        else:
            guessed = default_direction(name)
            if guessed is None:
                raise ConfigError(f"{flag}: say whether {name!r} is to be maximised or minimised: "
                                  f"{name}:max or {name}:min")
            direction = guessed
        if any(o.name == name for o in out):
            raise ConfigError(f"{flag}: {name!r} is listed twice")
        out.append(Objective(name, direction))
    if value is not None and not out:
        raise ConfigError(f"{flag}: no objective given")
    return out


def _positive(value: Any, what: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{what} must be a number (got {value!r})") from None
    if isinstance(value, bool) or not math.isfinite(number) or number <= 0:
        raise ConfigError(f"{what} must be a positive number (got {value!r})")
    return number


def parse_constraints(value: Mapping[str, Any] | None) -> dict[str, float]:
    """{cost: upper limit}; only nasforge's own costs can be limited before training."""
    out: dict[str, float] = {}
    for name, limit in (value or {}).items():
        if name not in COSTS:
            raise ConfigError(f"unknown constraint {name!r}; costs that can be limited: {', '.join(COSTS)}")
        if limit is None:
            continue
        out[name] = _positive(limit, CONSTRAINT_FLAGS[name])
    return out


def parse_weights(value: Any, names: Sequence[str]) -> dict[str, float]:
    """`--scalarize`: one weight for every secondary objective (`0.07`), or per objective
    (`"params=0.07,latency_ms=0.1"` or a mapping)."""
    if value is None:
        return {}
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return {n: _positive(value, "--scalarize") for n in names}
    if isinstance(value, str):
        text = value.strip()
        if "=" not in text:
            return {n: _positive(text, "--scalarize") for n in names}
        pairs: dict[str, Any] = {}
        for part in text.split(","):
            key, sep, number = part.partition("=")
            if not sep:
                raise ConfigError(f"--scalarize: expected NAME=WEIGHT, got {part!r}")
            pairs[key.strip()] = number.strip()
        value = pairs
    if not isinstance(value, Mapping):
        raise ConfigError(f"--scalarize must be a weight or NAME=WEIGHT pairs (got {value!r})")
    out = {}
    for key, weight in value.items():
        if key not in names:
            raise ConfigError(f"--scalarize: {key!r} is not a secondary objective (those are: "
                              f"{', '.join(names) or 'none; give --objectives with two or more'})")
        out[str(key)] = _positive(weight, f"--scalarize {key}")
    return out


@dataclass(frozen=True)
class Goals:
    """Objectives (the first is the study's score unless `weights` scalarise them), constraints, and how
    latency is measured. `known` holds cost measurements the runner found in its cache."""

    objectives: tuple[Objective, ...] = ()
    constraints: Mapping[str, float] = field(default_factory=dict)
    weights: Mapping[str, float] = field(default_factory=dict)
    latency: JSONDict = field(default_factory=dict)
    known: Sequence[JSONDict] = ()

    @property
    def active(self) -> bool:
        return bool(self.objectives or self.constraints)

    def costs_needed(self) -> list[str]:
        """Costs the worker computes for each trial: the limited ones and the cost objectives."""
        wanted = set(self.constraints) | {o.name for o in self.objectives if o.name in COSTS}
        return [c for c in COSTS if c in wanted]

    # ---- constraints ---------------------------------------------------------------------
    def violation(self, costs: Mapping[str, float]) -> tuple[float, str | None]:
        """(how far over, reason) for the costs given: 0 and None when every given cost is within its limit.
        The violation is the largest relative excess, `value / limit - 1`."""
        worst, reason = 0.0, None
        for name, limit in self.constraints.items():
            value = costs.get(name)
            if value is None or value <= limit:
                continue
            excess = value / limit - 1.0
            if excess > worst:
                worst = excess
                reason = f"constraint: {name} {value:.4g} > {limit:.4g} ({CONSTRAINT_FLAGS[name]})"
        return worst, reason

    # ---- scores --------------------------------------------------------------------------
    def values(self, metrics: Mapping[str, float]) -> list[float] | None:
        """The objectives' values, each oriented so that higher is better; None when one is missing."""
        out = []
        for o in self.objectives:
            value = metrics.get(o.name)
            if value is None or not math.isfinite(float(value)):
                return None
            out.append(o.sign * float(value))
        return out

    def score(self, metrics: Mapping[str, float]) -> float | None:
        """The study's score: the first objective, oriented; with weights, MnasNet's soft trade-off
        `s * prod (c_i / T_i) ** -w_i` (s >= 0; `s / prod(...)` below zero), T_i a cost's limit or 1."""
        if not self.objectives:
            return None
        first = self.objectives[0]
        value = metrics.get(first.name)
        if value is None or not math.isfinite(float(value)):
            return None
        score = first.sign * float(value)
        if not self.weights:
            return score
        factor = 1.0
        for name, weight in self.weights.items():
            cost = metrics.get(name)
            if cost is None or not math.isfinite(float(cost)) or float(cost) <= 0:
                return None
            factor *= (float(cost) / self.constraints.get(name, 1.0)) ** -weight
        return score * factor if score >= 0 else score / factor

    def missing(self, metrics: Mapping[str, float]) -> list[str]:
        return [o.name for o in self.objectives if metrics.get(o.name) is None]

    # ---- JSON ----------------------------------------------------------------------------
    def to_json(self) -> JSONDict:
        return {"objectives": [o.text() for o in self.objectives], "constraints": dict(self.constraints),
                "weights": dict(self.weights), "latency": dict(self.latency), "known": list(self.known)}

    @staticmethod
    def from_json(data: Mapping[str, Any] | None) -> Goals:
        data = data or {}
        return Goals(objectives=tuple(parse_objectives(data.get("objectives") or None)),
                     constraints=dict(data.get("constraints") or {}), weights=dict(data.get("weights") or {}),
                     latency=dict(data.get("latency") or {}), known=list(data.get("known") or ()))


def study_goals(config: Mapping[str, Any]) -> Goals:
    """The goals stored with a study's config (a study without them has none)."""
    return Goals.from_json({"objectives": config.get("objectives"), "constraints": config.get("constraints"),
                            "weights": config.get("scalarize"), "latency": config.get("latency")})
