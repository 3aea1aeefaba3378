"""Small stores for the report tests, written directly (no training): known trials, curves and costs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from nasforge.core import registry
from nasforge.core.types import Result, TrialState
from nasforge.storage.sql import NewTrial, Store


def write_study(storage: str, name: str = "made", space_name: str = "dnn", complete: int = 12, failed: int = 2,
                seed: int = 0) -> dict[str, float]:
    """A study of `complete` scored trials (params, flops and a 3-epoch curve each) and `failed` failures;
    returns {trial number: valid_accuracy} of the complete ones."""
    store = Store(storage)
    info = store.create_study(name, owner="", config={"space": space_name, "space_config": {}, "strategy": "random"},
                              objective="valid_accuracy", direction="maximize", artifact_dir="")
    space = registry.create("space", space_name)
    rng = np.random.default_rng(seed)
    scores: dict[str, float] = {}
    for i in range(complete + failed):
        arch = space.sample(rng)
        if i >= complete:
            result = Result(TrialState.FAILED, error="error: injected")
        else:
            acc = round(float(rng.uniform(0.5, 0.95)), 4)
            params = int(rng.integers(1_000, 100_000))
            curve = [{"epoch": e, "valid_accuracy": acc * e / 3, "train_loss": 1.0 / e} for e in (1, 2, 3)]
            result = Result(TrialState.COMPLETE, metrics={"valid_accuracy": acc, "flops": 2.0 * params}, score=acc,
                            params=params, duration=1.0, curve=curve)
        row = store.add_finished_trial(info.id, NewTrial(key=space.key(arch) + f"#{i}", arch=space.to_json(arch)),
                                       seed=i, finish=lambda _n, r=result: r)
        if row.state == TrialState.COMPLETE:
            scores[str(row.number)] = float(row.score or 0.0)
    store.dispose()
    return scores


@pytest.fixture
def made_study(tmp_path: Path) -> tuple[str, dict[str, float]]:
    storage = f"sqlite:///{tmp_path / 'made.db'}"
    return storage, write_study(storage)


def write_objectives_study(storage: str, name: str = "mo", objectives: tuple[str, ...] = (
        "valid_accuracy:max", "latency_ms:min"), complete: int = 14, seed: int = 1) -> None:
    """A study searched with `--objectives` (accuracy and latency by default): its front over those is not
    its accuracy-params front, since latency is drawn apart from params. Plus one pruned and one failed trial."""
    store = Store(storage)
    config = {"space": "dnn", "space_config": {}, "strategy": "nsga2", "objectives": list(objectives),
              "latency": {"threads": 1, "batch_size": 1, "warmup": 10, "repeats": 30, "runtime": "torch",
                          "device": None}}
    info = store.create_study(name, owner="", config=config, objective="valid_accuracy", direction="maximize",
                              artifact_dir="")
    space = registry.create("space", "dnn")
    rng = np.random.default_rng(seed)
    for i in range(complete + 2):
        arch = space.sample(rng)
        params = int(rng.integers(1_000, 100_000))
        if i == complete:
            result = Result(TrialState.PRUNED, metrics={"latency_ms": 9.0, "params": float(params)}, params=params,
                            error="constraint: latency_ms 9 > 5 (--max-latency-ms)")
        elif i > complete:
            result = Result(TrialState.FAILED, error="error: injected")
        else:
            acc = round(float(rng.uniform(0.5, 0.95)), 4)
            metrics = {"valid_accuracy": acc, "latency_ms": round(float(rng.uniform(0.1, 4.0)), 3),
                       "flops": 2.0 * params, "peak_memory_mb": round(float(rng.uniform(1, 50)), 2)}
            result = Result(TrialState.COMPLETE, metrics=metrics, score=acc, params=params, duration=1.0)
        store.add_finished_trial(info.id, NewTrial(key=space.key(arch) + f"#{i}", arch=space.to_json(arch)),
                                 seed=i, finish=lambda _n, r=result: r)
    store.dispose()
