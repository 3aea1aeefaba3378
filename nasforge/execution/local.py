"""In-process and local process-pool backends.

The pool is our own rather than `concurrent.futures.ProcessPoolExecutor`: that one cannot kill
one stuck worker (so no per-trial time limit) and marks itself broken for good when any worker
dies, failing every later trial. Here a worker past its deadline is killed, a worker that dies
(the kernel's OOM killer, a segfault) fails only its own trial, and either is replaced.

Workers are `python -m nasforge.execution.worker_process` (see there), not multiprocessing's spawn: so
they never import the user's `__main__`, and a script without an `if __name__ == "__main__":` guard
searches with several workers as it does with one. A worker that cannot start (a bad interpreter, an
import error, an exit before its "ready") stops the search with one `WorkerStartError` within seconds.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from typing import Any

import nasforge
from nasforge.core import registry
from nasforge.core.errors import ConfigError, WorkerStartError
from nasforge.core.types import Result, TrialSpec, TrialState
from nasforge.execution.worker import prepare, run_trial, with_startup

WORKER_MODULE = "nasforge.execution.worker_process"
_TAIL_BYTES = 8192  # what a worker last wrote to stderr, kept for the message when it cannot start or dies


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
        startup = prepare(spec)  # data loaded once, reported apart from the first trial's own time
        future.set_result(with_startup(run_trial(spec), startup))
        return future

    def shutdown(self) -> None:
        return None


def _package_root() -> str:
    """The folder holding the nasforge package this process runs: put first on a worker's import path, so
    the worker runs the same nasforge however this process found it (installed, editable, or sys.path)."""
    return os.path.dirname(os.path.dirname(os.path.abspath(nasforge.__file__)))


def _worker_env() -> dict[str, str]:
    env = dict(os.environ)
    old = env.get("PYTHONPATH")
    env["PYTHONPATH"] = _package_root() + (os.pathsep + old if old else "")
    return env


def _interpreter_flags() -> list[str]:
    """This interpreter's -O, -W, -X, ... options, as multiprocessing gives its children; not the isolation
    flags (-I, -E, -P), which would hide the PYTHONPATH that finds this nasforge."""
    flags: list[str] = subprocess._args_from_interpreter_flags()  # type: ignore[attr-defined]
    return [f for f in flags if f not in ("-I", "-E", "-P")]


def _init_message() -> tuple[str, dict[str, Any]]:
    return "init", {"sys_path": list(sys.path), "registry": registry.tables(),
                    "nasforge": os.path.dirname(os.path.abspath(nasforge.__file__))}


def _pidfd(pid: int) -> int | None:
    """A descriptor that becomes readable when the process exits (Linux 5.3+), else None (polled instead)."""
    opener = getattr(os, "pidfd_open", None)
    if opener is None:
        return None
    try:
        return int(opener(pid))
    except OSError:
        return None


@dataclass
class _Task:
    spec: TrialSpec
    future: Future[Result]
    deadline: float | None = None
    started: float = 0.0
    startup: float = 0.0  # seconds its worker spent starting before this trial could begin


class _Worker:
    """One worker process: its connection, its exit sentinel, and its stderr (kept until it is ready, for the
    message if it never is; forwarded to ours after that)."""

    def __init__(self, python: str) -> None:
        ours, theirs = socket.socketpair()
        self.conn = Connection(ours.detach())
        fd = theirs.fileno()
        command = [python, *_interpreter_flags(), "-m", WORKER_MODULE, str(fd)]
        try:
            self.process = subprocess.Popen(command, pass_fds=(fd,), stdin=subprocess.DEVNULL,
                                            stderr=subprocess.PIPE, env=_worker_env())
        except (OSError, ValueError) as exc:
            self.conn.close()
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            raise WorkerStartError(f"cannot start a trial worker process with {python!r}: {reason}") from exc
        finally:
            theirs.close()
        self.python = python
        self.spawned = time.monotonic()
        self.ready_s: float | None = None  # seconds from spawn to its "ready"
        self.pending_startup = 0.0  # start-up its next trial is charged with
        self.failure: str | None = None  # what the worker said when it could not set up
        self.task: _Task | None = None
        assert self.process.stderr is not None
        self._err_fd: int | None = self.process.stderr.fileno()
        os.set_blocking(self._err_fd, False)
        self._tail = b""
        self._unsent = b""
        self.sentinel = _pidfd(self.process.pid)
        with contextlib.suppress(OSError):  # a worker already dead is found by the monitor
            self.conn.send(_init_message())

    def waitables(self) -> list[Any]:
        found: list[Any] = [self.conn]
        if self._err_fd is not None:
            found.append(self._err_fd)
        if self.sentinel is not None:
            found.append(self.sentinel)
        return found

    def has_output(self, ready: list[Any]) -> bool:
        return self._err_fd is not None and self._err_fd in ready

    def read_stderr(self) -> None:
        """Take what the worker wrote to stderr (never blocks); forward whole lines once it is ready."""
        while self._err_fd is not None:
            try:
                chunk = os.read(self._err_fd, 65536)
            except BlockingIOError:
                break
            except OSError:
                chunk = b""
            if not chunk:
                self._close_stderr()
                break
            self._tail = (self._tail + chunk)[-_TAIL_BYTES:]
            self._unsent += chunk
        self.forward_stderr(final=self._err_fd is None)

    def forward_stderr(self, final: bool = False) -> None:
        if self.ready_s is None or not self._unsent:
            return
        cut = len(self._unsent) if final else self._unsent.rfind(b"\n") + 1
        if cut <= 0:
            return
        text, self._unsent = self._unsent[:cut], self._unsent[cut:]
        with contextlib.suppress(OSError, ValueError, AttributeError):
            sys.stderr.write(text.decode("utf-8", "replace"))
            sys.stderr.flush()

    def last_words(self) -> str:
        lines = [line.strip() for line in self._tail.decode("utf-8", "replace").splitlines() if line.strip()]
        return lines[-1] if lines else ""

    def start_error(self, detail: str) -> WorkerStartError:
        return WorkerStartError(f"a trial worker process did not start: {detail} (started as: {self.python} -m "
                                f"{WORKER_MODULE}; this Python must import the same nasforge and torch)")

    def _close_stderr(self) -> None:
        if self._err_fd is not None:
            assert self.process.stderr is not None
            self.process.stderr.close()
            self._err_fd = None

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=10)
        self.read_stderr()
        self._close_stderr()
        self.conn.close()
        if self.sentinel is not None:
            os.close(self.sentinel)
            self.sentinel = None


def _death_reason(code: int | None, last_words: str = "") -> str:
    if code is not None and code < 0:
        name = signal.Signals(-code).name if -code in signal.Signals._value2member_map_ else str(-code)
        hint = " (out of memory? the kernel's OOM killer sends SIGKILL)" if -code == signal.SIGKILL else ""
        return f"crash: worker process killed by {name}{hint}"
    return f"crash: worker process exited with code {code}" + (f": {last_words}" if last_words else "")


class ProcessPoolBackend:
    """N worker processes (`python -m nasforge.execution.worker_process`: a fresh interpreter, so torch's
    threads and locks are never forked and the user's `__main__` is never imported).

    Each worker keeps its evaluator, and so its loaded data, between trials; the cores are
    split between workers so they do not oversubscribe the CPU. With `trial_timeout`, a trial
    still running after that many seconds has its worker killed and fails with kind `timeout`.
    The workers are started, and their "ready" awaited, when the pool is made: one that cannot start
    raises `WorkerStartError` here, before any trial is stored; one that cannot start later (a
    replacement) fails its trial's future with that error, which stops the runner.
    """

    poll_s = 0.5  # longest sleep of the monitor thread without an event
    start_timeout_s = 60.0  # a worker with no "ready" after this long is killed: it cannot start

    def __init__(self, workers: int, trial_timeout: float | None = None, *, python: str | None = None) -> None:
        if workers < 1:
            raise ConfigError(f"--workers must be at least 1 (got {workers})")
        if trial_timeout is not None and trial_timeout <= 0:
            raise ConfigError(f"--trial-timeout must be a positive number of seconds (got {trial_timeout})")
        if os.name != "posix":
            raise ConfigError("--workers above 1 and --trial-timeout need a POSIX system (Linux, macOS); "
                              "use --workers 1 without --trial-timeout here")
        self.workers = workers
        self.trial_timeout = trial_timeout
        self.python = python or sys.executable
        if not self.python:
            raise WorkerStartError("this Python does not know its own executable (sys.executable is empty), "
                                   "so it cannot start trial worker processes; use --workers 1")
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)  # a worker became ready, or the pool broke
        self._queue: deque[_Task] = deque()
        self._pool: list[_Worker] = []
        self._broken: WorkerStartError | None = None
        self._wake_r, self._wake_w = multiprocessing.Pipe(duplex=False)
        self._closed = False
        try:
            with self._lock:
                for _ in range(workers):
                    self._pool.append(_Worker(self.python))
        except WorkerStartError:
            self._stop_all()
            raise
        self._thread = threading.Thread(target=self._monitor, name="nasforge-pool", daemon=True)
        self._thread.start()
        self._await_ready()

    def _await_ready(self) -> None:
        with self._changed:
            self._changed.wait_for(lambda: self._broken is not None or all(w.ready_s is not None for w in self._pool),
                                   timeout=self.start_timeout_s + 10 * self.poll_s)
            broken = self._broken
        if broken is not None:
            self.shutdown()
            raise broken

    def capacity(self) -> int:
        return self.workers

    def threads(self) -> int:
        return max(1, (os.cpu_count() or 1) // self.workers)

    def submit(self, spec: TrialSpec) -> Future[Result]:
        future: Future[Result] = Future()
        with self._lock:
            if self._closed:
                raise RuntimeError("the process pool is shut down")
            if self._broken is not None:
                future.set_exception(self._broken)
                return future
            self._queue.append(_Task(spec, future))
        self._wake()
        return future

    def _wake(self) -> None:
        with contextlib.suppress(OSError):
            self._wake_w.send_bytes(b"x")

    # ---- the monitor thread: dispatch, collect, enforce deadlines, replace dead workers ----
    def _dispatch(self) -> None:
        with self._lock:
            while self._queue and self._broken is None:
                idle = next((w for w in self._pool if w.task is None), None)
                if idle is None and len(self._pool) < self.workers:
                    try:
                        idle = _Worker(self.python)
                    except WorkerStartError as exc:
                        self._break(exc)
                        return
                    self._pool.append(idle)
                if idle is None:
                    return
                task = self._queue.popleft()
                if not task.future.set_running_or_notify_cancel():
                    continue
                task.started = time.monotonic()
                task.deadline = None  # set when the worker says the trial started
                idle.task = task
                with contextlib.suppress(OSError):  # a dead worker: the monitor finds it and fails this trial
                    idle.conn.send(task.spec)

    def _break(self, error: WorkerStartError) -> None:
        """Inside the lock: no worker can start, so fail every queued trial and every later one with `error`."""
        if self._broken is None:
            self._broken = error
        queued = list(self._queue)
        self._queue.clear()
        for task in queued:
            if not task.future.done():
                task.future.set_exception(self._broken)
        self._changed.notify_all()

    def _retire(self, worker: _Worker) -> None:
        worker.kill()
        if worker in self._pool:
            self._pool.remove(worker)

    def _finish(self, worker: _Worker, result: Result) -> None:
        task = worker.task
        worker.task = None
        if task is not None and not task.future.done():
            task.future.set_result(with_startup(result, task.startup))

    def _receive(self, w: _Worker) -> bool:
        """Handle every message waiting from `w`; False once its connection is closed (it died)."""
        try:
            while w.conn.poll():
                self._on_message(w, w.conn.recv())
        except (EOFError, OSError):
            return False
        return True

    def _on_message(self, w: _Worker, message: tuple[Any, ...]) -> None:
        kind = message[0]
        if kind == "ready":
            with self._changed:
                w.ready_s = w.pending_startup = time.monotonic() - w.spawned
                self._changed.notify_all()
            w.forward_stderr()
        elif kind == "failed":
            w.failure = str(message[1])
        elif kind == "started" and w.task is not None:  # the clock starts now
            w.task.started = time.monotonic()
            w.task.deadline = w.task.started + self.trial_timeout if self.trial_timeout else None
            w.task.startup, w.pending_startup = w.pending_startup + float(message[2]), 0.0
        elif kind == "result":
            self._finish(w, message[1])

    def _fail_start(self, w: _Worker, detail: str) -> None:
        task = w.task
        w.task = None
        error = w.start_error(detail)
        with self._lock:
            self._retire(w)
            self._break(error)
        if task is not None and not task.future.done():
            task.future.set_exception(error)

    def _service(self, w: _Worker, ready: list[Any]) -> None:
        if w.has_output(ready):
            w.read_stderr()
        alive = self._receive(w) if w.conn in ready else True
        if alive and w.process.poll() is None:
            now = time.monotonic()
            if w.ready_s is None and now >= w.spawned + self.start_timeout_s:
                self._fail_start(w, f"no answer within {self.start_timeout_s:g} s")
            elif w.task is not None and w.task.deadline is not None and now >= w.task.deadline:
                task = w.task
                with self._lock:
                    self._retire(w)
                self._finish(w, Result(TrialState.FAILED, duration=now - task.started, trial_number=task.spec.number,
                                       error=f"timeout: trial still running after {self.trial_timeout:g} s "
                                             "(--trial-timeout); its worker was killed"))
            return
        self._receive(w)  # what it said just before it went
        with contextlib.suppress(subprocess.TimeoutExpired):
            w.process.wait(timeout=5)
        w.read_stderr()
        if w.ready_s is None:
            code = w.process.returncode
            said = w.failure or w.last_words()
            how = _death_reason(code).removeprefix("crash: worker process ")
            self._fail_start(w, f"{said} ({how})" if said else how)
            return
        number = w.task.spec.number if w.task else None
        self._finish(w, Result(TrialState.FAILED, error=_death_reason(w.process.returncode, w.last_words()),
                               trial_number=number))
        with self._lock:
            self._retire(w)

    def _monitor(self) -> None:
        while True:
            with self._lock:
                if self._closed:
                    return
                workers = list(self._pool)
            now = time.monotonic()
            timeout = self.poll_s
            for w in workers:
                due = w.spawned + self.start_timeout_s if w.ready_s is None else (
                    w.task.deadline if w.task is not None else None)
                if due is not None:
                    timeout = max(0.0, min(timeout, due - now))
            waitables: list[Any] = [self._wake_r]
            for w in workers:
                waitables += w.waitables()
            try:
                ready = wait(waitables, timeout=timeout)
            except OSError:
                ready = []
            if self._wake_r in ready:
                while self._wake_r.poll():
                    self._wake_r.recv_bytes()
            for w in workers:
                self._service(w, ready)
            self._dispatch()

    def shutdown(self) -> None:
        """Stop every worker now; trials still queued or running are cancelled (the store keeps them running)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            queued = list(self._queue)
            self._queue.clear()
        self._wake()
        self._thread.join(timeout=10)
        for task in queued:
            task.future.cancel()
        self._stop_all()

    def _stop_all(self) -> None:
        with self._lock:
            self._closed = True
            workers = list(self._pool)
            self._pool.clear()
        for w in workers:
            if w.task is None:
                with contextlib.suppress(OSError):
                    w.conn.send(None)
        for w in workers:
            if w.task is None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    w.process.wait(timeout=5)
            w.kill()
            if w.task is not None and not w.task.future.done():
                w.task.future.set_exception(RuntimeError("the process pool was shut down"))
        self._wake_r.close()
        self._wake_w.close()


def make_backend(workers: int | None, trial_timeout: float | None = None, *, backend: str = "local",
                 address: str | None = None, trial_cpus: float = 1.0, trial_gpus: float = 0.0,
                 modules: Sequence[str] = ()) -> Any:
    """`local`: one worker runs in-process unless trials need a time limit (only a process can be killed),
    more use a process pool. `ray`: Ray tasks on the cluster at `address` (or a local Ray instance), with
    `modules` (user code folders or files) shipped to its workers."""
    if backend == "ray":
        from nasforge.execution.ray import RayBackend

        return RayBackend(address, workers, trial_cpus=trial_cpus, trial_gpus=trial_gpus,
                          trial_timeout=trial_timeout, modules=modules)
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
