"""Ray backend: each trial is a Ray core task (not Tune), so a study's trials spread over a cluster.

The runner stays where it is (it is the only writer to the store); only `run_trial(spec)` travels.
Trials request `trial_cpus` CPUs (and `trial_gpus` GPUs), so Ray places them where those are free.
A trial whose node or worker process dies is re-run by Ray (`max_retries`); one that still cannot
finish fails with kind `crash`, and the runner's own `--retries` apply on top. Project code reaches
the workers through the job's runtime environment (`py_modules`: this nasforge package and the user
modules a study names, see nasforge.execution.plugins); its dependencies (torch, ...) must be installed
on every node. Without an address a local Ray instance
is started and stopped with the backend.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from nasforge.core.errors import ConfigError
from nasforge.core.types import Result, TrialSpec, TrialState

log = logging.getLogger("nasforge.execution.ray")


def _ray_trial(spec: TrialSpec) -> tuple[Result, str]:
    """Runs on a Ray worker: the result, and the id of the node that ran it (for logs and tests)."""
    import ray

    from nasforge.execution.worker import prepare, run_trial

    prepare(spec)
    return run_trial(spec), ray.get_runtime_context().get_node_id()


def _import_ray() -> Any:
    try:
        import ray
    except ImportError as exc:
        raise ConfigError("--backend ray needs Ray: pip install 'nasforge[ray]'") from exc
    return ray


class RayBackend:
    """Trials as Ray tasks on a cluster (`address`: "auto", "HOST:PORT", "ray://...") or a local instance."""

    poll_s = 0.5

    def __init__(self, address: str | None = None, workers: int | None = None, *, trial_cpus: float = 1.0,
                 trial_gpus: float = 0.0, trial_timeout: float | None = None, max_retries: int = 3,
                 modules: Sequence[str] = ()) -> None:
        if trial_cpus <= 0 or trial_gpus < 0:
            raise ConfigError(f"--trial-cpus must be positive and --trial-gpus not negative "
                              f"(got {trial_cpus}, {trial_gpus})")
        if workers is not None and workers < 1:
            raise ConfigError(f"--workers must be at least 1 (got {workers})")
        ray = _import_ray()
        self._ray = ray
        package = str(Path(__file__).resolve().parents[1])  # the nasforge package, shipped to every worker
        self.py_modules = [package, *(m for m in modules if m != package)]
        runtime_env = {"py_modules": self.py_modules, "env_vars": {"RAY_USAGE_STATS_ENABLED": "0"}}
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        self.started_local = not address
        try:
            if address:
                ray.init(address=address, runtime_env=runtime_env, logging_level=logging.WARNING,
                         log_to_driver=False)
            else:
                ray.init(address="local", num_cpus=workers or os.cpu_count() or 1, runtime_env=runtime_env,
                         include_dashboard=False, logging_level=logging.WARNING, log_to_driver=False)
        except (ConnectionError, ValueError, RuntimeError) as exc:
            raise ConfigError(f"--backend ray: cannot reach a Ray cluster at {address or 'a new local instance'}: "
                              f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from exc
        cluster_cpus = float(ray.cluster_resources().get("CPU", 1))
        self.workers = workers or max(1, int(cluster_cpus // trial_cpus))
        self.trial_cpus = trial_cpus
        self.trial_timeout = trial_timeout
        self._task = ray.remote(_ray_trial).options(num_cpus=trial_cpus, num_gpus=trial_gpus,
                                                    max_retries=max_retries, retry_exceptions=False)
        self.nodes: dict[int, str] = {}  # trial number -> node that ran it
        self._lock = threading.Lock()
        self._pending: dict[Any, tuple[TrialSpec, Future[Result], float]] = {}
        self._closed = threading.Event()
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="nasforge-ray", daemon=True)
        self._thread.start()

    def capacity(self) -> int:
        return self.workers

    def threads(self) -> int:
        return max(1, int(self.trial_cpus))

    def submit(self, spec: TrialSpec) -> Future[Result]:
        if self._closed.is_set():
            raise RuntimeError("the Ray backend is shut down")
        future: Future[Result] = Future()
        future.set_running_or_notify_cancel()
        ref = self._task.remote(spec)
        with self._lock:
            self._pending[ref] = (spec, future, time.monotonic())
        self._wake.set()
        return future

    def _watch(self) -> None:
        """Collect finished tasks; cancel (kill) tasks past the time limit, which then fail as `timeout`."""
        ray = self._ray
        while not self._closed.is_set():
            with self._lock:
                refs = list(self._pending)
                if not refs:
                    self._wake.clear()
            if not refs:
                self._wake.wait(self.poll_s)  # set by submit and shutdown
                continue
            ready, rest = ray.wait(refs, num_returns=1, timeout=self.poll_s / 5)
            if ready and rest:  # collect every other finished one too
                more, _ = ray.wait(rest, num_returns=len(rest), timeout=0)
                ready += more
            for ref in ready:
                with self._lock:
                    spec, future, _start = self._pending.pop(ref)
                try:
                    result, node = ray.get(ref)
                    self.nodes[spec.number] = node
                except Exception as exc:  # the task's worker or node died more often than max_retries
                    reason = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
                    result = Result(TrialState.FAILED, error=f"crash: {type(exc).__name__}: {reason}"[:2000],
                                    trial_number=spec.number)
                if not future.done():
                    future.set_result(result)
            if self.trial_timeout is None:
                continue
            now = time.monotonic()
            with self._lock:
                late = [(r, v) for r, v in self._pending.items() if now - v[2] >= self.trial_timeout]
                for ref, _ in late:
                    self._pending.pop(ref)
            for ref, (spec, future, start) in late:
                future.set_result(Result(TrialState.FAILED, duration=now - start, trial_number=spec.number,
                                         error=f"timeout: trial still running after {self.trial_timeout:g} s "
                                               "(--trial-timeout, counted from submission); its Ray task was killed"))
                ray.cancel(ref, force=True)

    def shutdown(self) -> None:
        """Cancel what still runs, then disconnect; a local instance we started is stopped."""
        if self._closed.is_set():
            return
        self._closed.set()
        self._wake.set()
        self._thread.join(timeout=10)
        with self._lock:
            pending = list(self._pending.items())
            self._pending.clear()
        for ref, (_spec, future, _start) in pending:
            try:
                self._ray.cancel(ref, force=True)
            except Exception as exc:  # already finished or its node is gone
                log.debug("cancel failed: %s", exc)
            if not future.done():
                future.set_exception(RuntimeError("the Ray backend was shut down"))
        self._ray.shutdown()
