"""The Ray backend on a real two-node cluster (CI starts one): trials spread over nodes, and a node that
dies mid-search costs retries, not trials."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import pytest

from nasforge.core.types import TrialState
from nasforge.launch import build_config
from nasforge.runner import Runner, RunSummary
from nasforge.storage.sql import Store
from tests.conftest import ray_address_or_skip


def config(tmp_path: Path, **kw):
    options = {"space": "nb201", "strategy": "random", "evaluator": "synthetic", "trials": 8, "study": "ray",
               "storage": f"sqlite:///{tmp_path / 'db.sqlite'}", "root": str(tmp_path / "art"), "progress": False,
               "backend": "ray"}
    options.update(kw)
    return build_config(**options)


def tree_pids(mark: str) -> list[int]:
    """Processes whose command line names `mark`, and their descendants (Ray workers rename themselves)."""
    children: dict[int, list[int]] = {}
    roots = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cmd = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            ppid = int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry))
        if mark in cmd and int(entry) != os.getpid():
            roots.append(int(entry))
    seen: set[int] = set()
    todo = list(roots)
    while todo:
        pid = todo.pop()
        if pid not in seen:
            seen.add(pid)
            todo += children.get(pid, [])
    return sorted(seen)


def kill_all(pids: list[int]) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def test_trials_land_on_both_nodes(tmp_path: Path) -> None:
    from nasforge.execution.ray import RayBackend

    address = ray_address_or_skip()
    cfg = config(tmp_path, trials=8, evaluator_options={"sleep": 0.5})
    backend = RayBackend(address)
    try:
        assert backend.capacity() >= 2
        summary = Runner(cfg, Store(cfg.storage), backend).run()
    finally:
        backend.shutdown()
    assert summary.complete == 8
    assert len(set(backend.nodes.values())) >= 2, backend.nodes


def test_a_node_killed_mid_search_costs_no_trial(tmp_path: Path) -> None:
    import ray

    from nasforge.execution.ray import RayBackend

    address = ray_address_or_skip()
    node_dir = Path(tempfile.mkdtemp(prefix="nf-ray-", dir="/tmp"))  # short: Ray's socket paths have a limit
    env = dict(os.environ, RAY_USAGE_STATS_ENABLED="0")
    started = subprocess.run(["ray", "start", "--address", address, "--node-ip-address", "127.0.0.1", "--num-cpus",
                              "1", "--object-store-memory", "100000000", "--temp-dir", str(node_dir),
                              "--disable-usage-stats"], capture_output=True, text=True, env=env, timeout=120)
    try:
        assert started.returncode == 0, started.stdout[-2000:] + started.stderr[-2000:]
        cfg = config(tmp_path, trials=16, evaluator_options={"sleep": 1.5})
        backend = RayBackend(address)
        try:
            deadline = time.time() + 60
            while sum(n["Alive"] for n in ray.nodes()) < 3 and time.time() < deadline:
                time.sleep(0.5)
            store = Store(cfg.storage)
            out: list[RunSummary] = []
            thread = threading.Thread(target=lambda: out.append(Runner(cfg, store, backend).run()), daemon=True)
            thread.start()
            node3 = [n["NodeID"] for n in ray.nodes() if n["Alive"] and str(node_dir) in n["ObjectStoreSocketName"]]
            assert node3, "the third node joined"
            deadline = time.time() + 120
            while node3[0] not in backend.nodes.values() and time.time() < deadline and thread.is_alive():
                time.sleep(0.1)  # its first worker starts (imports, runtime env) before it finishes a trial
            assert node3[0] in backend.nodes.values(), "the third node ran trials before it died"
            time.sleep(0.5)  # and now runs the next one
            raylets = [p for p in tree_pids(str(node_dir)) if "raylet" in Path(f"/proc/{p}/cmdline").read_text(
                errors="replace")]
            assert raylets, "the third node's raylet was found"
            kill_all(tree_pids(str(node_dir)))  # the node dies: raylet, its workers, their agents
            thread.join(timeout=300)
            assert not thread.is_alive()
        finally:
            backend.shutdown()
        summary = out[0]
        study = store.require_study("ray")
        states = [t.state for t in store.trials(study.id)]
        errors = [t.error for t in store.trials(study.id)]
        assert summary.complete == 16 and states == [TrialState.COMPLETE] * 16, errors
    finally:
        kill_all(tree_pids(str(node_dir)))
        shutil.rmtree(node_dir, ignore_errors=True)


def test_address_needs_the_ray_backend() -> None:
    from nasforge.core.errors import ConfigError
    from nasforge.execution.local import make_backend

    with pytest.raises(ConfigError, match="--address needs --backend ray"):
        make_backend(2, address="auto")
