"""The runner's state and its part in a study that several runners may share.

`RunnerBase` holds what the loop (`nasforge.runner.Runner`) works with, and everything that keeps runners on
one study in step: the strategy state reloaded when another runner saved a newer version, the heartbeat of
the trials this runner holds, trials taken over from runners that are gone, answers to proposals that waited
on another runner's trial, and the hand-back of held trials on every way out.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import Future
from datetime import timedelta
from pathlib import Path
from typing import Protocol

from sqlalchemy.engine import Connection

from nasforge.budget import TimeBudget
from nasforge.config import SearchConfig
from nasforge.core import registry
from nasforge.core.protocols import Backend
from nasforge.core.seeding import derive_seed
from nasforge.core.types import JSONDict, Proposal, Result, TrialSpec, TrialState
from nasforge.holders import holder_is_dead, new_runner_id
from nasforge.ordered import ORDER_KEY, TellOrder
from nasforge.storage.sql import Store, TrialRow, _now
from nasforge.study_setup import goals_json, open_study

log = logging.getLogger("nasforge.runner")


class ProgressSink(Protocol):
    def update(self, *, done: int, running: int, failed: int, best: float | None) -> None: ...

    def close(self) -> None: ...


class RunnerBase:
    """State, trial specs, submission and the shared-study bookkeeping; the loop is `nasforge.runner.Runner`."""

    max_consecutive_duplicates = 2000
    max_consecutive_failures = 10  # a search whose every trial fails is broken; say so instead of going on
    max_consecutive_pruned = 500  # constraints nothing the strategy proposes meets: stop rather than spin
    heartbeat_s = 10.0  # how often a runner refreshes the heartbeat of the trials it holds
    stale_after_s = 60.0  # a running trial whose heartbeat is older is taken over by another runner
    poll_s = 0.5  # how often a runner with nothing of its own to wait for looks at the store
    peek_s = 0.2  # how often a runner checks whether another one saved the strategy

    def __init__(self, config: SearchConfig, store: Store, backend: Backend,
                 progress: ProgressSink | None = None, budget: TimeBudget | None = None) -> None:
        self.config = config
        self.budget = budget  # a --time-budget: no trial starts that the time left cannot fit
        self.store = store
        self.backend = backend
        self.progress = progress
        self.study = open_study(config, store)
        self.space = registry.create("space", config.space, **config.space_config)
        self.strategy = registry.create("strategy", config.strategy, space=self.space, seed=config.seed,
                                        max_trials=config.trials, **config.strategy_config)
        self.me = new_runner_id()
        self._threads = getattr(backend, "threads", lambda: 0)()
        self._version = -1  # strategy-state version our in-memory strategy reflects (-1: not loaded)
        self._logical = 0  # trials in the store, a failure and its retries counted once
        self._inflight: dict[Future[Result], tuple[TrialRow, Proposal]] = {}
        self._submitted: dict[Future[Result], float] = {}  # when each was submitted (monotonic)
        self._inflight_keys: dict[str, int] = {}
        self._attempts: dict[int, int] = {}  # trial number -> 0 for a first try, 1 for its first retry...
        self._waiting_dups: dict[str, list[Proposal]] = {}  # keys we run, proposed again meanwhile
        self._foreign_waits: dict[str, list[Proposal]] = {}  # keys another runner runs, proposed to us
        self._completed_by_key: dict[str, Result] = {}  # key -> its finished, complete result
        self._finished = self._failed = self._retried = 0
        self._pruned_in_a_row = 0
        self._goals = goals_json(config)  # objectives and constraints for the workers (None: the plain objective)
        self._failures_in_a_row = 0
        self._last_error: str | None = None
        self._best: float | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._next_housekeeping = 0.0
        self._next_peek = 0.0
        self._peeked = -1
        self._order = TellOrder(config.reproducible) if config.reproducible else None
        self._saved_order: JSONDict | None = None  # the tell order saved with the strategy state

    # ---- helpers -------------------------------------------------------------------------
    def _spec(self, row: TrialRow) -> TrialSpec:
        workdir = str(Path(self.study.artifact_dir) / "trials" / str(row.number))
        c = self.config
        goals = None
        if self._goals is not None:  # the measurements cached for this key, so the worker need not repeat them
            goals = {**self._goals, "known": self.store.cached_costs(row.key) if self._goals["costs"] else []}
        return TrialSpec(study=c.study, number=row.number, arch=row.arch, seed=row.seed, space=c.space,
                         space_config=c.space_config, evaluator=c.evaluator,
                         evaluator_config=c.evaluator_config, budget=row.budget, objective=c.objective,
                         direction=c.direction, workdir=workdir, threads=self._threads,
                         deadline=self.budget.deadline() if self.budget is not None else None, goals=goals)

    def _proposal_of(self, row: TrialRow) -> Proposal:
        arch = self.space.from_json(row.arch)
        return Proposal(arch=arch, key=row.key, seed=row.seed, parent=row.parent, budget=row.budget,
                        info=row.info)

    def _seed_of(self, number: int) -> int:
        return derive_seed(self.config.seed, number)

    def _note_complete(self, key: str, result: Result) -> None:
        """Remember a result that answers the key's duplicates: a complete one, or a pruning (the study's
        constraints prune the same architecture again)."""
        if result.state == TrialState.COMPLETE and result.score is not None:
            self._best = result.score if self._best is None else max(self._best, result.score)
            self._completed_by_key[key] = result
        elif result.state == TrialState.PRUNED:
            self._completed_by_key[key] = result

    def _show(self) -> None:
        if self.progress is not None:
            best = self._best
            if best is not None and self.config.direction == "minimize":
                best = -best
            self.progress.update(done=self._finished, running=len(self._inflight), failed=self._failed,
                                 best=best)

    def _tell(self, proposal: Proposal, result: Result) -> None:
        self.strategy.tell(proposal, result)

    def _save_state(self, conn: Connection) -> None:
        """Inside the lock, after `_sync`: save the strategy; our copy is now the newest."""
        state = self.strategy.state_dict()
        if self._order is not None:
            state = {**state, ORDER_KEY: self._order.saved(self.space)}
        self._version = self.store.put_state(conn, self.study.id, state, self._version)
        self._peeked = self._version

    def _sync(self, conn: Connection) -> None:
        """Inside the study lock: reload the strategy and the counts if another runner saved since we did."""
        version = self.store.state_version(conn, self.study.id)
        if version == self._version:
            return
        state, version = self.store.state_at(conn, self.study.id)
        if state is not None:
            state = dict(state)
            self._saved_order = state.pop(ORDER_KEY, None)
            self.strategy.load_state_dict(state)
        counts = self.store.counts_at(conn, self.study.id)
        self._logical, self._finished, self._failed = counts.logical, counts.finished, counts.failed
        self._version = self._peeked = version

    def _submit(self, row: TrialRow, proposal: Proposal) -> None:
        with self._lock:
            self._inflight_keys[row.key] = row.number
        moved = self._foreign_waits.pop(row.key, None)
        if moved:
            self._waiting_dups.setdefault(row.key, []).extend(moved)
        future = self.backend.submit(self._spec(row))
        self._inflight[future] = (row, proposal)
        self._submitted[future] = time.monotonic()
        self._show()

    # ---- sharing: strategy versions, heartbeats, orphans, other runners' trials ---------------------
    def _peek(self) -> int:
        """The stored strategy version, read at most every `peek_s` (else the last value read). Only a hint:
        everything that writes checks the version again under the lock."""
        now = time.monotonic()
        if now >= self._next_peek:
            self._peeked = self.store.peek_state_version(self.study.id)
            self._next_peek = now + self.peek_s
        return self._peeked

    def _version_moved(self) -> bool:
        """Another runner saved the strategy (a result it told may let ours propose again)."""
        return self._peek() != self._version

    def _release(self) -> None:
        """On every way out of `run`: the trials still held go back to waiting, holder-less (a later run or
        another runner takes them). A store that cannot be reached now leaves them to the heartbeat rule."""
        try:
            released = self.store.release(self.study.id, self.me)
        except Exception as exc:  # never hide the error that ended the run
            log.warning("could not hand back this runner's unfinished trials: %s", exc)
            return
        if released:
            log.info("handed back %d unfinished trial(s); running the same command again resumes them", released)

    def _beat(self) -> None:
        """Heartbeat thread: keeps our running trials fresh even while an in-process trial holds the loop."""
        while not self._stop.wait(self.heartbeat_s):
            with self._lock:
                if not self._inflight_keys:
                    continue
            try:
                self.store.beat(self.study.id, self.me)
            except Exception as exc:  # a store hiccup must not kill the search; the next beat may work
                log.warning("heartbeat failed: %s", exc)

    def _claim(self, limit: int | None) -> int:
        """Take over trials whose runner died (same machine: at once; elsewhere: stale heartbeat)."""
        stale_before = _now() - timedelta(seconds=self.stale_after_s)
        rows = self.store.claim_orphans(self.study.id, self.me, stale_before, holder_is_dead, limit=limit)
        for row in rows:
            self._attempts[row.number] = 0 if row.retry_of is None else self.store.attempt_of(self.study.id,
                                                                                              row.number)
            self._submit(row, self._proposal_of(row))
        return len(rows)

    def _housekeeping(self, force: bool = False) -> bool:
        """Every heartbeat: take over orphaned trials, and answer proposals that waited on another runner's
        trial once it has finished. True when something happened that may let the strategy propose again."""
        now = time.monotonic()
        if not force and now < self._next_housekeeping:
            return False
        self._next_housekeeping = now + self.heartbeat_s
        changed = False
        slots = self.backend.capacity() - len(self._inflight)
        if slots > 0 and self._claim(limit=slots):
            changed = True
        if self._foreign_waits:
            with self.store.engine.connect() as conn:
                latest = self.store.latest_by_key(conn, self.study.id, list(self._foreign_waits))
            ready = {k: r for k, r in latest.items() if r.state.finished}
            if ready:
                with self.store.locked(self.study.id) as conn:
                    self._sync(conn)
                    for key, row in ready.items():
                        result = row.to_result()
                        self._note_complete(key, result)
                        for p in self._foreign_waits.pop(key, []):
                            self._tell(p, result)
                    self._save_state(conn)
                changed = True
        return changed
