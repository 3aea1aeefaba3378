"""The extension points. Each has a conformance suite under tests/conformance/."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

from nasforge.core.types import Architecture, Decision, JSONDict, Proposal, Result, TrialSpec

if TYPE_CHECKING:
    import torch

    from nasforge.data.base import DataSpec


@runtime_checkable
class SearchSpace(Protocol):
    """A set of discrete decisions describing one network; pure Python apart from `build`."""

    name: str

    def decision(self, prefix: Sequence[int]) -> Decision | None:
        """The next decision after `prefix`, or None when `prefix` is a complete architecture."""
        ...

    def assemble(self, tokens: Sequence[int]) -> Architecture: ...

    def sample(self, rng: np.random.Generator) -> Architecture: ...

    def mutate(self, arch: Architecture, rng: np.random.Generator) -> Architecture: ...

    def key(self, arch: Architecture) -> str: ...

    def describe(self, arch: Architecture) -> JSONDict:
        """Human-readable JSON of the architecture (also accepted by `from_json`)."""
        ...

    def summary(self, arch: Architecture) -> str:
        """One short line for leaderboards."""
        ...

    def to_json(self, arch: Architecture) -> JSONDict: ...

    def from_json(self, data: JSONDict) -> Architecture: ...

    def config(self) -> JSONDict:
        """Constructor arguments, so a worker can rebuild the space from the registry."""
        ...

    def build(self, arch: Architecture, data: DataSpec) -> torch.nn.Module: ...


@runtime_checkable
class Strategy(Protocol):
    """Proposes architectures and learns from results; never trains, sleeps or does I/O."""

    def ask(self, n: int) -> list[Proposal]:
        """Up to n proposals; fewer (even none) means it waits for results."""
        ...

    def tell(self, proposal: Proposal, result: Result) -> None: ...

    def is_finished(self) -> bool: ...

    def state_dict(self) -> JSONDict: ...

    def load_state_dict(self, state: JSONDict) -> None: ...


class Reporter(Protocol):
    def report(self, step: int, metrics: dict[str, float]) -> None: ...


@runtime_checkable
class Evaluator(Protocol):
    """Turns an architecture into metrics (train, look up a table, or score with shared weights)."""

    def evaluate(self, arch: Architecture, spec: TrialSpec, reporter: Reporter) -> Result: ...


class Backend(Protocol):
    """Where trials run."""

    def capacity(self) -> int: ...

    def submit(self, spec: TrialSpec) -> Future[Result]: ...

    def shutdown(self) -> None: ...


StrategyFactory = Callable[..., Strategy]
SpaceFactory = Callable[..., SearchSpace]
EvaluatorFactory = Callable[..., Evaluator]
AnyDict = dict[str, Any]
