"""A process-pool worker: `python -m nasforge.execution.worker_process FD`, started by `local.ProcessPoolBackend`.

A worker of its own entry point, rather than multiprocessing's spawn, never imports the user's `__main__`:
spawn re-runs an unguarded script in every worker, which then fails in its bootstrapping phase and left the
parent waiting. The parent's end of the socket pair whose other end is FD speaks the protocol:

    parent -> worker  ("init", {"sys_path": [...], "registry": {...}, "nasforge": path})
    worker -> parent  ("ready", pid)              or ("failed", "one line") and exit
    parent -> worker  a TrialSpec                 (None: stop)
    worker -> parent  ("started", number, seconds of start-up), then ("result", Result)

This module's own imports are the standard library only, so that a broken environment is reported by the
worker over its connection (or by its exit before "ready"), not by a hang.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import traceback
from multiprocessing.connection import Connection
from typing import Any


def in_pool_worker() -> bool:
    """True in a process started as `python -m nasforge.execution.worker_process` (a pool worker)."""
    spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    return getattr(spec, "name", None) == "nasforge.execution.worker_process"


def _one_line(exc: BaseException) -> str:
    return traceback.format_exception_only(type(exc), exc)[-1].strip()


def _set_up(init: dict[str, Any]) -> None:
    """The parent's import path and registry names; the same nasforge package as the parent's."""
    sys.path[:] = list(init["sys_path"])
    import nasforge
    from nasforge.core import registry

    here = os.path.dirname(os.path.abspath(nasforge.__file__))
    if os.path.normcase(here) != os.path.normcase(init["nasforge"]):
        raise ImportError(f"the worker imported nasforge from {here}, the search runs the one in {init['nasforge']}")
    registry.load_tables(init["registry"])
    import nasforge.execution.worker  # what every trial needs, imported before "ready"


def serve(conn: Connection) -> int:
    """Run specs until told to stop (None) or the parent goes away (EOF); the exit code."""
    try:
        kind, init = conn.recv()
    except (EOFError, OSError):
        return 0
    try:
        if kind != "init":
            raise RuntimeError(f"expected an init message, got {kind!r}")
        _set_up(init)
    except BaseException as exc:  # anything at all: the parent turns it into one WorkerStartError line
        with contextlib.suppress(OSError):
            conn.send(("failed", _one_line(exc)))
        return 1
    from nasforge.execution.worker import prepare, run_trial

    conn.send(("ready", os.getpid()))
    while True:
        try:
            spec = conn.recv()
        except (EOFError, OSError):
            return 0
        if spec is None:
            return 0
        try:
            startup = prepare(spec)
            conn.send(("started", spec.number, startup))  # a time limit counts from here
            conn.send(("result", run_trial(spec)))
        except (BrokenPipeError, EOFError, OSError):
            return 0


def main(argv: list[str]) -> int:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the runner's to handle, not each worker's
    if len(argv) != 1 or not argv[0].isdigit():
        print("usage: python -m nasforge.execution.worker_process FD (started by nasforge's process pool)",
              file=sys.stderr)
        return 2
    fd = int(argv[0])
    os.set_inheritable(fd, False)  # processes a trial starts must not hold the pool's connection open
    return serve(Connection(fd))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
