"""Runner ids and whether the runner holding a trial is provably gone (the heartbeat rule covers the rest)."""

from __future__ import annotations

import os
import socket
import uuid


def _pid_namespace() -> str:
    try:
        return os.readlink("/proc/self/ns/pid").split("[")[-1].rstrip("]")
    except OSError:
        return "-"


_HOST = socket.gethostname()
_PIDNS = _pid_namespace()
_LIVE: set[str] = set()  # runner ids alive in this process


def new_runner_id() -> str:
    """host:pid-namespace:pid:token. The first three let a runner on the same machine see at once that a
    holder process is gone; the token tells two runners of one process apart."""
    return f"{_HOST}:{_PIDNS}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def holder_is_dead(holder: str) -> bool:
    """True only when we can prove it: the holder ran on this host, in this pid namespace, and has exited.
    Holders elsewhere are judged by their heartbeat alone."""
    parts = holder.split(":")
    if len(parts) != 4 or parts[0] != _HOST or parts[1] != _PIDNS or not parts[2].isdigit():
        return False
    pid = int(parts[2])
    if pid == os.getpid():
        return holder not in _LIVE
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")  # exited, not yet reaped
    except (OSError, IndexError):
        return False
