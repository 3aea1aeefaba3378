"""The search loop: ask, record, submit, wait, record, tell, save. The only writer to the store.

Split by job: `study_setup` (the study's folder and row, before the loop), `holders` (runner ids, dead
holders), `runner_sharing` (the runner's state and its part in a shared study), `runner_ordered` (the
reproducible mode's loop). Their public names are importable from here as before.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import FIRST_COMPLETED, wait
from dataclasses import dataclass, field

from sqlalchemy.engine import Connection

from nasforge.core.errors import WorkerStartError
from nasforge.core.types import Proposal, Result, TrialState
from nasforge.execution.worker import STARTUP_METRIC
from nasforge.holders import _HOST, _LIVE, _PIDNS, holder_is_dead, new_runner_id
from nasforge.runner_ordered import OrderedRunner
from nasforge.runner_sharing import ProgressSink, RunnerBase
from nasforge.storage.sql import NewTrial, StudyInfo, TrialRow
from nasforge.study_setup import artifact_dir_for, goals_json, open_study, validate_names

__all__ = ["FINISHED", "_HOST", "_LIVE", "_PIDNS", "ProgressSink", "RunSummary", "Runner", "RunnerBase",
           "artifact_dir_for", "goals_json", "holder_is_dead", "new_runner_id", "open_study", "validate_names"]

log = logging.getLogger("nasforge.runner")

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAILED)


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


class Runner(OrderedRunner):
    """Drives one study to `config.trials` finished trials; safe to kill and run again, and safe to run
    several at once on one study (on PostgreSQL, or SQLite on one machine): they split its trials.

    Sharing works because the strategy lives in the store, not in a runner: every ask that makes trials and
    every tell happens inside the study lock, after reloading the strategy state if another runner saved
    a newer version. A runner that only answers duplicates from the store needs no lock at all.
    """

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
