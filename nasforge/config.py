"""Typed settings of one search. The CLI and the Python API both build a SearchConfig."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from nasforge.core.errors import ConfigError

# Settings that define a study: resuming with different values would mix incompatible trials.
IDENTITY_FIELDS = ("space", "space_config", "strategy", "strategy_config", "evaluator", "evaluator_config",
                   "objective", "direction", "seed", "objectives", "constraints", "scalarize", "latency",
                   "reproducible")


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
    retries: int = 1  # a failed trial is run again this many times (new number and seed) before it counts
    trial_timeout: float | None = None  # seconds; a trial still running then has its worker process killed
    backend: str = "local"  # local (in-process or process pool) or ray
    address: str | None = None  # Ray cluster address (auto, HOST:PORT); none: a local Ray instance
    trial_cpus: float = 1.0  # CPUs (Ray resources) each trial requests
    trial_gpus: float = 0.0  # GPUs each trial requests (Ray)
    # Seconds for the whole search (baseline, trials, final ensemble); None: no limit (nasforge.budget).
    time_budget: float | None = None
    baseline: bool = True  # fit the gradient-boosting baseline on a table's split (nasforge.baseline)
    # Store a greedy ensemble of the best trials when it beats the best one on validation (None: only
    # when there is a time budget; nasforge.ensemble.final).
    final_ensemble: bool | None = None
    # Multi-objective and hardware-aware search (nasforge.objectives): objectives as "name:max|min" (the first
    # is `objective`), upper limits on costs checked before training, MnasNet-style weights that scalarise
    # the secondary objectives into the score, latency measurement settings. None: not used (older studies).
    objectives: list[str] | None = None
    constraints: dict[str, float] | None = None
    scalarize: dict[str, float] | None = None
    latency: dict[str, Any] | None = None
    # Reproducible mode (nasforge.ordered): the strategy hears results in trial order and is asked at most this
    # many trials ahead, so the same seed gives the same study for any --workers. None: results as they come.
    reproducible: int | None = None

    def __post_init__(self) -> None:
        if self.trials < 1:
            raise ConfigError(f"--trials must be a positive number (got {self.trials})")
        if self.workers is not None and self.workers < 1:
            raise ConfigError(f"--workers must be a positive number (got {self.workers})")
        if self.retries < 0:
            raise ConfigError(f"--retries must be 0 or more (got {self.retries})")
        if self.trial_timeout is not None and not self.trial_timeout > 0:
            raise ConfigError(f"--trial-timeout must be a positive number of seconds (got {self.trial_timeout})")
        if self.backend not in ("local", "ray"):
            raise ConfigError(f"unknown --backend {self.backend!r}; choose local or ray")
        if self.address and self.backend != "ray":
            raise ConfigError("--address needs --backend ray")
        if not self.trial_cpus > 0 or self.trial_gpus < 0:
            raise ConfigError(f"--trial-cpus must be positive and --trial-gpus 0 or more "
                              f"(got {self.trial_cpus}, {self.trial_gpus})")
        if self.time_budget is not None and not self.time_budget > 0:
            raise ConfigError(f"--time-budget must be a positive number of seconds (got {self.time_budget})")
        if self.direction not in ("maximize", "minimize"):
            raise ConfigError(f"direction must be 'maximize' or 'minimize' (got {self.direction!r})")
        check_study_name(self.study)
        if self.reproducible is not None and (isinstance(self.reproducible, bool) or not self.reproducible >= 1):
            raise ConfigError(f"--reproducible must be a positive whole number of trials asked ahead "
                              f"(got {self.reproducible})")

    def identity(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in IDENTITY_FIELDS}


def check_study_name(name: str) -> None:
    """A study name is also its folder's name: it must stay one plain folder inside the studies root."""
    if (not name or name.strip() != name or name in (".", "..") or any(c in name for c in '/\\\0')
            or any(ord(c) < 32 for c in name)):
        raise ConfigError(f"--study {name!r} is not a usable study name (it names a folder: no '/', '\\', "
                          "'.' or '..')")
