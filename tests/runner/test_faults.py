"""Failure policy: every kind of failure is stored with its kind, retried, and never stops the search."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

from nasforge.core.types import TrialState
from nasforge.launch import build_config, run
from nasforge.storage.sql import Store, TrialRow


def config(tmp_path: Path, **kw):
    options = {"space": "nb201", "strategy": "random", "evaluator": "synthetic", "trials": 12, "workers": 1,
               "study": "s", "storage": f"sqlite:///{tmp_path / 'db.sqlite'}", "root": str(tmp_path / "art"),
               "progress": False}
    options.update(kw)
    return build_config(**options)


def rows(store: Store) -> list[TrialRow]:
    return store.trials(store.require_study("s").id)


def logical(trials: list[TrialRow]) -> list[TrialRow]:
    """The final attempt of each trial: rows that no retry replaced."""
    replaced = {t.retry_of for t in trials if t.retry_of is not None}
    return [t for t in trials if t.number not in replaced]


def test_a_failure_is_stored_then_retried_with_a_new_number_and_seed(tmp_path: Path) -> None:
    cfg = config(tmp_path, retries=1, evaluator_options={"fail_every": 3})
    store = Store(cfg.storage)
    summary = run(cfg, store)
    trials = rows(store)
    final = logical(trials)
    assert len(final) == 12 and summary.finished == 12
    retries = [t for t in trials if t.retry_of is not None]
    assert retries and summary.retried == len(retries)
    by_number = {t.number: t for t in trials}
    for t in retries:
        first = by_number[t.retry_of]
        assert first.state == TrialState.FAILED and first.error and first.error.startswith("error: RuntimeError")
        assert (t.key, t.arch) == (first.key, first.arch) and t.seed != first.seed
        assert by_number.get(first.retry_of or -1) is None, "retries=1: at most one retry"
    assert summary.failed == sum(t.state == TrialState.FAILED for t in final)
    assert len({t.key for t in final}) == 12, "a retry is the same trial, not a new architecture"


def test_retried_search_resumes_to_the_same_trials(tmp_path: Path) -> None:
    options = {"retries": 2, "evaluator_options": {"fail_every": 2, "nan_every": 5}}
    store = Store(f"sqlite:///{tmp_path / 'db.sqlite'}")
    run(config(tmp_path, trials=6, **options), store)
    run(config(tmp_path, trials=15, **options), store)
    store2 = Store(f"sqlite:///{tmp_path / 'fresh.sqlite'}")
    run(config(tmp_path, trials=15, storage=f"sqlite:///{tmp_path / 'fresh.sqlite'}", **options), store2)
    assert [(t.key, t.state, t.retry_of) for t in rows(store)] == [(t.key, t.state, t.retry_of) for t in rows(store2)]


def test_oom_and_nan_are_stored_with_their_kind(tmp_path: Path) -> None:
    cfg = config(tmp_path, trials=8, retries=0, evaluator_options={"oom_every": 3, "nan_every": 4})
    store = Store(cfg.storage)
    run(cfg, store)
    errors = {t.number: t.error or "" for t in rows(store) if t.state == TrialState.FAILED}
    assert errors[2].startswith("oom: MemoryError: injected out-of-memory")
    assert errors[3].startswith("nan: ")


def test_trial_timeout_kills_a_stuck_worker_and_the_search_goes_on(tmp_path: Path) -> None:
    cfg = config(tmp_path, trials=5, retries=1, trial_timeout=2.0, evaluator_options={"hang_every": 3, "hang": 600})
    store = Store(cfg.storage)
    summary = run(cfg, store)
    trials = rows(store)
    timed_out = [t for t in trials if (t.error or "").startswith("timeout: ")]
    assert [t.number for t in timed_out] == [2, 5]  # numbers 2 and 5 hang; their retries 3 and 6 do not
    assert timed_out[0].state == TrialState.FAILED and "killed" in (timed_out[0].error or "")
    assert summary.finished == 5 and summary.complete == 5, "the retry (a new number) does not hang"
    assert summary.elapsed < 120


def test_a_dead_worker_fails_only_its_trial(tmp_path: Path) -> None:
    cfg = config(tmp_path, trials=6, workers=2, retries=1, evaluator_options={"crash_every": 4})
    store = Store(cfg.storage)
    summary = run(cfg, store)
    crashed = [t for t in rows(store) if (t.error or "").startswith("crash: ")]
    assert crashed and all("SIGKILL" in (t.error or "") for t in crashed)
    assert summary.finished == 6 and summary.complete + summary.failed == 6


def test_failed_attempts_count_towards_the_broken_search_limit(tmp_path: Path) -> None:
    cfg = config(tmp_path, trials=50, retries=1, evaluator_options={"fail_every": 1})
    store = Store(cfg.storage)
    summary = run(cfg, store)
    assert summary.broken and summary.finished == 5 and summary.retried == 5
    assert "10 trials failed in a row" in summary.stopped_reason


def test_bad_fault_options_are_one_line_errors(tmp_path: Path, capsys) -> None:
    from nasforge.cli.main import main

    base = ["search", "--space", "nb201", "--evaluator", "synthetic", "--storage", f"sqlite:///{tmp_path / 'x.db'}"]
    for extra, message in ((["--retries", "-1"], "--retries must be 0 or more"),
                           (["--trial-timeout", "0"], "--trial-timeout must be a positive number"),
                           (["--address", "auto"], "--address needs --backend ray")):
        assert main([*base, *extra]) == 2
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1


def test_a_stopped_search_hands_back_the_trials_it_still_held(tmp_path: Path) -> None:
    """Issue 17 item 8: "10 trials failed in a row" ends the run while other trials are in flight. None may
    stay `running` for a runner that has exited: they go back to waiting, holder-less, and the next run
    takes them."""
    cfg = config(tmp_path, trials=40, workers=2, retries=0, evaluator_options={"fail_every": 1})
    store = Store(cfg.storage)
    summary = run(cfg, store)
    assert summary.broken
    trials = rows(store)
    assert not [t.number for t in trials if t.state == TrialState.RUNNING]
    waiting = [t for t in trials if t.state == TrialState.WAITING]
    assert waiting, "the runner asks for the freed slot before it sees the limit: one trial was in flight"
    assert all(t.runner is None and t.heartbeat is None for t in waiting)
    long_ago = datetime.now(timezone.utc) - timedelta(days=1)  # no heartbeat counts as stale: taken at once
    taken = store.claim_orphans(store.require_study("s").id, "next-runner", long_ago, lambda holder: False)
    assert [t.number for t in taken] == [t.number for t in waiting]
