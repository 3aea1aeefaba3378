"""Every store backend: studies, trial numbering, atomic state, curves, concurrency.

SQLite always runs; PostgreSQL runs when NASFORGE_TEST_POSTGRES_URL names a server
(CI starts one), and is skipped with that reason otherwise.
"""

from __future__ import annotations

import multiprocessing
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from nasforge.core.errors import StorageError
from nasforge.core.types import Result, TrialState
from nasforge.storage.sql import NewTrial, Store

POSTGRES = os.environ.get("NASFORGE_TEST_POSTGRES_URL")


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'store.db'}"
    else:
        if not POSTGRES:
            pytest.skip("NASFORGE_TEST_POSTGRES_URL is not set (no PostgreSQL server for this run)")
        yield POSTGRES


def new_study(store: Store, name: str | None = None):
    return store.create_study(name or f"s-{uuid.uuid4().hex[:8]}", owner="me", config={"space": "nb201"},
                              objective="valid_accuracy", direction="maximize", artifact_dir="/tmp/x")


def test_study_create_is_idempotent_and_listed(url: str) -> None:
    store = Store(url)
    a = new_study(store, f"same-{uuid.uuid4().hex[:6]}")
    b = new_study(store, a.name)
    assert a.id == b.id
    assert store.get_study(a.name) == a
    assert a.name in [s["name"] for s in store.list_studies()]
    with pytest.raises(StorageError, match="no study named"):
        store.require_study("does-not-exist-" + uuid.uuid4().hex)


def test_numbers_state_results_and_curves(url: str) -> None:
    store = Store(url)
    study = new_study(store)
    rows = store.add_trials(study.id, [NewTrial("k0", {"t": 0}), NewTrial("k1", {"t": 1}, parent=0)],
                            {"step": 1}, lambda n: 100 + n)
    assert [r.number for r in rows] == [0, 1] and [r.seed for r in rows] == [100, 101]
    assert all(r.state == TrialState.RUNNING for r in rows)
    assert store.load_state(study.id) == {"step": 1}
    result = Result(TrialState.COMPLETE, metrics={"valid_accuracy": 0.5}, score=0.5, params=10, duration=1.5,
                    curve=[{"epoch": 0, "valid_accuracy": 0.4}, {"epoch": 1, "valid_accuracy": 0.5}])
    store.finish_trial(study.id, 0, result, {"step": 2})
    store.finish_trial(study.id, 1, Result(TrialState.FAILED, error="boom"), {"step": 3})
    assert store.load_state(study.id) == {"step": 3}
    t0, t1 = store.trials(study.id)
    assert t0.state == TrialState.COMPLETE and t0.score == 0.5 and t0.params == 10 and t0.finished is not None
    assert t1.state == TrialState.FAILED and t1.error == "boom" and t1.parent == 0
    assert store.count(study.id, [TrialState.COMPLETE, TrialState.FAILED]) == 2
    curve = store.intermediate(study.id, 0)
    assert (1, "valid_accuracy", 0.5) in curve
    more = store.add_trials(study.id, [NewTrial("k2", {"t": 2})], None, lambda n: n)
    assert more[0].number == 2
    assert store.delete_study(study.name) and store.get_study(study.name) is None


def _allocate(url: str, name: str, n: int, queue: multiprocessing.Queue) -> None:
    store = Store(url)
    study = store.require_study(name)
    numbers = []
    for i in range(n):
        numbers += [r.number for r in store.add_trials(study.id, [NewTrial(f"{os.getpid()}-{i}", {})], None,
                                                        lambda k: k)]
    queue.put(numbers)


def test_concurrent_runners_never_share_a_number(url: str) -> None:
    store = Store(url)
    study = new_study(store)
    ctx = multiprocessing.get_context("spawn")
    queue: multiprocessing.Queue = ctx.Queue()
    procs = [ctx.Process(target=_allocate, args=(url, study.name, 25, queue)) for _ in range(3)]
    for p in procs:
        p.start()
    numbers = sorted(n for _ in procs for n in queue.get(timeout=120))
    for p in procs:
        p.join(timeout=60)
    assert numbers == list(range(75))
