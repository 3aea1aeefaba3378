"""In-process and local process-pool backends."""

from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import Future, ProcessPoolExecutor

from nasforge.core.errors import ConfigError
from nasforge.core.types import Result, TrialSpec
from nasforge.execution.worker import run_trial


def default_workers() -> int:
    return max(1, os.cpu_count() or 1)


class InProcessBackend:
    """Runs each trial immediately in this process: no start-up cost, and state an evaluator keeps survives."""

    def capacity(self) -> int:
        return 1

    def threads(self) -> int:
        return 0  # leave torch's own thread setting alone

    def submit(self, spec: TrialSpec) -> Future[Result]:
        future: Future[Result] = Future()
        future.set_result(run_trial(spec))
        return future

    def shutdown(self) -> None:
        return None


class ProcessPoolBackend:
    """N worker processes (spawned, so torch's threads and locks are never forked).

    Each worker keeps its evaluator, and so its loaded data, between trials; the cores are
    split between workers so they do not oversubscribe the CPU.
    """

    def __init__(self, workers: int) -> None:
        if workers < 1:
            raise ConfigError(f"--workers must be at least 1 (got {workers})")
        self.workers = workers
        self._pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"))

    def capacity(self) -> int:
        return self.workers

    def threads(self) -> int:
        return max(1, (os.cpu_count() or 1) // self.workers)

    def submit(self, spec: TrialSpec) -> Future[Result]:
        return self._pool.submit(run_trial, spec)

    def shutdown(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


def make_backend(workers: int | None) -> InProcessBackend | ProcessPoolBackend:
    """One worker runs in-process; more use a process pool."""
    n = default_workers() if workers is None else workers
    if n < 1:
        raise ConfigError(f"--workers must be at least 1 (got {n})")
    return InProcessBackend() if n == 1 else ProcessPoolBackend(n)
