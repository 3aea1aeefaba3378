"""What every one-shot method (ENAS, DARTS, SMASH) gives the rest of nasforge.

One-shot methods do not fit ask/tell: their search phase trains shared (or generated) weights in
one process. What they hand back is an architecture of an ordinary space, which the study stores
as a trial and retrains from scratch as another trial, so `trials`, `predict` and `export` work on
it unchanged. Progress during the search phase goes through `progress(epoch, metrics)`, which the
study glue writes into the store as the one-shot trial's intermediate values.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from nasforge.core.types import Architecture, JSONDict

if TYPE_CHECKING:
    import torch

    from nasforge.data.base import Dataset

ProgressFn = Callable[[int, dict[str, float]], None]
"""`(epoch, metrics)`: e.g. train_loss, valid_accuracy (shared weights), alpha_entropy, controller_entropy."""


@dataclass
class OneShotResult:
    """The derived architecture and what the search phase measured about it.

    `metrics`: one-shot validation metric of `arch` (e.g. `valid_accuracy` or `valid_perplexity`
    with shared/generated weights), `search_seconds`, `peak_memory_mb`, ... (floats only).
    `candidates`: ranked `(arch, one-shot score)` pairs when the method compared several (ENAS: k
    sampled, SMASH: many). `state`: JSON the method wants kept (final alphas, controller entropy...).
    """

    arch: Architecture
    metrics: dict[str, float]
    candidates: list[tuple[Architecture, float]] = field(default_factory=list)
    state: JSONDict = field(default_factory=dict)


class OneShotMethod(Protocol):
    """A weight-sharing search. Options are constructor keyword arguments (JSON values)."""

    name: str

    def search(self, space: Any, dataset: Dataset, *, seed: int, device: torch.device,
               progress: ProgressFn) -> OneShotResult: ...
