"""Plain value types passed between spaces, strategies, evaluators, backends and the store."""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass, field
from typing import Any

JSONDict = dict[str, Any]


class TrialState(str, enum.Enum):
    WAITING = "waiting"
    RUNNING = "running"
    COMPLETE = "complete"
    PRUNED = "pruned"
    FAILED = "failed"

    @property
    def finished(self) -> bool:
        return self in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAILED)


@dataclass(frozen=True)
class Decision:
    """One token to choose: a name, its full vocabulary, and which entries are allowed here.

    The vocabulary of a name never changes, so a controller can keep one output head per
    name; `allowed` masks the entries that the space's rules forbid after this prefix.
    `kind == "anchor"` marks a yes/no skip connection from layer `source` into layer
    `layer`, which NAS-RL's controller scores with anchor-point attention.
    """

    name: str
    choices: tuple[Any, ...]
    allowed: tuple[int, ...] | None = None
    kind: str = "categorical"
    layer: int | None = None
    source: int | None = None

    def __post_init__(self) -> None:
        if not self.choices:
            raise ValueError(f"decision {self.name!r} has no choices")

    @property
    def options(self) -> tuple[int, ...]:
        """Indices that may be chosen after this prefix."""
        return self.allowed if self.allowed is not None else tuple(range(len(self.choices)))


@dataclass(frozen=True)
class Architecture:
    """One point of a search space: the space's name and the token chosen for each decision."""

    space: str
    tokens: tuple[int, ...]

    def to_json(self) -> JSONDict:
        return {"space": self.space, "tokens": list(self.tokens)}

    @staticmethod
    def from_json(data: JSONDict) -> Architecture:
        return Architecture(space=str(data["space"]), tokens=tuple(int(t) for t in data["tokens"]))


@dataclass(frozen=True)
class Proposal:
    """What a strategy asks to be evaluated; `info` is the strategy's own bookkeeping (JSON)."""

    arch: Architecture
    key: str
    seed: int = 0
    parent: int | None = None
    budget: JSONDict = field(default_factory=dict)
    info: JSONDict = field(default_factory=dict)


@dataclass
class Result:
    """The outcome of one trial. `score` is the study objective, oriented so that higher is better."""

    state: TrialState
    metrics: dict[str, float] = field(default_factory=dict)
    score: float | None = None
    error: str | None = None
    params: int | None = None
    duration: float = 0.0
    checkpoint: str | None = None
    curve: list[dict[str, float]] = field(default_factory=list)
    trial_number: int | None = None
    # Costs the worker computed for the runner's cache: {"context": ..., "values": {...}} (nasforge.objectives)
    costs: JSONDict | None = None

    def to_json(self) -> JSONDict:
        return {
            "state": self.state.value,
            "metrics": self.metrics,
            "score": self.score,
            "error": self.error,
            "params": self.params,
            "duration": self.duration,
            "checkpoint": self.checkpoint,
            "trial_number": self.trial_number,
        }


@dataclass(frozen=True)
class TrialSpec:
    """Everything a worker needs to rebuild and run one trial; picklable, no torch objects."""

    study: str
    number: int
    arch: JSONDict
    seed: int
    space: str
    space_config: JSONDict
    evaluator: str
    evaluator_config: JSONDict
    budget: JSONDict
    objective: str
    direction: str
    workdir: str | None
    threads: int = 1
    # time.time() by which the trial should end (a search's --time-budget): the train evaluator stops after
    # the last epoch that fits, keeping its best epoch so far. None: no deadline.
    deadline: float | None = None
    # The study's objectives, constraints and latency settings (nasforge.objectives.spec.Goals JSON) with
    # cached cost measurements; None: the single objective above and no constraints.
    goals: JSONDict | None = None


def canonical_json(data: Any) -> str:
    """Stable JSON text for keys and comparisons."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"))
