"""A trial's costs, computed before it trains, and the verdict of its constraints.

The worker calls `precheck` before the evaluator: parameters and FLOPs come from the built model (no
training), and a constraint they break prunes the trial before anything slower happens; latency and
peak memory are measured next, on the device the model will run on, and checked the same way. Values
an evaluator already knows (a benchmark's cost table) are used as they are, and measurements the runner
found in its cache (`Goals.known`, matched by the measurement context) are not repeated.

An evaluator takes part by defining `cost_inputs(spec) -> (DataSpec, device)` (what the model is built
for and where it runs) and optionally `known_costs(arch, spec) -> dict` (costs it can look up).
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from typing import Any

from nasforge.core.errors import ConfigError
from nasforge.core.types import Architecture, JSONDict, Result, TrialSpec, TrialState, canonical_json
from nasforge.objectives.spec import CHEAP_COSTS, MEASURED_COSTS, Goals


@dataclass
class CostReport:
    values: dict[str, float] = field(default_factory=dict)
    violation: float = 0.0
    reason: str | None = None  # why the trial is pruned; None when it meets every constraint
    cache: JSONDict | None = None  # {"context", "values"}: newly computed costs for the runner's cache


def cost_context(spec: TrialSpec, data_spec: Any, device: JSONDict) -> str:
    """What a measurement depends on besides the architecture: the space and its options, the model's
    inputs and outputs, the machine and the measurement settings."""
    return hashlib.sha256(canonical_json({
        "space": spec.space, "space_config": spec.space_config, "task": data_spec.task,
        "input_shape": list(data_spec.input_shape), "outputs": int(data_spec.num_outputs), "device": device,
    }).encode()).hexdigest()


def precheck(evaluator: Any, space: Any, arch: Architecture, spec: TrialSpec, goals: Goals) -> CostReport:
    """The trial's costs (those its goals need) and whether a constraint prunes it."""
    from nasforge.objectives.latency import LatencySettings, device_descriptor, resolve

    wanted = goals.costs_needed()
    report = CostReport()
    if not wanted:
        return report
    known = getattr(evaluator, "known_costs", None)
    if callable(known):
        report.values.update({k: float(v) for k, v in known(arch, spec).items() if k in wanted})
    missing = [c for c in wanted if c not in report.values]
    if not missing:
        return _judge(report, goals)
    inputs = getattr(evaluator, "cost_inputs", None)
    if not callable(inputs):
        raise ConfigError(f"evaluator {spec.evaluator!r} builds no model, so {', '.join(missing)} cannot be "
                          "computed for constraints or objectives")
    data_spec, evaluator_device = inputs(spec)
    settings = LatencySettings.from_options(goals.latency)
    device = resolve(settings.device, evaluator_device)
    context = cost_context(spec, data_spec, device_descriptor(device, settings))
    for entry in goals.known:
        if entry.get("context") == context:
            report.values.update({k: float(v) for k, v in entry.get("values", {}).items()
                                  if k in missing and isinstance(v, (int, float))})
    missing = [c for c in wanted if c not in report.values]
    if not missing:
        return _judge(report, goals)
    fresh = _measure(space, arch, data_spec, device, settings, missing, goals, report)
    report.cache = {"context": context, "values": fresh}
    return _judge(report, goals)


def _measure(space: Any, arch: Architecture, data_spec: Any, device: Any, settings: Any, missing: list[str],
             goals: Goals, report: CostReport) -> dict[str, float]:
    """Build the model once; cheap costs first, and stop there when they already break a constraint."""
    from nasforge.evaluators.metrics import example_input, model_flops
    from nasforge.objectives.latency import measure_latency, peak_memory_mb

    model = space.build(arch, data_spec)
    fresh: dict[str, float] = {}
    for name in CHEAP_COSTS:
        if name in missing:
            if name == "params":
                fresh[name] = float(sum(p.numel() for p in model.parameters()))
            else:
                flops = model_flops(model, data_spec.task, data_spec.input_shape)
                if flops is not None:
                    fresh[name] = float(flops)
    report.values.update(fresh)
    if goals.violation(report.values)[1] is not None:
        return fresh
    example = example_input(data_spec.task, data_spec.input_shape)
    if "latency_ms" in missing:
        fresh["latency_ms"] = measure_latency(model, example, settings, device).median_ms
    if "peak_memory_mb" in missing:
        fresh["peak_memory_mb"] = peak_memory_mb(model, example, settings.batch_size, device)
    report.values.update(fresh)
    return fresh


def _judge(report: CostReport, goals: Goals) -> CostReport:
    report.violation, report.reason = goals.violation(report.values)
    return report


def pruned_result(report: CostReport) -> Result:
    """A trial a constraint rules out: never trained, its costs and how far over it is kept."""
    metrics = {**report.values, "constraint_violation": report.violation}
    params = report.values.get("params")
    return Result(TrialState.PRUNED, metrics=metrics, error=report.reason,
                  params=int(params) if params is not None else None, costs=report.cache)


def finish(result: Result, goals: Goals, report: CostReport) -> Result:
    """Add the precomputed costs to a finished trial's metrics (the evaluator's own values win), score it
    by the goals, and fail it when an objective is missing."""
    result.costs = report.cache
    for name, value in report.values.items():
        result.metrics.setdefault(name, value)
    if result.state != TrialState.COMPLETE or not goals.objectives:
        return result
    missing = goals.missing(result.metrics)
    if missing:
        result.state, result.score = TrialState.FAILED, None
        reported = ", ".join(sorted(result.metrics)) or "none"
        result.error = f"error: objective {missing[0]!r} missing from metrics (reported: {reported})"
        return result
    result.score = goals.score(result.metrics)
    if result.score is None or not math.isfinite(result.score):
        result.state, result.score = TrialState.FAILED, None
        result.error = f"nan: objectives of the trial are not finite ({goals.values(result.metrics)})"
    return result


__all__ = ["MEASURED_COSTS", "CostReport", "finish", "precheck", "pruned_result"]
