"""`--pick "latency_ms<5 and valid_accuracy>=0.9"`: choose a trial by its metrics.

A tiny parser, never `eval`: conditions `METRIC OP NUMBER` (OP one of < <= > >= = ==) joined by `and`.
The pick is the best-scoring complete trial that meets every condition.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from nasforge.core.errors import ConfigError, UserError
from nasforge.core.ranking import best_key
from nasforge.core.types import TrialState
from nasforge.objectives.pareto import trial_value

_OPS: dict[str, Callable[[float, float], bool]] = {
    "<=": operator.le, ">=": operator.ge, "==": operator.eq, "<": operator.lt, ">": operator.gt, "=": operator.eq}
_CONDITION = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_.-]*)\s*(<=|>=|==|<|>|=)\s*"
                        r"([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*$")


@dataclass(frozen=True)
class Condition:
    metric: str
    op: str
    value: float

    def holds(self, trial: Any) -> bool:
        got = trial_value(trial, self.metric)
        return got is not None and _OPS[self.op](got, self.value)

    def text(self) -> str:
        return f"{self.metric}{self.op}{self.value:g}"


def parse_pick(text: str) -> list[Condition]:
    """Conditions of a pick expression; a malformed one is a one-line ConfigError."""
    if not isinstance(text, str) or not text.strip():
        raise ConfigError("--pick: empty expression; give conditions like \"latency_ms<5 and params<1e6\"")
    out = []
    for part in re.split(r"\s+and\s+", text.strip(), flags=re.IGNORECASE):
        match = _CONDITION.match(part)
        if match is None:
            raise ConfigError(f"--pick: cannot read {part.strip()!r}; each condition is METRIC OP NUMBER with OP "
                              "one of < <= > >= =, joined by 'and' (e.g. \"latency_ms<5 and params<1e6\")")
        value = float(match.group(3))
        if not math.isfinite(value):
            raise ConfigError(f"--pick: {part.strip()!r} compares with a number that is not finite")
        out.append(Condition(match.group(1), match.group(2), value))
    return out


def pick_trial(trials: Sequence[Any], text: str, study: str = "") -> Any:
    """The best-scoring complete trial meeting every condition of `text` (ties: `core.ranking.best_key`)."""
    conditions = parse_pick(text)
    complete = [t for t in trials if t.state == TrialState.COMPLETE and t.score is not None]
    where = f" of study {study!r}" if study else ""
    for c in conditions:
        if not any(trial_value(t, c.metric) is not None for t in complete):
            known = sorted({k for t in complete for k in t.metrics} | ({"params"} if complete else set()))
            raise UserError(f"--pick: no complete trial{where} has a metric {c.metric!r}; stored metrics: "
                            f"{', '.join(known) or 'none (no complete trial yet)'}")
    chosen = [t for t in complete if all(c.holds(t) for c in conditions)]
    if not chosen:
        raise UserError(f"--pick: no complete trial{where} meets {' and '.join(c.text() for c in conditions)} "
                        f"({len(complete)} complete trials)")
    return max(chosen, key=best_key)
