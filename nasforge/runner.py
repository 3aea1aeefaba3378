"""The search loop: ask, record, submit, wait, record, tell, save. The only writer to the store."""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy.engine import Connection

from nasforge.budget import TimeBudget
from nasforge.config import SearchConfig
from nasforge.core import registry
from nasforge.core.errors import ConfigError, StorageError, WorkerStartError
from nasforge.core.protocols import Backend
from nasforge.core.seeding import derive_seed
from nasforge.core.types import JSONDict, Proposal, Result, TrialSpec, TrialState, canonical_json
from nasforge.execution.worker import STARTUP_METRIC
from nasforge.ordered import ORDER_KEY, TellOrder
from nasforge.storage.sql import NewTrial, Store, StudyInfo, TrialRow, _now, user_data_dir

log = logging.getLogger("nasforge.runner")

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAILED)


class ProgressSink(Protocol):
    def update(self, *, done: int, running: int, failed: int, best: float | None) -> None: ...

    def close(self) -> None: ...


@dataclass
class RunSummary:
    study: StudyInfo
    finished: int
    complete: int
    failed: int
    reused: int
    elapsed: float
    stopped_reason: str = ""
    new_trials: list[int] = field(default_factory=list)
    broken: bool = False  # stopped because trials kept failing
    retried: int = 0  # failed attempts this run replaced by a retry
    pruned: int = 0  # trials a constraint ruled out before training (they do not count towards --trials)
    final: int | None = None  # the final ensemble trial, when one was stored (nasforge.ensemble.final)


def artifact_dir_for(config: SearchConfig, store: Store) -> Path:
    """The study folder: logs and checkpoints. Beside a SQLite file, else under the user data dir."""
    if config.root:
        root = Path(config.root).expanduser().resolve()
    elif store.is_sqlite and store.engine.url.database not in (None, "", ":memory:"):
        db = Path(str(store.engine.url.database)).expanduser().resolve()
        root = db.parent / f"{db.stem}-studies"
    else:
        root = user_data_dir() / "studies"
    folder = (root / config.study).resolve()
    if folder.parent != root.resolve():  # a name that leaves its folder (or a link out of it): never written
        raise ConfigError(f"--study {config.study!r}: its folder {folder} would not be inside {root}")
    return folder


def open_study(config: SearchConfig, store: Store) -> StudyInfo:
    """Create the study, or check that an existing one has the same defining settings."""
    existing = store.get_study(config.study)
    wanted = config.identity()
    if existing is None:  # another runner may create it first: then its row comes back and is checked
        folder = artifact_dir_for(config, store)
        existing = store.create_study(config.study, owner=config.owner, config=wanted, objective=config.objective,
                                      direction=config.direction, artifact_dir=str(folder))
    stored = {k: existing.config.get(k) for k in wanted}
    diffs = [k for k in wanted if canonical_json(stored[k]) != canonical_json(wanted[k])]
    if diffs:
        k = diffs[0]
        raise StorageError(
            f"study {config.study!r} already exists with different settings ({k}: stored "
            f"{_short(stored[k])}, given {_short(wanted[k])}); choose another --study name"
        )
    return existing


def _short(value: Any) -> str:
    text = canonical_json(value)
    return text if len(text) <= 80 else text[:77] + "..."


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


class Runner:
    """Drives one study to `config.trials` finished trials; safe to kill and run again, and safe to run
    several at once on one study (on PostgreSQL, or SQLite on one machine): they split its trials.

    Sharing works because the strategy lives in the store, not in a runner: every ask that makes trials and
    every tell happens inside the study lock, after reloading the strategy state if another runner saved
    a newer version. A runner that only answers duplicates from the store needs no lock at all.
    """

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

    # ---- the loop ------------------------------------------------------------------------
    def run(self) -> RunSummary:
        start = time.perf_counter()
        sid = self.study.id
        _LIVE.add(self.me)
        for row in self.store.trials(sid, [TrialState.COMPLETE, TrialState.PRUNED]):
            self._note_complete(row.key, row.to_result())
        with self.store.locked(sid) as conn:
            self._sync(conn)
        if self._order is not None:
            self._restore_order()
        beats = threading.Thread(target=self._beat, name="nasforge-heartbeat", daemon=True)
        beats.start()
        claimed = self._claim(limit=None)
        if claimed:
            log.info("re-queuing %d trial(s) left unfinished by a runner that is gone", claimed)
        self._show()
        reused = 0
        new_numbers: list[int] = []
        reason = ""
        try:
            if self._order is not None:
                reason, reused = self._ordered_loop(new_numbers)
            else:
                reason, reused = self._free_loop(new_numbers)
        except KeyboardInterrupt:
            reason = "interrupted: run the same command again to resume"
            raise
        finally:
            self._stop.set()
            if reason.startswith("interrupted") or self._inflight:
                self.backend.shutdown()
            beats.join(timeout=5)
            self._release()
            _LIVE.discard(self.me)
            if self.progress is not None:
                self.progress.close()
        counts = self.store.counts(sid)
        complete = self.store.count(sid, [TrialState.COMPLETE])
        return RunSummary(study=self.study, finished=counts.finished, complete=complete, failed=counts.failed,
                          reused=reused, elapsed=time.perf_counter() - start, stopped_reason=reason,
                          new_trials=new_numbers, retried=self._retried, pruned=counts.pruned,
                          broken=self._failures_in_a_row >= self.max_consecutive_failures)

    def _free_loop(self, new_numbers: list[int]) -> tuple[str, int]:
        """Results told as they come: the default, and the fastest with several workers. Returns (why it
        stopped, duplicates answered)."""
        reused = 0
        duplicates_in_a_row = 0
        reason = ""
        ask_again = True
        while True:
            slots = self.backend.capacity() - len(self._inflight)
            asked_any = False
            if slots > 0 and ask_again:
                proposals, fresh, dups = self._ask(slots)
                asked_any = bool(proposals)
                ask_again = asked_any
                reused += dups
                duplicates_in_a_row = 0 if fresh else duplicates_in_a_row + dups
                new_numbers += fresh
                if duplicates_in_a_row >= self.max_consecutive_duplicates:
                    reason = (f"stopped: the strategy proposed {duplicates_in_a_row} already-evaluated "
                              "architectures in a row (the space may be exhausted)")
                    return reason, reused
                if fresh or (proposals and not self._inflight):
                    continue  # ask again for any slot still free
            if self._pruned_in_a_row >= self.max_consecutive_pruned:
                reason = (f"stopped: the last {self._pruned_in_a_row} architectures proposed all broke the "
                          "constraints (they may be too tight for this space)")
                return reason, reused
            if self._failures_in_a_row >= self.max_consecutive_failures:
                reason = (f"stopped: {self._failures_in_a_row} trials failed in a row; the last error was: "
                          f"{self._last_error}")
                return reason, reused
            if not self._inflight:
                counts = self.store.counts(self.study.id)
                if counts.running or self._foreign_waits:
                    # Other runners hold trials of this study: wait for them (and take over any whose
                    # runner dies), so that the study is complete when any runner returns.
                    self._stop.wait(self.poll_s)
                    ask_again = self._housekeeping(force=True) or ask_again or self._version_moved()
                    continue
                if counts.logical >= self.config.trials:
                    return reason, reused
                if self.budget is not None and not self.budget.can_start():
                    reason = f"stopped: the time budget ({self.budget.describe()}) fits no further trial"
                    return reason, reused
                if self.strategy.is_finished():
                    reason = "stopped: the strategy has nothing more to propose"
                    return reason, reused
                if not asked_any:
                    if self._version_moved():
                        ask_again = True
                        continue
                    reason = "stopped: the strategy proposed nothing while no trial was running"
                    return reason, reused
                continue
            got = self._wait_one()
            changed = self._housekeeping()
            if got or changed or (not ask_again and self._version_moved()):
                ask_again = True

    def _ordered_loop(self, new_numbers: list[int]) -> tuple[str, int]:
        """Reproducible mode (nasforge.ordered): ask one proposal at a time while fewer than `ahead` trials are
        untold, run them in number order as workers free up, tell results in trial order."""
        assert self._order is not None
        order = self._order
        reused = 0
        duplicates_in_a_row = 0
        while True:
            fresh, dups = self._ask_ordered()
            while order.has_ready():  # one result, then the window filled again: the same order for any timing
                self._tell_next()
                more, more_dups = self._ask_ordered()
                fresh, dups = fresh + more, dups + more_dups
            new_numbers += fresh
            reused += dups
            duplicates_in_a_row = 0 if fresh else duplicates_in_a_row + dups
            if duplicates_in_a_row >= self.max_consecutive_duplicates:
                return (f"stopped: the strategy proposed {duplicates_in_a_row} already-evaluated architectures "
                        "in a row (the space may be exhausted)"), reused
            while order.queue and self.backend.capacity() > len(self._inflight):
                row, proposal = order.queue.pop(0)
                self._submit(row, proposal)
            if self._pruned_in_a_row >= self.max_consecutive_pruned:
                return (f"stopped: the last {self._pruned_in_a_row} architectures proposed all broke the "
                        "constraints (they may be too tight for this space)"), reused
            if self._failures_in_a_row >= self.max_consecutive_failures:
                return (f"stopped: {self._failures_in_a_row} trials failed in a row; the last error was: "
                        f"{self._last_error}"), reused
            if not self._inflight:
                if order.queue or (dups and not fresh):
                    continue
                if self._logical >= self.config.trials:
                    return "", reused
                if self.budget is not None and not self.budget.can_start():
                    return f"stopped: the time budget ({self.budget.describe()}) fits no further trial", reused
                if self.strategy.is_finished():
                    return "stopped: the strategy has nothing more to propose", reused
                return "stopped: the strategy proposed nothing while no trial was running", reused
            self._wait_one()
            self._housekeeping()

    def _ask_ordered(self) -> tuple[list[int], int]:
        """Ask one at a time while the window has room; each fresh proposal becomes a trial (saved with the
        strategy state), a duplicate of a told result is told it, one of an untold trial waits for it."""
        assert self._order is not None
        order = self._order
        fresh: list[int] = []
        dups = 0
        while (order.room() and self._logical < self.config.trials and not self.strategy.is_finished()
               and (self.budget is None or self.budget.can_start()) and dups < self.max_consecutive_duplicates):
            asked = self.strategy.ask(1)
            if not asked:
                break
            proposal = asked[0]
            done = self._completed_by_key.get(proposal.key)
            if done is not None:
                self._tell(proposal, done)
                dups += 1
                continue
            if proposal.key in order.pending_keys:
                order.wait(proposal)
                dups += 1
                continue
            with self.store.locked(self.study.id) as conn:
                row = self.store.insert_trials(conn, self.study.id, [NewTrial(
                    key=proposal.key, arch=self.space.to_json(proposal.arch), parent=proposal.parent,
                    budget=proposal.budget, info=proposal.info)], self._seed_of, self.me)[0]
                order.created(row, proposal)
                self._save_state(conn)
            self._attempts[row.number] = 0
            self._logical += 1
            fresh.append(row.number)
        return fresh, dups

    def _tell_next(self) -> None:
        """Tell the next result in trial order (and the duplicates that waited on it); save the strategy."""
        assert self._order is not None
        proposal, result, waits = self._order.pop_ready()
        with self.store.locked(self.study.id) as conn:
            self._tell(proposal, result)
            self._note_complete(proposal.key, result)
            for dup in waits:
                self._tell(dup, result)
            self._save_state(conn)
        if result.state == TrialState.PRUNED:
            self._logical -= 1

    def _restore_order(self) -> None:
        """After a restart: which trials are told, which results wait their turn (nasforge.ordered)."""
        assert self._order is not None
        self._order.restore(self._saved_order, self.store.trials(self.study.id), self.space, self._proposal_of)
        for key in self._order.pending_keys:  # known to the store, not yet to the strategy
            self._completed_by_key.pop(key, None)

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

    def _classify(self, proposals: list[Proposal]) -> tuple[list[Proposal], list[Proposal], int]:
        """Split proposals into fresh ones and duplicates; complete duplicates are told at once.
        Returns (fresh, duplicates of trials in flight, number of duplicates)."""
        fresh: list[Proposal] = []
        waits: list[Proposal] = []
        dups = 0
        for p in proposals:
            done = self._completed_by_key.get(p.key)
            if done is not None:
                self._tell(p, done)
                dups += 1
            elif p.key in self._inflight_keys or any(f.key == p.key for f in fresh):
                waits.append(p)
                dups += 1
            else:
                fresh.append(p)
        return fresh, waits, dups

    def _ask(self, slots: int) -> tuple[list[Proposal], list[int], int]:
        """Ask for up to `slots` proposals and make trials of the fresh ones. Returns (proposals, new trial
        numbers, duplicates answered). Optimistic when no other runner saved since we did: ask without the
        lock, and take it only to insert; if someone saved meanwhile, forget this ask and redo it locked."""
        sid = self.study.id
        if self._peek() == self._version:
            proposals, fresh, waits, dups = self._ask_in_memory(slots)
            if not fresh:
                self._register_waits(waits)
                return proposals, [], dups
            with self.store.locked(sid) as conn:
                if self.store.state_version(conn, sid) == self._version:
                    rows, told = self._insert(conn, fresh, waits)
                    created: list[tuple[TrialRow, Proposal]] | None = rows
                else:
                    created, told = None, 0
            if created is not None:
                return proposals, self._submit_new(created), dups + told
            # Another runner saved while we asked: its state wins and our proposals were never stored.
        with self.store.locked(sid) as conn:
            self._sync(conn)
            proposals, fresh, waits, dups = self._ask_in_memory(slots)
            rows, told = self._insert(conn, fresh, waits) if fresh else ([], 0)
            if not fresh:
                self._register_waits(waits)
        return proposals, self._submit_new(rows), dups + told

    def _ask_in_memory(self, slots: int) -> tuple[list[Proposal], list[Proposal], list[Proposal], int]:
        room = self.config.trials - self._logical
        n = min(room, slots)
        if n <= 0 or self.strategy.is_finished() or (self.budget is not None and not self.budget.can_start()):
            return [], [], [], 0
        proposals = self.strategy.ask(n)
        fresh, waits, dups = self._classify(proposals)
        return proposals, fresh, waits, dups

    def _register_waits(self, waits: list[Proposal]) -> None:
        for p in waits:
            self._waiting_dups.setdefault(p.key, []).append(p)

    def _insert(self, conn: Connection, fresh: list[Proposal],
                waits: list[Proposal]) -> tuple[list[tuple[TrialRow, Proposal]], int]:
        """Inside the lock: check fresh keys against the store (another runner may have them), insert the
        rest as trials held by us and save the strategy state, in one transaction."""
        sid = self.study.id
        known = self.store.latest_by_key(conn, sid, [p.key for p in fresh])
        new: list[Proposal] = []
        told = 0
        for p in fresh:
            row = known.get(p.key)
            if row is None or row.state == TrialState.FAILED:
                new.append(p)
            elif row.state in (TrialState.COMPLETE, TrialState.PRUNED):
                result = row.to_result()
                self._note_complete(p.key, result)
                self._tell(p, result)
                told += 1
            else:
                self._foreign_waits.setdefault(p.key, []).append(p)
                told += 1
        rows = self.store.insert_trials(conn, sid, [
            NewTrial(key=p.key, arch=self.space.to_json(p.arch), parent=p.parent, budget=p.budget, info=p.info)
            for p in new], self._seed_of, self.me)
        self._save_state(conn)
        self._logical += len(rows)
        self._register_waits(waits)
        return list(zip(rows, new)), told

    def _submit_new(self, created: list[tuple[TrialRow, Proposal]]) -> list[int]:
        for row, p in created:
            self._attempts[row.number] = 0
            self._submit(row, p)
        return [row.number for row, _ in created]

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

    # ---- results -------------------------------------------------------------------------
    def _wait_one(self) -> bool:
        """Wait (at most a heartbeat) for a trial to finish and record it; True when one did."""
        done, _ = wait(list(self._inflight), timeout=self.heartbeat_s, return_when=FIRST_COMPLETED)
        for future in done:
            row, proposal = self._inflight.pop(future)
            submitted = self._submitted.pop(future, None)
            try:
                result = future.result()
            except WorkerStartError:  # no worker can start: every later trial would fail the same way
                raise
            except Exception as exc:  # the worker process itself died
                result = Result(TrialState.FAILED, error=f"crash: {type(exc).__name__}: {exc}")
            if self.budget is not None and submitted is not None and result.state != TrialState.PRUNED:
                # a pruned trial says nothing of trial times; a worker's start-up is paid once, not per trial
                self.budget.record(time.monotonic() - submitted, startup=result.metrics.get(STARTUP_METRIC, 0.0))
            result.trial_number = row.number
            self._record(row, proposal, result)
        return bool(done)

    def _record(self, row: TrialRow, proposal: Proposal, result: Result) -> None:
        """Store a result. A failure with retries left is stored as failed and replaced, in the same
        transaction, by a retry: same architecture, next free number, that number's seed; the strategy
        hears only the final outcome. Exact on resume, since both rows appear together or not at all."""
        sid = self.study.id
        attempt = self._attempts.pop(row.number, 0)
        failed = result.state == TrialState.FAILED
        retry = failed and attempt < self.config.retries and (self.budget is None or self.budget.can_start())
        retry_row: TrialRow | None = None
        with self.store.locked(sid) as conn:
            self._sync(conn)
            held = self.store.record_result(conn, sid, row.number, result, runner=self.me)
            if held and result.costs:
                self.store.put_costs(conn, row.key, str(result.costs["context"]), dict(result.costs["values"]))
            if held and retry:
                retry_row = self.store.insert_trials(conn, sid, [NewTrial(
                    key=row.key, arch=row.arch, parent=row.parent, budget=row.budget, info=row.info,
                    retry_of=row.number)], self._seed_of, self.me)[0]
                if self._order is not None:
                    self._order.retried(row.number, retry_row.number)
            elif held and self._order is not None:  # told in trial order by the loop (_ordered_loop)
                self._order.arrive(row.number, proposal, result)
            elif held:
                self._tell(proposal, result)
                for dup in self._waiting_dups.get(row.key, []):
                    self._tell(dup, result)
                self._save_state(conn)
        with self._lock:
            self._inflight_keys.pop(row.key, None)
        if not held:
            log.warning("trial %d was taken over by another runner (its heartbeat went stale); result dropped",
                        row.number)
            moved = self._waiting_dups.pop(row.key, [])
            if moved:
                self._foreign_waits.setdefault(row.key, []).extend(moved)
            return
        if result.state == TrialState.PRUNED:  # never trained: not one of the --trials wanted
            if self._order is None:  # reproducible mode counts it when it is told
                self._logical -= 1
            self._pruned_in_a_row += 1
            self._waiting_dups.pop(row.key, None)
            if self._order is None:  # reproducible mode notes it when it is told
                self._note_complete(row.key, result)
            log.info("trial %d pruned: %s", row.number, result.error)
            self._show()
            return
        self._pruned_in_a_row = 0
        if failed:
            self._failures_in_a_row += 1
            self._last_error = result.error
        else:
            self._failures_in_a_row = 0
        if retry_row is not None:
            self._retried += 1
            log.warning("trial %d failed (attempt %d of %d), retrying as trial %d: %s", row.number, attempt + 1,
                        self.config.retries + 1, retry_row.number, result.error)
            self._attempts[retry_row.number] = attempt + 1
            self._submit(retry_row, proposal)
            return
        self._waiting_dups.pop(row.key, None)
        self._finished += 1
        if failed:
            self._failed += 1
            log.warning("trial %d failed: %s", row.number, result.error)
        else:
            log.info("trial %d %s: %s=%s", row.number, result.state.value, self.config.objective,
                     result.metrics.get(self.config.objective))
        if self._order is None:
            self._note_complete(row.key, result)
        self._show()

    # ---- sharing: heartbeats, orphans, other runners' trials -----------------------------------
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


def goals_json(config: SearchConfig) -> dict[str, Any] | None:
    """The study's objectives and constraints as the workers get them (None when it has neither)."""
    from nasforge.objectives.spec import study_goals

    goals = study_goals(config.identity())
    if not goals.active:
        return None
    return {**goals.to_json(), "costs": goals.costs_needed()}


def validate_names(config: SearchConfig) -> None:
    strategy_kind = "oneshot" if config.strategy in registry.ONESHOT else "strategy"
    for kind, name in (("space", config.space), (strategy_kind, config.strategy), ("evaluator", config.evaluator)):
        registry.resolve(kind, name)  # one line when a stored plugin is no longer installed
