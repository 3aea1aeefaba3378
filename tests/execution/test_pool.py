"""The local process pool: workers that never import the user's `__main__`, start-up failures that stop the
search within seconds as one line, and start-up reported apart from a trial's time."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from nasforge.core import registry
from nasforge.core.errors import WorkerStartError
from nasforge.core.types import Result, TrialSpec, TrialState
from nasforge.execution.local import ProcessPoolBackend
from nasforge.execution.worker import STARTUP_METRIC
from nasforge.spaces.nb201 import NB201Space

START_LIMIT_S = 20.0  # "within seconds": far below the minutes a hang would take, with room for a busy machine


def synthetic_spec(number: int, **options: object) -> TrialSpec:
    arch = NB201Space().sample(np.random.default_rng(number))
    return TrialSpec(study="s", number=number, arch=NB201Space().to_json(arch), seed=number, space="nb201",
                     space_config={}, evaluator="synthetic", evaluator_config=dict(options), budget={},
                     objective="valid_accuracy", direction="maximize", workdir=None, threads=1)


def fake_python(tmp_path: Path, body: str) -> str:
    """An executable the pool takes for its Python: a shell script that fails the way a broken one would."""
    path = tmp_path / "python"
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(0o755)
    return str(path)


def test_workers_do_not_import_the_users_main(tmp_path: Path) -> None:
    """A script without a `__main__` guard runs its pool search once, not once more per worker (spawn re-ran it
    in each worker, which then failed in its bootstrapping phase and left the parent waiting)."""
    script = tmp_path / "unguarded.py"
    script.write_text(textwrap.dedent(f"""
        import os
        with open({str(tmp_path / 'imports.txt')!r}, "a") as log:
            log.write(f"{{os.getpid()}}\\n")
        from nasforge.execution.local import ProcessPoolBackend
        from tests.execution.test_pool import synthetic_spec
        pool = ProcessPoolBackend(2)
        results = [f.result(timeout=60) for f in [pool.submit(synthetic_spec(n)) for n in range(4)]]
        pool.shutdown()
        print(sorted(r.trial_number for r in results), {{r.state.value for r in results}})
    """))
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=120,
                          env={**_env(), "PYTHONPATH": str(root)})
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[0, 1, 2, 3] {'complete'}"
    assert len((tmp_path / "imports.txt").read_text().split()) == 1, "a worker imported the script"


def _env() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}


@pytest.mark.parametrize(("body", "expected"), [
    ("exit 3", "exited with code 3"),
    ("echo 'Fatal Python error: init_fs_encoding' >&2; exit 1", "Fatal Python error: init_fs_encoding"),
    (f"exec {sys.executable} -c 'import no_such_module_for_nasforge'",
     "ModuleNotFoundError: No module named 'no_such_module_for_nasforge'"),
    ("kill -9 $$", "killed by SIGKILL"),
])
def test_a_worker_that_dies_before_it_is_ready_is_one_error_within_seconds(tmp_path: Path, body: str,
                                                                            expected: str) -> None:
    start = time.monotonic()
    with pytest.raises(WorkerStartError) as caught:
        ProcessPoolBackend(2, python=fake_python(tmp_path, body))
    assert time.monotonic() - start < START_LIMIT_S
    message = str(caught.value)
    assert expected in message and "did not start" in message and "\n" not in message


def test_a_missing_interpreter_is_one_error_at_once(tmp_path: Path) -> None:
    with pytest.raises(WorkerStartError, match=r"cannot start a trial worker process with .*no-such-python"):
        ProcessPoolBackend(2, python=str(tmp_path / "no-such-python"))


def test_a_worker_that_never_answers_is_killed_after_the_start_timeout(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(ProcessPoolBackend, "start_timeout_s", 1.5)
    start = time.monotonic()
    with pytest.raises(WorkerStartError, match=r"no answer within 1\.5 s"):
        ProcessPoolBackend(1, trial_timeout=5.0, python=fake_python(tmp_path, "exec sleep 600"))
    assert time.monotonic() - start < START_LIMIT_S


def test_a_replacement_worker_that_cannot_start_fails_its_trial_and_every_later_one(tmp_path: Path) -> None:
    pool = ProcessPoolBackend(1, trial_timeout=60.0)
    try:
        crashed = pool.submit(synthetic_spec(0, crash_every=1)).result(timeout=60)
        assert crashed.state == TrialState.FAILED and "SIGKILL" in (crashed.error or "")
        pool.python = fake_python(tmp_path, "echo 'cannot import torch' >&2; exit 1")
        start = time.monotonic()
        with pytest.raises(WorkerStartError, match="cannot import torch"):
            pool.submit(synthetic_spec(1)).result(timeout=START_LIMIT_S)
        assert time.monotonic() - start < START_LIMIT_S
        with pytest.raises(WorkerStartError):
            pool.submit(synthetic_spec(2)).result(timeout=1)
    finally:
        pool.shutdown()


def test_search_with_workers_that_cannot_start_stops_with_one_line_and_stores_no_trial(
        tmp_path: Path, monkeypatch, capsys) -> None:
    from nasforge.cli.main import main
    from nasforge.storage.sql import Store

    monkeypatch.setattr(sys, "executable", fake_python(tmp_path, "echo 'broken interpreter' >&2; exit 1"))
    storage = f"sqlite:///{tmp_path / 'db.sqlite'}"
    start = time.monotonic()
    code = main(["search", "--space", "nb201", "--evaluator", "synthetic", "--trials", "4", "--workers", "2",
                 "--study", "s", "--storage", storage, "--no-progress"])
    assert time.monotonic() - start < START_LIMIT_S
    err = capsys.readouterr().err.strip().splitlines()  # the study's header line, then the error
    errors = [line for line in err if "error" in line]
    assert code == 2 and errors == err[-1:] and "broken interpreter" in err[-1], err
    store = Store(storage)
    assert store.trials(store.require_study("s").id) == []


def test_the_runner_stops_when_a_worker_cannot_start(tmp_path: Path) -> None:
    from concurrent.futures import Future

    from nasforge.launch import build_config
    from nasforge.runner import Runner
    from nasforge.storage.sql import Store

    class NoWorkers:
        def capacity(self) -> int:
            return 2

        def submit(self, spec: TrialSpec) -> Future[Result]:
            future: Future[Result] = Future()
            future.set_exception(WorkerStartError("a trial worker process did not start: test"))
            return future

        def shutdown(self) -> None:
            return None

    config = build_config(space="nb201", strategy="random", evaluator="synthetic", trials=20, workers=2,
                          study="s", storage=f"sqlite:///{tmp_path / 'db.sqlite'}", root=str(tmp_path),
                          progress=False)
    with pytest.raises(WorkerStartError):
        Runner(config, Store(config.storage), NoWorkers()).run()


class NoisyEvaluator:
    """Writes to stderr in the worker, then answers: its lines must reach the parent's stderr."""

    def evaluate(self, arch: object, spec: TrialSpec, reporter: object) -> Result:
        print(f"noisy trial {spec.number}", file=sys.stderr, flush=True)
        return Result(TrialState.COMPLETE, metrics={"valid_accuracy": 0.5})


def test_workers_use_the_parents_registry_and_forward_their_stderr(monkeypatch, capfd) -> None:
    monkeypatch.setitem(registry.EVALUATORS, "noisy", f"{__name__}:NoisyEvaluator")
    pool = ProcessPoolBackend(1, trial_timeout=60.0)
    try:
        spec = synthetic_spec(7)
        spec = TrialSpec(**{**spec.__dict__, "evaluator": "noisy", "evaluator_config": {}})
        result = pool.submit(spec).result(timeout=60)
    finally:
        pool.shutdown()
    assert result.state == TrialState.COMPLETE, result.error
    assert "noisy trial 7" in capfd.readouterr().err


def test_worker_start_up_is_reported_apart_from_the_trials_own_time(tmp_path: Path) -> None:
    """The first trial on each worker carries the start-up (process, imports, data) as its own metric; its
    duration is the trial's, shorter than that start-up (it used to include it: about 2 s against 0.1 s)."""
    from nasforge.launch import build_config, run
    from nasforge.report.leaderboard import format_table, rows_for
    from nasforge.storage.sql import Store

    config = build_config(data="builtin:iris", space="dnn", strategy="random", trials=4, workers=2, epochs=2,
                          study="s", storage=f"sqlite:///{tmp_path / 'db.sqlite'}", root=str(tmp_path / "art"),
                          progress=False, baseline=False)
    store = Store(config.storage)
    run(config, store)
    trials = store.trials(store.require_study("s").id)
    started = [t for t in trials if STARTUP_METRIC in t.metrics]
    assert len(started) == 2, "one start-up per worker, on its first trial"
    for t in started:
        assert t.duration is not None and t.duration < t.metrics[STARTUP_METRIC]
    table = format_table(rows_for(store.require_study("s"), trials, None))
    assert "startup_s" in table.splitlines()[0]


def test_in_process_trials_report_the_data_loading_apart_too(tmp_path: Path) -> None:
    from nasforge.launch import build_config, run
    from nasforge.storage.sql import Store

    config = build_config(data="builtin:wine", space="dnn", strategy="random", trials=2, workers=1, epochs=1,
                          study="s", storage=f"sqlite:///{tmp_path / 'db.sqlite'}", root=str(tmp_path / "art"),
                          progress=False, baseline=False, seed=11)
    store = Store(config.storage)
    run(config, store)
    first, second = sorted(store.trials(store.require_study("s").id), key=lambda t: t.number)
    assert first.metrics[STARTUP_METRIC] > 0 and STARTUP_METRIC not in second.metrics
