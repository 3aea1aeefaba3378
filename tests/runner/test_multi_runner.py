"""Several `nasforge search` processes sharing one study split its trials: none twice, none lost.

PostgreSQL is the store made for this (CI starts a server); SQLite on one machine works too and is cheap.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from nasforge.core.types import TrialState
from nasforge.storage.sql import Store
from tests.conftest import postgres_url_or_skip


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'shared.db'}"
    return postgres_url_or_skip()


def search_cmd(url: str, study: str, root: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "nasforge", "search", "--space", "nb201", "--strategy", "random", "--workers", "1",
            "--study", study, "--storage", url, "--root", str(root), "--no-progress", *extra]


def check_exact(store: Store, study: str, trials: int) -> list[str]:
    info = store.require_study(study)
    rows = store.trials(info.id)
    assert [t.number for t in rows] == list(range(trials)), "unique numbers, none skipped"
    assert {t.state for t in rows} == {TrialState.COMPLETE}
    keys = [t.key for t in rows]
    assert len(set(keys)) == trials, "no architecture evaluated twice"
    return [t.runner or "" for t in rows]


def test_four_runners_split_one_study_of_200_trials(url: str, tmp_path: Path) -> None:
    # A table lookup takes about a millisecond, so on a busy machine the first runner could finish all 200
    # trials before the others have imported torch. A 30 ms pause per trial (no CPU) keeps all four in the race.
    study = f"shared-{uuid.uuid4().hex[:8]}"
    cmd = search_cmd(url, study, tmp_path / "art", "--evaluator", "synthetic", "--evaluator-option", "sleep=0.03",
                     "--trials", "200")
    procs = [subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) for _ in range(4)]
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
    holders = check_exact(Store(url), study, 200)
    pids = {h.split(":")[2] for h in holders}
    assert len(pids) >= 2, "the trials were shared between runner processes"


def test_a_killed_runner_s_trials_are_finished_by_the_others(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    study = "shared-kill"
    cmd = search_cmd(url, study, tmp_path / "art", "--evaluator", "synthetic", "--evaluator-option", "sleep=0.1",
                     "--trials", "40")
    procs = [subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) for _ in range(3)]
    store = Store(url)
    deadline = time.time() + 120
    while time.time() < deadline:
        info = store.get_study(study)
        if info is not None and store.count(info.id, [TrialState.COMPLETE]) >= 6:
            break
        time.sleep(0.1)
    os.kill(procs[0].pid, signal.SIGKILL)
    procs[0].wait()
    for p in procs[1:]:
        _, err = p.communicate(timeout=180)
        assert p.returncode == 0, err
    check_exact(store, study, 40)


def test_only_a_provably_dead_holder_is_dead() -> None:
    from nasforge.runner import _HOST, _LIVE, _PIDNS, holder_is_dead, new_runner_id

    me = new_runner_id()
    assert holder_is_dead(me), "a runner id of this process that is not running"
    _LIVE.add(me)
    try:
        assert not holder_is_dead(me)
    finally:
        _LIVE.discard(me)
    assert not holder_is_dead(f"{_HOST}:{_PIDNS}:{os.getppid()}:tok"), "a live process"
    assert not holder_is_dead(f"other-host:{_PIDNS}:999999:tok"), "elsewhere: only the heartbeat tells"
    assert not holder_is_dead(f"{_HOST}:other-ns:999999:tok"), "another PID namespace (container)"
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    assert holder_is_dead(f"{_HOST}:{_PIDNS}:{done.stdout.strip()}:tok"), "an exited process"
