"""The search loop: ask, record, submit, wait, record, tell, save. The only writer to the store."""

from __future__ import annotations

import logging
import time
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from nasforge.config import SearchConfig
from nasforge.core import registry
from nasforge.core.errors import ConfigError, StorageError
from nasforge.core.protocols import Backend
from nasforge.core.seeding import derive_seed
from nasforge.core.types import Proposal, Result, TrialSpec, TrialState, canonical_json
from nasforge.storage.sql import NewTrial, Store, StudyInfo, TrialRow, user_data_dir

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


def artifact_dir_for(config: SearchConfig, store: Store) -> Path:
    """The study folder: logs and checkpoints. Beside a SQLite file, else under the user data dir."""
    if config.root:
        return Path(config.root).expanduser().resolve() / config.study
    if store.is_sqlite and store.engine.url.database not in (None, "", ":memory:"):
        db = Path(str(store.engine.url.database)).expanduser().resolve()
        return db.parent / f"{db.stem}-studies" / config.study
    return user_data_dir() / "studies" / config.study


def open_study(config: SearchConfig, store: Store) -> StudyInfo:
    """Create the study, or check that an existing one has the same defining settings."""
    existing = store.get_study(config.study)
    wanted = config.identity()
    if existing is not None:
        stored = {k: existing.config.get(k) for k in wanted}
        diffs = [k for k in wanted if canonical_json(stored[k]) != canonical_json(wanted[k])]
        if diffs:
            k = diffs[0]
            raise StorageError(
                f"study {config.study!r} already exists with different settings ({k}: stored "
                f"{_short(stored[k])}, given {_short(wanted[k])}); choose another --study name"
            )
        return existing
    folder = artifact_dir_for(config, store)
    return store.create_study(config.study, owner=config.owner, config=wanted, objective=config.objective,
                              direction=config.direction, artifact_dir=str(folder))


def _short(value: Any) -> str:
    text = canonical_json(value)
    return text if len(text) <= 80 else text[:77] + "..."


class Runner:
    """Drives one study to `config.trials` finished trials; safe to kill and run again."""

    max_consecutive_duplicates = 2000
    max_consecutive_failures = 10  # a search whose every trial fails is broken; say so instead of going on

    def __init__(self, config: SearchConfig, store: Store, backend: Backend,
                 progress: ProgressSink | None = None) -> None:
        self.config = config
        self.store = store
        self.backend = backend
        self.progress = progress
        self.study = open_study(config, store)
        self.space = registry.create("space", config.space, **config.space_config)
        self.strategy = registry.create("strategy", config.strategy, space=self.space, seed=config.seed,
                                        max_trials=config.trials, **config.strategy_config)
        state = store.load_state(self.study.id)
        if state is not None:
            self.strategy.load_state_dict(state)
        self._threads = getattr(backend, "threads", lambda: 0)()
        self._inflight: dict[Future[Result], tuple[TrialRow, Proposal]] = {}
        self._inflight_keys: dict[str, int] = {}
        self._waiting_dups: dict[str, list[Proposal]] = {}
        self._completed_by_key: dict[str, Result] = {}  # key -> its finished, complete result
        self._finished = self._failed = 0
        self._failures_in_a_row = 0
        self._last_error: str | None = None
        self._best: float | None = None

    # ---- helpers -------------------------------------------------------------------------
    def _spec(self, row: TrialRow) -> TrialSpec:
        workdir = str(Path(self.study.artifact_dir) / "trials" / str(row.number))
        c = self.config
        return TrialSpec(study=c.study, number=row.number, arch=row.arch, seed=row.seed, space=c.space,
                         space_config=c.space_config, evaluator=c.evaluator,
                         evaluator_config=c.evaluator_config, budget=row.budget, objective=c.objective,
                         direction=c.direction, workdir=workdir, threads=self._threads)

    def _proposal_of(self, row: TrialRow) -> Proposal:
        arch = self.space.from_json(row.arch)
        return Proposal(arch=arch, key=row.key, seed=row.seed, parent=row.parent, budget=row.budget,
                        info=row.info)

    def _seed_of(self, number: int) -> int:
        return derive_seed(self.config.seed, number)

    def _note(self, row: TrialRow | None, result: Result) -> None:
        if result.state in FINISHED:
            self._finished += 1
        if result.state == TrialState.FAILED:
            self._failed += 1
        if result.state == TrialState.COMPLETE and result.score is not None:
            self._best = result.score if self._best is None else max(self._best, result.score)
            if row is not None:
                self._completed_by_key[row.key] = result
        self._show()

    def _show(self) -> None:
        if self.progress is not None:
            best = self._best
            if best is not None and self.config.direction == "minimize":
                best = -best
            self.progress.update(done=self._finished, running=len(self._inflight), failed=self._failed,
                                 best=best)

    def _tell(self, proposal: Proposal, result: Result) -> None:
        self.strategy.tell(proposal, result)

    # ---- the loop ------------------------------------------------------------------------
    def run(self) -> RunSummary:
        start = time.perf_counter()
        sid = self.study.id
        rows = self.store.trials(sid)
        for row in rows:
            if row.state in FINISHED:
                self._note(None, row.to_result())
                if row.state == TrialState.COMPLETE and row.score is not None:
                    self._completed_by_key[row.key] = row.to_result()
        stale = [r for r in rows if r.state in (TrialState.RUNNING, TrialState.WAITING)]
        if stale:
            log.info("re-queuing %d trial(s) left unfinished by an earlier run", len(stale))
        for row in stale:
            self._submit(row, self._proposal_of(row))
        reused = 0
        duplicates_in_a_row = 0
        new_numbers: list[int] = []
        reason = ""
        try:
            while True:
                target = self.config.trials
                room = target - self._finished - len(self._inflight)
                slots = self.backend.capacity() - len(self._inflight)
                asked_any = False
                if room > 0 and slots > 0 and not self.strategy.is_finished():
                    proposals = self.strategy.ask(min(room, slots))
                    asked_any = bool(proposals)
                    fresh: list[Proposal] = []
                    for p in proposals:
                        done = self._completed_by_key.get(p.key)
                        if done is not None:
                            self._tell(p, done)
                            reused += 1
                            duplicates_in_a_row += 1
                        elif p.key in self._inflight_keys or any(f.key == p.key for f in fresh):
                            self._waiting_dups.setdefault(p.key, []).append(p)
                            reused += 1
                            duplicates_in_a_row += 1
                        else:
                            fresh.append(p)
                            duplicates_in_a_row = 0
                    if fresh:
                        new = [NewTrial(key=p.key, arch=self.space.to_json(p.arch), parent=p.parent,
                                        budget=p.budget, info=p.info) for p in fresh]
                        created = self.store.add_trials(sid, new, self.strategy.state_dict(), self._seed_of)
                        for row, p in zip(created, fresh):
                            new_numbers.append(row.number)
                            self._submit(row, p)
                    # Duplicates alone need no save: after a crash the restored strategy re-proposes
                    # them, and the store answers them again, identically.
                    if duplicates_in_a_row >= self.max_consecutive_duplicates:
                        reason = (f"stopped: the strategy proposed {duplicates_in_a_row} already-evaluated "
                                  "architectures in a row (the space may be exhausted)")
                        break
                    if fresh or (proposals and not self._inflight):
                        continue  # ask again for any slot still free
                if self._failures_in_a_row >= self.max_consecutive_failures:
                    reason = (f"stopped: {self._failures_in_a_row} trials failed in a row; the last error was: "
                              f"{self._last_error}")
                    break
                if not self._inflight:
                    if room <= 0:
                        break
                    if self.strategy.is_finished():
                        reason = "stopped: the strategy has nothing more to propose"
                        break
                    if not asked_any:
                        reason = "stopped: the strategy proposed nothing while no trial was running"
                        break
                    continue
                self._wait_one()
        except KeyboardInterrupt:
            reason = "interrupted: run the same command again to resume"
            raise
        finally:
            if reason.startswith("interrupted") or self._inflight:
                self.backend.shutdown()
            if self.progress is not None:
                self.progress.close()
        complete = self.store.count(sid, [TrialState.COMPLETE])
        failed = self.store.count(sid, [TrialState.FAILED])
        return RunSummary(study=self.study, finished=self._finished, complete=complete, failed=failed,
                          reused=reused, elapsed=time.perf_counter() - start, stopped_reason=reason,
                          new_trials=new_numbers,
                          broken=self._failures_in_a_row >= self.max_consecutive_failures)

    def _submit(self, row: TrialRow, proposal: Proposal) -> None:
        future = self.backend.submit(self._spec(row))
        self._inflight[future] = (row, proposal)
        self._inflight_keys[row.key] = row.number
        self._show()

    def _wait_one(self) -> None:
        done, _ = wait(list(self._inflight), timeout=None, return_when=FIRST_COMPLETED)
        for future in done:
            row, proposal = self._inflight.pop(future)
            self._inflight_keys.pop(row.key, None)
            try:
                result = future.result()
            except Exception as exc:  # the worker process itself died
                result = Result(TrialState.FAILED, error=f"worker failed: {type(exc).__name__}: {exc}")
            result.trial_number = row.number
            self._tell(proposal, result)
            for dup in self._waiting_dups.pop(row.key, []):
                self._tell(dup, result)
            self.store.finish_trial(self.study.id, row.number, result, self.strategy.state_dict())
            if result.state == TrialState.FAILED:
                self._failures_in_a_row += 1
                self._last_error = result.error
                log.warning("trial %d failed: %s", row.number, result.error)
            else:
                self._failures_in_a_row = 0
                log.info("trial %d %s: %s=%s", row.number, result.state.value, self.config.objective,
                         result.metrics.get(self.config.objective))
            self._note(row, result)


def validate_names(config: SearchConfig) -> None:
    for kind, name in (("space", config.space), ("strategy", config.strategy), ("evaluator", config.evaluator)):
        if name not in registry.available(kind):
            raise ConfigError(f"unknown {kind} {name!r}; choose one of: {', '.join(registry.available(kind))}")
