"""A deterministic, instant objective over an architecture's tokens, for testing the machinery.

It lets the runner, stores and backends be exercised (and benchmarked for overhead) without
training anything, and can inject the failures real trials meet: exceptions, NaN, slowness.
"""

from __future__ import annotations

import hashlib
import math
import time

from nasforge.core.protocols import Reporter
from nasforge.core.types import Architecture, Result, TrialSpec, TrialState


class SyntheticEvaluator:
    def __init__(self, sleep: float = 0.0, fail_every: int = 0, nan_every: int = 0, noise: float = 0.0) -> None:
        self.sleep = sleep
        self.fail_every = fail_every
        self.nan_every = nan_every
        self.noise = noise

    def value(self, arch: Architecture) -> float:
        """Higher for smaller tokens at early positions: a smooth landscape strategies can climb."""
        total = sum(1.0 / (1 + t) / (1 + 0.1 * i) for i, t in enumerate(arch.tokens))
        return total / max(1, len(arch.tokens))

    def evaluate(self, arch: Architecture, spec: TrialSpec, reporter: Reporter) -> Result:
        if self.sleep:
            time.sleep(self.sleep)
        n = spec.number + 1
        if self.fail_every and n % self.fail_every == 0:
            raise RuntimeError(f"injected failure in trial {spec.number}")
        value = self.value(arch)
        if self.noise:
            digest = hashlib.sha256(f"{spec.seed}".encode()).digest()
            value += self.noise * (digest[0] / 255.0 - 0.5)
        if self.nan_every and n % self.nan_every == 0:
            value = math.nan
        reporter.report(0, {"valid_accuracy": value})
        return Result(TrialState.COMPLETE, metrics={"valid_accuracy": value, "test_accuracy": value},
                      params=len(arch.tokens))
