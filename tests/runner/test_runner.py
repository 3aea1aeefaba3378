"""The search loop end to end with the instant synthetic evaluator: counts, resume, failures, duplicates."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from nasforge.core.types import TrialState
from nasforge.launch import build_config, run
from nasforge.storage.sql import Store


def config(tmp_path: Path, **kw):
    options = {"space": "nb201", "strategy": "random", "evaluator": "synthetic", "trials": 20, "workers": 1,
               "study": "s", "storage": f"sqlite:///{tmp_path / 'db.sqlite'}", "root": str(tmp_path / "art"),
               "progress": False}
    options.update(kw)
    return build_config(**options)


def keys_of(store: Store, name: str, state: TrialState | None = None) -> list[str]:
    study = store.require_study(name)
    return [t.key for t in store.trials(study.id, [state] if state else None)]


def test_runs_exactly_the_requested_trials(tmp_path: Path) -> None:
    cfg = config(tmp_path, trials=25)
    store = Store(cfg.storage)
    summary = run(cfg, store)
    assert summary.complete == 25 and summary.failed == 0
    study = store.require_study("s")
    numbers = [t.number for t in store.trials(study.id)]
    assert numbers == list(range(25))
    assert len(set(keys_of(store, "s"))) == 25, "no architecture is evaluated twice"
    assert store.load_state(study.id) is not None
    assert (Path(study.artifact_dir) / "search.log").is_file()


def test_trials_is_a_total_and_resume_continues(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'db.sqlite'}")
    run(config(tmp_path, trials=10), store)
    run(config(tmp_path, trials=10), store)
    assert len(keys_of(store, "s")) == 10, "the same --trials again adds nothing"
    run(config(tmp_path, trials=18), store)
    keys = keys_of(store, "s")
    assert len(keys) == 18 and len(set(keys)) == 18


def test_same_seed_same_trials(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'db.sqlite'}")
    run(config(tmp_path, study="a", strategy="evolution", seed=4), store)
    run(config(tmp_path, study="b", strategy="evolution", seed=4), store)
    run(config(tmp_path, study="c", strategy="evolution", seed=5), store)
    assert keys_of(store, "a") == keys_of(store, "b")
    assert keys_of(store, "a") != keys_of(store, "c")


def test_changed_settings_are_refused(tmp_path: Path) -> None:
    from nasforge.core.errors import StorageError

    store = Store(f"sqlite:///{tmp_path / 'db.sqlite'}")
    run(config(tmp_path, trials=3), store)
    with pytest.raises(StorageError, match="different settings"):
        run(config(tmp_path, trials=3, strategy="evolution"), store)
    assert len(keys_of(store, "s")) == 3, "the existing study is untouched"


def test_failures_are_stored_and_the_search_continues(tmp_path: Path) -> None:
    cfg = config(tmp_path, trials=12, retries=0, evaluator_options={"fail_every": 3, "nan_every": 5})
    store = Store(cfg.storage)
    summary = run(cfg, store)
    study = store.require_study("s")
    failed = store.trials(study.id, [TrialState.FAILED])
    errors = {t.number: t.error for t in failed}
    assert summary.finished == 12
    assert errors[2] and errors[2].startswith("error: RuntimeError: injected failure")
    assert errors[4] and errors[4].startswith("nan: ") and "not finite" in errors[4]
    assert len(store.trials(study.id, [TrialState.COMPLETE])) == 12 - len(failed)


def test_a_search_whose_trials_all_fail_stops_with_the_reason(tmp_path: Path) -> None:
    cfg = config(tmp_path, trials=50, retries=0, evaluator_options={"fail_every": 1})
    store = Store(cfg.storage)
    summary = run(cfg, store)
    assert summary.broken and summary.finished == 10
    assert "10 trials failed in a row" in summary.stopped_reason
    assert "injected failure" in summary.stopped_reason


def test_duplicate_keys_reuse_the_stored_result(tmp_path: Path) -> None:
    # The same suggestion three times, and an isomorphic spelling of it: one trial, three answers from the store.
    arch = {"arch_str": "|nor_conv_3x3~0|+|nor_conv_3x3~0|none~1|+|skip_connect~0|none~1|none~2|"}
    twin = {"arch_str": "|nor_conv_3x3~0|+|none~0|nor_conv_3x3~1|+|skip_connect~0|none~1|none~2|"}
    cfg = config(tmp_path, trials=6, strategy="model_search",
                 strategy_options={"suggested": [arch, arch, twin, arch]})
    store = Store(cfg.storage)
    summary = run(cfg, store)
    keys = keys_of(store, "s")
    assert len(keys) == len(set(keys)) == 6
    assert summary.reused >= 3  # the three repeats (a mutation may also land on a known cell)


def test_process_pool_backend(tmp_path: Path) -> None:
    cfg = config(tmp_path, trials=8, workers=2, strategy="evolution")
    store = Store(cfg.storage)
    summary = run(cfg, store)
    assert summary.complete == 8
    keys = keys_of(store, "s")
    assert len(set(keys)) == 8


def _complete_count(db: Path) -> int:
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(db) as con:
            return int(con.execute("select count(*) from trials where state='complete'").fetchone()[0])
    except sqlite3.OperationalError:
        return 0


def test_sigkill_then_same_command_completes_exactly(tmp_path: Path) -> None:
    db = tmp_path / "db.sqlite"
    cmd = [sys.executable, "-m", "nasforge", "search", "--space", "nb201", "--strategy", "evolution",
           "--evaluator", "synthetic", "--evaluator-option", "sleep=0.05", "--trials", "40", "--workers", "1",
           "--study", "k", "--storage", f"sqlite:///{db}", "--root", str(tmp_path / "art"), "--no-progress"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    while _complete_count(db) < 15 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert proc.poll() is None, "the search finished before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    killed_at = _complete_count(db)
    assert 0 < killed_at < 40
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    with sqlite3.connect(db) as con:
        states = con.execute("select state, count(*) from trials group by state").fetchall()
        keys = [k for (k,) in con.execute("select key from trials")]
    assert dict(states) == {"complete": 40}
    assert len(keys) == len(set(keys)) == 40, "no architecture trained twice"
    # ... and the killed-and-resumed search made exactly the trials of one never interrupted.
    fresh = tmp_path / "fresh.sqlite"
    again = [c.replace(str(db), str(fresh)) for c in cmd]
    assert subprocess.run(again, capture_output=True, timeout=120).returncode == 0
    with sqlite3.connect(fresh) as con:
        fresh_keys = [k for (k,) in con.execute("select key from trials order by number")]
    with sqlite3.connect(db) as con:
        resumed_keys = [k for (k,) in con.execute("select key from trials order by number")]
    assert resumed_keys == fresh_keys
