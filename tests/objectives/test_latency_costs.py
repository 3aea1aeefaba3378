"""Latency timing and the cost precheck: what is measured, how often, and when a cached value is reused."""

from __future__ import annotations

import statistics
from types import SimpleNamespace
from typing import Any

import pytest
import torch
from torch import nn

from nasforge.core.errors import ConfigError
from nasforge.core.types import Architecture, TrialSpec
from nasforge.objectives import costs, latency
from nasforge.objectives.latency import LatencySettings, Timing, measure_latency, time_calls
from nasforge.objectives.spec import Goals, parse_objectives

DATA = SimpleNamespace(task="classification", input_shape=(6,), num_outputs=3)
ARCH = Architecture("fake", (1,))


def _spec() -> TrialSpec:
    return TrialSpec(study="s", number=0, arch={}, seed=0, space="fake", space_config={"width": 8},
                     evaluator="fake", evaluator_config={}, budget={}, objective="valid_accuracy",
                     direction="maximize", workdir=None)


class _Space:
    def __init__(self) -> None:
        self.builds = 0

    def build(self, arch: Architecture, data_spec: Any) -> nn.Module:
        self.builds += 1
        return nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 3))  # 56 + 27 = 83 parameters


class _Evaluator:
    def cost_inputs(self, spec: TrialSpec) -> tuple[Any, str]:
        return DATA, "cpu"


def test_time_calls_warms_up_then_times_each_repeat() -> None:
    calls: list[int] = []
    syncs: list[int] = []
    timing = time_calls(lambda: calls.append(1), warmup=3, repeats=5, sync=lambda: syncs.append(1))
    assert len(calls) == 8 and len(timing.times_ms) == 5
    assert all(t >= 0 for t in timing.times_ms)
    assert len(syncs) == 1 + 2 * 5  # once after warm-up, then before and after every timed call


def test_timing_median_and_spread() -> None:
    timing = Timing([1.0, 2.0, 3.0, 4.0, 100.0])
    assert timing.median_ms == 3.0
    q1, _, q3 = statistics.quantiles(timing.times_ms, n=4)
    assert timing.spread == pytest.approx((q3 - q1) / 3.0)
    assert Timing([5.0, 6.0, 7.0]).spread == 0.0  # too few repeats to say


def test_measure_latency_uses_the_settings_and_restores_threads() -> None:
    model = nn.Linear(6, 3)
    before = torch.get_num_threads()
    settings = LatencySettings(threads=1, batch_size=4, warmup=2, repeats=7)
    timing = measure_latency(model, torch.zeros(1, 6), settings, torch.device("cpu"))
    assert len(timing.times_ms) == 7 and timing.median_ms > 0
    assert torch.get_num_threads() == before and not model.training


@pytest.mark.parametrize("options, match", [
    ({"repeat": 3}, "unknown latency option"),
    ({"repeats": 2}, "repeats must be an integer >= 3"),
    ({"threads": True}, "threads must be an integer"),
    ({"device": "tpu"}, "device must be cpu"),
    ({"runtime": "tvm"}, "runtime must be one of"),
])
def test_bad_latency_options_are_one_line_config_errors(options: dict[str, Any], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        LatencySettings.from_options(options)


def test_latency_is_measured_once_per_architecture_and_device(monkeypatch: pytest.MonkeyPatch) -> None:
    timed: list[int] = []
    real = latency.measure_latency

    def counting(*args: Any, **kwargs: Any) -> Timing:
        timed.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(latency, "measure_latency", counting)
    settings = {"repeats": 3, "warmup": 0}
    goals = Goals(objectives=tuple(parse_objectives("valid_accuracy,latency_ms")), latency=settings)
    space = _Space()
    first = costs.precheck(_Evaluator(), space, ARCH, _spec(), goals)
    assert len(timed) == 1 and first.values["latency_ms"] > 0 and first.reason is None
    assert first.cache is not None and first.cache["values"]["latency_ms"] == first.values["latency_ms"]

    cached = Goals(objectives=goals.objectives, latency=settings, known=[first.cache])
    again = costs.precheck(_Evaluator(), space, ARCH, _spec(), cached)
    assert len(timed) == 1 and space.builds == 1  # nothing built or timed again
    assert again.values["latency_ms"] == first.values["latency_ms"] and again.cache is None

    other = Goals(objectives=goals.objectives, latency={**settings, "threads": 2}, known=[first.cache])
    costs.precheck(_Evaluator(), space, ARCH, _spec(), other)
    assert len(timed) == 2  # other measurement settings: another context, measured afresh


def test_a_broken_cheap_constraint_prunes_before_latency_is_timed(monkeypatch: pytest.MonkeyPatch) -> None:
    def never(*args: Any, **kwargs: Any) -> Timing:
        raise AssertionError("latency timed for a model already over its parameter limit")

    monkeypatch.setattr(latency, "measure_latency", never)
    goals = Goals(objectives=tuple(parse_objectives("valid_accuracy,latency_ms")), constraints={"params": 50},
                  latency={"repeats": 3})
    report = costs.precheck(_Evaluator(), _Space(), ARCH, _spec(), goals)
    assert report.values["params"] == 83 and "latency_ms" not in report.values
    assert report.reason is not None and "params" in report.reason
    assert report.violation == pytest.approx(83 / 50 - 1)
    pruned = costs.pruned_result(report)
    assert pruned.state.name == "PRUNED" and pruned.params == 83


def test_an_evaluator_that_builds_no_model_cannot_have_latency_goals() -> None:
    goals = Goals(objectives=tuple(parse_objectives("valid_accuracy,latency_ms")))
    with pytest.raises(ConfigError, match="builds no model"):
        costs.precheck(object(), _Space(), ARCH, _spec(), goals)
