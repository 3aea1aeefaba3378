"""Every store backend: studies, trial numbering, atomic state, curves, concurrency.

SQLite always runs; PostgreSQL runs when NASFORGE_TEST_POSTGRES_URL names a server
(CI starts one), and is skipped with that reason otherwise.
"""

from __future__ import annotations

import multiprocessing
import os
import time
import uuid
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from nasforge.core.errors import StorageError
from nasforge.core.types import Result, TrialState
from nasforge.storage.sql import NewTrial, Store
from tests.conftest import postgres_url_or_skip


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'store.db'}"
    else:
        yield postgres_url_or_skip()


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


def test_a_study_created_by_a_concurrent_runner_is_used_not_an_error(url: str,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """Runners started together on a new study: the one whose insert loses gets the winner's row back."""
    store = Store(url)
    name = f"race-{uuid.uuid4().hex[:6]}"
    winner = new_study(store, name)
    real_session = store.session
    blind = {"left": 1}  # the loser's first look finds nothing: the winner had not committed yet

    def session() -> Any:
        sess = real_session()
        scalar = sess.scalar

        def look(*args: Any, **kwargs: Any) -> Any:
            if blind["left"]:
                blind["left"] -= 1
                return None
            return scalar(*args, **kwargs)

        sess.scalar = look  # type: ignore[method-assign]
        return sess

    monkeypatch.setattr(store, "session", session)
    again = new_study(store, name)
    assert again.id == winner.id and blind["left"] == 0
    assert [s["name"] for s in store.list_studies()].count(name) == 1


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


def _finished(state: TrialState, calls: list[int]) -> Any:
    def finish(number: int) -> Result:
        calls.append(number)
        return Result(state, metrics={"valid_accuracy": 0.5}, score=0.5 if state == TrialState.COMPLETE else None)

    return finish


def test_a_finished_trial_is_stored_once_per_key(url: str) -> None:
    store = Store(url)
    study = new_study(store)
    calls: list[int] = []
    failed, created = store.add_finished_trial_once(study.id, NewTrial("k", {}), 0,
                                                    _finished(TrialState.FAILED, calls))
    assert created and failed.state == TrialState.FAILED
    first, created = store.add_finished_trial_once(study.id, NewTrial("k", {}), 0,
                                                   _finished(TrialState.COMPLETE, calls))
    assert created and first.number == failed.number + 1  # a failed trial does not count as stored
    again, created = store.add_finished_trial_once(study.id, NewTrial("k", {}), 0,
                                                   _finished(TrialState.COMPLETE, calls))
    assert not created and again.number == first.number and again.state == TrialState.COMPLETE
    assert calls == [0, 1]  # the third `finish` never ran: nothing of it was moved into place
    plain = store.add_finished_trial(study.id, NewTrial("k", {}), 0, _finished(TrialState.COMPLETE, calls))
    assert plain.number == 2  # the plain insert does not look


def _store_once(url: str, name: str, queue: multiprocessing.Queue) -> None:
    store = Store(url)
    study = store.require_study(name)

    def slow(number: int) -> Result:
        time.sleep(0.3)  # a wide window between the check and the insert, were they not under one lock
        return Result(TrialState.COMPLETE, metrics={"valid_accuracy": 0.5}, score=0.5)

    queue.put(store.add_finished_trial_once(study.id, NewTrial("same", {}), 0, slow)[1])


def test_commands_storing_the_same_trial_at_once_store_it_once(url: str) -> None:
    store = Store(url)
    study = new_study(store)
    ctx = multiprocessing.get_context("spawn")
    queue: multiprocessing.Queue = ctx.Queue()
    procs = [ctx.Process(target=_store_once, args=(url, study.name, queue)) for _ in range(3)]
    for p in procs:
        p.start()
    created = sorted(queue.get(timeout=120) for _ in procs)
    for p in procs:
        p.join(timeout=60)
    assert created == [False, False, True]
    assert [t.key for t in store.trials(study.id)] == ["same"]


def _claim(url: str, name: str, me: str, stale_before: datetime, queue: multiprocessing.Queue) -> None:
    store = Store(url)
    study = store.require_study(name)
    claimed = []
    for _ in range(20):
        claimed += [r.number for r in store.claim_orphans(study.id, me, stale_before, lambda holder: False)]
    queue.put((me, claimed))


def test_a_stale_trial_is_taken_over_by_exactly_one_runner(url: str) -> None:
    store = Store(url)
    study = new_study(store)
    rows = store.add_trials(study.id, [NewTrial(f"k{i}", {}) for i in range(6)], {"s": 0}, lambda n: n,
                            runner="elsewhere:1:2:gone")
    assert all(r.runner == "elsewhere:1:2:gone" for r in rows)
    # a fresh heartbeat protects a trial; a live holder keeps it fresh
    assert store.claim_orphans(study.id, "me", datetime(2000, 1, 1), lambda holder: False) == []
    assert store.beat(study.id, "elsewhere:1:2:gone") == 6
    time.sleep(0.05)
    cutoff = datetime.now(timezone.utc).replace(tzinfo=None)  # every heartbeat is older; a claim's is newer
    ctx = multiprocessing.get_context("spawn")
    queue: multiprocessing.Queue = ctx.Queue()
    procs = [ctx.Process(target=_claim, args=(url, study.name, f"runner-{i}", cutoff, queue)) for i in range(3)]
    for p in procs:
        p.start()
    results = dict(queue.get(timeout=120) for _ in procs)
    for p in procs:
        p.join(timeout=60)
    numbers = sorted(n for claimed in results.values() for n in claimed)
    assert numbers == list(range(6)), "each stale trial taken over exactly once"
    holders = {t.number: t.runner for t in store.trials(study.id)}
    assert all(n in results[holders[n] or ""] for n in range(6))


def test_a_dead_holder_is_replaced_at_once_and_results_need_the_holder(url: str) -> None:
    store = Store(url)
    study = new_study(store)
    store.add_trials(study.id, [NewTrial("k0", {})], None, lambda n: n, runner="here:1:2:dead")
    claimed = store.claim_orphans(study.id, "me", datetime(2000, 1, 1), lambda holder: holder == "here:1:2:dead")
    assert [r.number for r in claimed] == [0] and claimed[0].runner == "me"
    with store.locked(study.id) as conn:
        assert not store.record_result(conn, study.id, 0, Result(TrialState.COMPLETE), runner="here:1:2:dead")
        assert store.record_result(conn, study.id, 0, Result(TrialState.COMPLETE, score=1.0), runner="me")
    assert store.trials(study.id)[0].state == TrialState.COMPLETE


def test_a_database_from_before_runner_columns_is_upgraded(tmp_path: Path) -> None:
    import sqlite3

    db = tmp_path / "old.db"
    Store(f"sqlite:///{db}").dispose()
    with sqlite3.connect(db) as con:  # the tables as the first release made them
        for table, column in (("trials", "runner"), ("trials", "retry_of"), ("strategy_state", "version")):
            con.execute(f"ALTER TABLE {table} DROP COLUMN {column}")
    store = Store(f"sqlite:///{db}")
    study = new_study(store)
    rows = store.add_trials(study.id, [NewTrial("k0", {})], {"s": 1}, lambda n: n, runner="me")
    assert rows[0].runner == "me" and store.peek_state_version(study.id) == 1
