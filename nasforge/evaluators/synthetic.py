"""A deterministic, instant objective over an architecture's tokens, for testing the machinery.

It lets the runner, stores and backends be exercised (and benchmarked for overhead) without
training anything, and can inject the failures real trials meet: exceptions, NaN, slowness,
running out of memory, hanging past any time limit, and a worker process dying. Injections
pick trials by number (`n % every == 0` with n = number + 1), so a retry, which gets a new
number, usually succeeds: exactly what a transient fault looks like.
"""

from __future__ import annotations

import hashlib
import math
import multiprocessing
import os
import signal
import time

from nasforge.core.protocols import Reporter
from nasforge.core.types import Architecture, Result, TrialSpec, TrialState
from nasforge.execution.worker_process import in_pool_worker


class SyntheticEvaluator:
    def __init__(self, sleep: float = 0.0, fail_every: int = 0, nan_every: int = 0, noise: float = 0.0,
                 oom_every: int = 0, hang_every: int = 0, hang: float = 3600.0, crash_every: int = 0) -> None:
        self.sleep = sleep
        self.fail_every = fail_every
        self.nan_every = nan_every
        self.noise = noise
        self.oom_every = oom_every
        self.hang_every = hang_every
        self.hang = hang
        self.crash_every = crash_every

    def value(self, arch: Architecture) -> float:
        """Higher for smaller tokens at early positions: a smooth landscape strategies can climb."""
        total = sum(1.0 / (1 + t) / (1 + 0.1 * i) for i, t in enumerate(arch.tokens))
        return total / max(1, len(arch.tokens))

    def known_costs(self, arch: Architecture, spec: TrialSpec) -> dict[str, float]:
        """Instant stand-ins for constraints and cost objectives: `params` as the result reports it, and `flops`
        that are high where `value` is (small tokens), so accuracy and cost conflict as they do in real spaces."""
        return {"params": float(len(arch.tokens)), "flops": float(sum(round(600 / (1 + t)) for t in arch.tokens))}

    def evaluate(self, arch: Architecture, spec: TrialSpec, reporter: Reporter) -> Result:
        if self.sleep:
            time.sleep(self.sleep)
        n = spec.number + 1
        if self.fail_every and n % self.fail_every == 0:
            raise RuntimeError(f"injected failure in trial {spec.number}")
        if self.oom_every and n % self.oom_every == 0:
            raise MemoryError(f"injected out-of-memory in trial {spec.number}")
        if self.hang_every and n % self.hang_every == 0:
            time.sleep(self.hang)  # a stuck trial: only a --trial-timeout (killing its worker) ends it
        if self.crash_every and n % self.crash_every == 0:
            if multiprocessing.parent_process() is None and not in_pool_worker():  # never kill the runner itself
                raise RuntimeError(f"injected crash in trial {spec.number} (in-process: not killing the runner)")
            os.kill(os.getpid(), signal.SIGKILL)  # the worker dies as under the kernel's OOM killer
        value = self.value(arch)
        if self.noise:
            digest = hashlib.sha256(f"{spec.seed}".encode()).digest()
            value += self.noise * (digest[0] / 255.0 - 0.5)
        if self.nan_every and n % self.nan_every == 0:
            value = math.nan
        reporter.report(0, {"valid_accuracy": value})
        return Result(TrialState.COMPLETE, metrics={"valid_accuracy": value, "test_accuracy": value},
                      params=len(arch.tokens))
