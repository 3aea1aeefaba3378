"""In-process and local process-pool backends.

The pool is our own rather than `concurrent.futures.ProcessPoolExecutor`: that one cannot kill
one stuck worker (so no per-trial time limit) and marks itself broken for good when any worker
dies, failing every later trial. Here a worker past its deadline is killed, a worker that dies
(the kernel's OOM killer, a segfault) fails only its own trial, and either is replaced.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import threading
import time
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from typing import Any

from nasforge.core.errors import ConfigError
from nasforge.core.types import Result, TrialSpec, TrialState
from nasforge.execution.worker import prepare, run_trial


def default_workers() -> int:
    return max(1, os.cpu_count() or 1)


class InProcessBackend:
    """Runs each trial immediately in this process: no start-up cost, and state an evaluator keeps survives.

    A trial here cannot be killed, so a `--trial-timeout` always uses a process pool instead.
    """

    def capacity(self) -> int:
        return 1

    def threads(self) -> int:
        return 0  # leave torch's own thread setting alone

    def submit(self, spec: TrialSpec) -> Future[Result]:
        future: Future[Result] = Future()
        future.set_result(run_trial(spec))
        return future

    def shutdown(self) -> None:
        return None


def _worker_main(conn: Connection) -> None:
    """A worker's loop: run specs until told to stop (None) or the parent goes away (EOF).

    It says ("started", number) once the trial's space and evaluator are built (data loaded, cached for
    later trials), so a time limit measures the trial, not the worker's start-up.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the runner's to handle, not each worker's
    while True:
        try:
            spec = conn.recv()
        except (EOFError, OSError):
            return
        if spec is None:
            return
        try:
            prepare(spec)
            conn.send(("started", spec.number))
            result = run_trial(spec)
            conn.send(("result", result))
        except (BrokenPipeError, EOFError, OSError):
            return


@dataclass
class _Task:
    spec: TrialSpec
    future: Future[Result]
    deadline: float | None = None
    started: float = 0.0


class _Worker:
    def __init__(self, ctx: Any) -> None:
        self.conn, child = ctx.Pipe()
        self.process = ctx.Process(target=_worker_main, args=(child,), daemon=True)
        self.process.start()
        child.close()
        self.task: _Task | None = None

    def kill(self) -> None:
        if self.process.is_alive():
            self.process.kill()
        self.process.join(timeout=10)
        self.conn.close()


def _death_reason(code: int | None) -> str:
    if code is not None and code < 0:
        name = signal.Signals(-code).name if -code in signal.Signals._value2member_map_ else str(-code)
        hint = " (out of memory? the kernel's OOM killer sends SIGKILL)" if -code == signal.SIGKILL else ""
        return f"crash: worker process killed by {name}{hint}"
    return f"crash: worker process exited with code {code}"


class ProcessPoolBackend:
    """N worker processes (spawned, so torch's threads and locks are never forked).

    Each worker keeps its evaluator, and so its loaded data, between trials; the cores are
    split between workers so they do not oversubscribe the CPU. With `trial_timeout`, a trial
    still running after that many seconds has its worker killed and fails with kind `timeout`.
    """

    poll_s = 0.5  # longest sleep of the monitor thread without an event

    def __init__(self, workers: int, trial_timeout: float | None = None) -> None:
        if workers < 1:
            raise ConfigError(f"--workers must be at least 1 (got {workers})")
        if trial_timeout is not None and trial_timeout <= 0:
            raise ConfigError(f"--trial-timeout must be a positive number of seconds (got {trial_timeout})")
        self.workers = workers
        self.trial_timeout = trial_timeout
        self._ctx = multiprocessing.get_context("spawn")
        self._lock = threading.Lock()
        self._queue: deque[_Task] = deque()
        self._pool: list[_Worker] = []
        self._wake_r, self._wake_w = self._ctx.Pipe(duplex=False)
        self._closed = False
        self._thread = threading.Thread(target=self._monitor, name="nasforge-pool", daemon=True)
        self._thread.start()

    def capacity(self) -> int:
        return self.workers

    def threads(self) -> int:
        return max(1, (os.cpu_count() or 1) // self.workers)

    def submit(self, spec: TrialSpec) -> Future[Result]:
        future: Future[Result] = Future()
        with self._lock:
            if self._closed:
                raise RuntimeError("the process pool is shut down")
            self._queue.append(_Task(spec, future))
        self._wake()
        return future

    def _wake(self) -> None:
        with contextlib.suppress(OSError):
            self._wake_w.send_bytes(b"x")

    # ---- the monitor thread: dispatch, collect, enforce deadlines, replace dead workers ----
    def _dispatch(self) -> None:
        with self._lock:
            while self._queue:
                idle = next((w for w in self._pool if w.task is None), None)
                if idle is None and len(self._pool) < self.workers:
                    idle = _Worker(self._ctx)
                    self._pool.append(idle)
                if idle is None:
                    return
                task = self._queue.popleft()
                if not task.future.set_running_or_notify_cancel():
                    continue
                task.started = time.monotonic()
                task.deadline = None  # set when the worker says the trial started
                idle.task = task
                try:
                    idle.conn.send(task.spec)
                except OSError as exc:
                    idle.task = None
                    self._retire(idle)
                    task.future.set_result(Result(TrialState.FAILED, error=f"crash: cannot reach worker: {exc}",
                                                  trial_number=task.spec.number))

    def _retire(self, worker: _Worker) -> None:
        worker.kill()
        if worker in self._pool:
            self._pool.remove(worker)

    def _finish(self, worker: _Worker, result: Result) -> None:
        task = worker.task
        worker.task = None
        if task is not None and not task.future.done():
            task.future.set_result(result)

    def _monitor(self) -> None:
        while True:
            with self._lock:
                if self._closed:
                    return
                busy = [w for w in self._pool if w.task is not None]
                deadlines = [w.task.deadline for w in busy if w.task is not None and w.task.deadline is not None]
            timeout = self.poll_s
            if deadlines:
                timeout = max(0.0, min(timeout, min(deadlines) - time.monotonic()))
            waitables: list[Any] = [self._wake_r]
            for w in busy:
                waitables += [w.conn, w.process.sentinel]
            try:
                ready = wait(waitables, timeout=timeout)
            except OSError:
                ready = []
            if self._wake_r in ready:
                while self._wake_r.poll():
                    self._wake_r.recv_bytes()
            for w in busy:
                if w.conn in ready:
                    try:
                        kind, payload = w.conn.recv()
                        if kind == "result":
                            self._finish(w, payload)
                            continue
                        if w.task is not None:  # "started": the clock starts now
                            w.task.started = time.monotonic()
                            w.task.deadline = w.task.started + self.trial_timeout if self.trial_timeout else None
                        if w.process.sentinel not in ready:
                            continue
                    except (EOFError, OSError):
                        pass  # died while answering: handled as a death below
                if w.conn in ready or w.process.sentinel in ready:
                    w.process.join(timeout=5)
                    task = w.task
                    number = task.spec.number if task else None
                    self._finish(w, Result(TrialState.FAILED, error=_death_reason(w.process.exitcode),
                                           trial_number=number))
                    with self._lock:
                        self._retire(w)
                elif w.task is not None and w.task.deadline is not None and time.monotonic() >= w.task.deadline:
                    task = w.task
                    elapsed = time.monotonic() - task.started
                    with self._lock:
                        self._retire(w)
                    self._finish(w, Result(TrialState.FAILED, duration=elapsed, trial_number=task.spec.number,
                                           error=f"timeout: trial still running after {self.trial_timeout:g} s "
                                                 "(--trial-timeout); its worker was killed"))
            self._dispatch()

    def shutdown(self) -> None:
        """Stop every worker now; trials still queued or running are cancelled (the store keeps them running)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            queued = list(self._queue)
            self._queue.clear()
            workers = list(self._pool)
            self._pool.clear()
        self._wake()
        self._thread.join(timeout=10)
        for task in queued:
            task.future.cancel()
        for w in workers:
            if w.task is None:
                with contextlib.suppress(OSError):
                    w.conn.send(None)
        for w in workers:
            if w.task is None:
                w.process.join(timeout=5)
            w.kill()
            if w.task is not None and not w.task.future.done():
                w.task.future.set_exception(RuntimeError("the process pool was shut down"))
        self._wake_r.close()
        self._wake_w.close()


def make_backend(workers: int | None, trial_timeout: float | None = None, *, backend: str = "local",
                 address: str | None = None, trial_cpus: float = 1.0, trial_gpus: float = 0.0) -> Any:
    """`local`: one worker runs in-process unless trials need a time limit (only a process can be killed),
    more use a process pool. `ray`: Ray tasks on the cluster at `address` (or a local Ray instance)."""
    if backend == "ray":
        from nasforge.execution.ray import RayBackend

        return RayBackend(address, workers, trial_cpus=trial_cpus, trial_gpus=trial_gpus,
                          trial_timeout=trial_timeout)
    if backend != "local":
        raise ConfigError(f"unknown --backend {backend!r}; choose local or ray")
    if address:
        raise ConfigError("--address needs --backend ray")
    n = default_workers() if workers is None else workers
    if n < 1:
        raise ConfigError(f"--workers must be at least 1 (got {n})")
    if n == 1 and trial_timeout is None:
        return InProcessBackend()
    return ProcessPoolBackend(n, trial_timeout=trial_timeout)
