"""Runs one trial from its spec, in whatever process the backend chose."""

from __future__ import annotations

import json
import math
import time
import traceback
from functools import lru_cache
from pathlib import Path
from typing import Any

from nasforge.core import registry
from nasforge.core.protocols import Reporter
from nasforge.core.types import Result, TrialSpec, TrialState, canonical_json


class _NullReporter:
    def report(self, step: int, metrics: dict[str, float]) -> None:
        return None


PROGRESS_FILE = "progress.jsonl"


class ProgressFile:
    """Appends each epoch's metrics to `<trial folder>/progress.jsonl`, so a reader (the dashboard) sees a
    running trial's curve before the runner stores it; then passes them on. Writing is best effort: a
    full disk never fails the trial."""

    def __init__(self, workdir: str, then: Reporter | None = None) -> None:
        self.path = Path(workdir) / PROGRESS_FILE
        self.then = then
        self.broken = False

    def report(self, step: int, metrics: dict[str, float]) -> None:
        if not self.broken:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                with open(self.path, "a") as f:
                    f.write(json.dumps({"step": int(step), **{k: float(v) for k, v in metrics.items()}}) + "\n")
            except (OSError, TypeError, ValueError):
                self.broken = True
        if self.then is not None:
            self.then.report(step, metrics)


@lru_cache(maxsize=8)
def _space(name: str, config_json: str) -> Any:
    return registry.create("space", name, **json.loads(config_json))


@lru_cache(maxsize=4)
def _evaluator(name: str, config_json: str) -> Any:
    """Evaluators are cached per process so a worker loads its data once, not once per trial."""
    return registry.create("evaluator", name, **json.loads(config_json))


def score_of(metrics: dict[str, float], objective: str, direction: str) -> float | None:
    value = metrics.get(objective)
    if value is None or not math.isfinite(value):
        return None
    return float(value) if direction == "maximize" else -float(value)


def failure_kind(exc: BaseException) -> str:
    """The error column starts with a kind (error, oom, nan, timeout, crash) so failures can be counted by cause."""
    if isinstance(exc, MemoryError) or type(exc).__name__ == "OutOfMemoryError":  # torch.cuda.OutOfMemoryError
        return "oom"
    if isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower():  # older torch, other devices
        return "oom"
    return "error"


STARTUP_METRIC = "startup_time"


def prepare(spec: TrialSpec) -> float:
    """Import torch, build (and cache) the trial's space and evaluator and let the evaluator load its data: a
    worker's start-up, which neither the trial's time nor a time limit should count.

    Returns the seconds spent building what was not cached yet (0.0 when everything was, so a worker's later
    trials report no start-up). Errors are left for `run_trial` to report."""
    start = time.perf_counter()
    built_before = _space.cache_info().misses + _evaluator.cache_info().misses
    try:
        if spec.threads > 0:
            import torch

            if torch.get_num_threads() != spec.threads:
                torch.set_num_threads(spec.threads)
        _space(spec.space, canonical_json(spec.space_config))
        evaluator = _evaluator(spec.evaluator, canonical_json(spec.evaluator_config))
        warm_up = getattr(evaluator, "prepare", None)
        loaded = bool(warm_up(spec)) if callable(warm_up) else False
    except Exception:
        return 0.0
    built = loaded or _space.cache_info().misses + _evaluator.cache_info().misses > built_before
    return time.perf_counter() - start if built else 0.0


def with_startup(result: Result, seconds: float) -> Result:
    """Record the start-up its worker paid before this trial as its own metric, apart from `duration`."""
    if seconds > 0.0:
        result.metrics[STARTUP_METRIC] = float(seconds)
    return result


def run_trial(spec: TrialSpec, reporter: Reporter | None = None) -> Result:
    """Never raises: an exception, or a non-finite objective, becomes a failed result with its reason.

    `reporter` hears each epoch's metrics (a command that trains in the foreground shows them)."""
    start = time.perf_counter()
    if spec.threads > 0:
        import torch

        if torch.get_num_threads() != spec.threads:
            torch.set_num_threads(spec.threads)
    try:
        space = _space(spec.space, canonical_json(spec.space_config))
        evaluator = _evaluator(spec.evaluator, canonical_json(spec.evaluator_config))
        arch = space.from_json(spec.arch)
        goals = costs = None
        if spec.goals:  # objectives and constraints: costs first, and a broken constraint is never trained
            from nasforge.objectives.costs import finish, precheck, pruned_result
            from nasforge.objectives.spec import Goals

            goals = Goals.from_json(spec.goals)
            costs = precheck(evaluator, space, arch, spec, goals)
            if costs.reason is not None:
                pruned = pruned_result(costs)
                pruned.duration, pruned.trial_number = time.perf_counter() - start, spec.number
                return pruned
        progress: Reporter = ProgressFile(spec.workdir, reporter) if spec.workdir else reporter or _NullReporter()
        result: Result = evaluator.evaluate(arch, spec, progress)
        if goals is not None and costs is not None:
            result = finish(result, goals, costs)
    except Exception as exc:  # a trial must never take the search down
        detail = traceback.format_exception_only(type(exc), exc)[-1].strip()
        return Result(TrialState.FAILED, error=f"{failure_kind(exc)}: {detail}", duration=time.perf_counter() - start,
                      trial_number=spec.number)
    result.trial_number = spec.number
    if not result.duration:
        result.duration = time.perf_counter() - start
    if result.state == TrialState.COMPLETE and not (goals is not None and goals.objectives):
        result.score = score_of(result.metrics, spec.objective, spec.direction)
        if result.score is None and not result.metrics.get("refit"):  # a refit has no held-out score, by design
            result.state = TrialState.FAILED
            value = result.metrics.get(spec.objective)
            result.error = (f"error: objective {spec.objective!r} missing from metrics" if value is None
                            else f"nan: objective {spec.objective!r} is not finite ({value})")
    return result
