"""Typed settings of one search. The CLI and the Python API both build a SearchConfig."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from nasforge.core.errors import ConfigError

# Settings that define a study: resuming with different values would mix incompatible trials.
IDENTITY_FIELDS = ("space", "space_config", "strategy", "strategy_config", "evaluator", "evaluator_config",
                   "objective", "direction", "seed")


@dataclass(frozen=True)
class SearchConfig:
    study: str
    space: str
    strategy: str
    evaluator: str
    evaluator_config: dict[str, Any]
    objective: str
    direction: str
    trials: int
    space_config: dict[str, Any] = field(default_factory=dict)
    strategy_config: dict[str, Any] = field(default_factory=dict)
    owner: str = ""
    storage: str | None = None
    root: str | None = None
    workers: int | None = None
    seed: int = 0
    progress: bool = True

    def __post_init__(self) -> None:
        if self.trials < 1:
            raise ConfigError(f"--trials must be a positive number (got {self.trials})")
        if self.workers is not None and self.workers < 1:
            raise ConfigError(f"--workers must be a positive number (got {self.workers})")
        if self.direction not in ("maximize", "minimize"):
            raise ConfigError(f"direction must be 'maximize' or 'minimize' (got {self.direction!r})")
        if not self.study or "/" in self.study or self.study.strip() != self.study:
            raise ConfigError(f"--study {self.study!r} is not a usable study name")

    def identity(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in IDENTITY_FIELDS}
