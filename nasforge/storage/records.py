"""The store's plain records: studies and trials as frozen/plain dataclasses, detached from the ORM rows."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from nasforge.core.types import JSONDict, Result, TrialState
from nasforge.storage.schema import StudyModel


@dataclass(frozen=True)
class StudyInfo:
    id: int
    name: str
    owner: str
    config: JSONDict
    objective: str
    direction: str
    artifact_dir: str
    created: datetime
    baseline: JSONDict | None = None  # the gradient-boosting baseline's metrics (nasforge.baseline)


@dataclass
class TrialRow:
    number: int
    key: str
    arch: JSONDict
    state: TrialState
    score: float | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    params: int | None = None
    seed: int = 0
    started: datetime | None = None
    finished: datetime | None = None
    duration: float | None = None
    error: str | None = None
    checkpoint: str | None = None
    parent: int | None = None
    budget: JSONDict = field(default_factory=dict)
    info: JSONDict = field(default_factory=dict)
    heartbeat: datetime | None = None
    runner: str | None = None  # the runner holding it while running
    retry_of: int | None = None  # the failed trial this one retries

    def to_result(self) -> Result:
        return Result(state=self.state, metrics=dict(self.metrics), score=self.score, error=self.error,
                      params=self.params, duration=self.duration or 0.0, checkpoint=self.checkpoint,
                      trial_number=self.number)


@dataclass(frozen=True)
class NewTrial:
    key: str
    arch: JSONDict
    parent: int | None = None
    budget: JSONDict = field(default_factory=dict)
    info: JSONDict = field(default_factory=dict)
    retry_of: int | None = None


@dataclass(frozen=True)
class StudyCounts:
    """Logical trials: a failed trial that was retried and its retry count once, and a trial a constraint
    pruned (never trained) not at all: `--trials` counts what was trained or tried."""

    logical: int
    running: int
    failed: int
    pruned: int = 0

    @property
    def finished(self) -> int:
        return self.logical - self.running


def _row(m: Any) -> TrialRow:
    return TrialRow(number=m.number, key=m.key, arch=m.arch, state=TrialState(m.state), score=m.score,
                    metrics=dict(m.metrics or {}), params=m.params, seed=m.seed, started=m.started,
                    finished=m.finished, duration=m.duration, error=m.error, checkpoint=m.checkpoint,
                    parent=m.parent, budget=dict(m.budget or {}), info=dict(m.info or {}),
                    heartbeat=m.heartbeat, runner=m.runner, retry_of=m.retry_of)


def _study(m: StudyModel) -> StudyInfo:
    return StudyInfo(id=m.id, name=m.name, owner=m.owner, config=m.config, objective=m.objective,
                     direction=m.direction, artifact_dir=m.artifact_dir, created=m.created,
                     baseline=dict(m.baseline) if m.baseline else None)
