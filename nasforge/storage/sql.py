"""The store: the runner is its only writer; readers are the CLI, the API and reports."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, cast

from sqlalchemy import Table, create_engine, delete, event, func, inspect, or_, select, update
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, IntegrityError, NoSuchModuleError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from nasforge.core.errors import StorageError
from nasforge.core.types import JSONDict, Result, TrialState
from nasforge.storage.location import _read_only_mode, default_storage_url, user_data_dir
from nasforge.storage.records import NewTrial, StudyCounts, StudyInfo, TrialRow, _row, _study
from nasforge.storage.schema import (
    ADDED_COLUMNS,
    Base,
    CostModel,
    IntermediateModel,
    StrategyStateModel,
    StudyModel,
    TrialModel,
)

UNFINISHED = (TrialState.RUNNING.value, TrialState.WAITING.value)


def _now() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


class Store:
    """SQLAlchemy store. On SQLite: WAL, and `BEGIN IMMEDIATE` so read-then-write is atomic."""

    def __init__(self, url: str | None = None, *, create: bool = True) -> None:
        """`create=False` only reads what exists: a SQLite file that this process may not write (a read-only
        file, folder or filesystem) is then opened read-only, without its journal files."""
        self.url = url or default_storage_url()
        self.read_only = ""  # "", or the sqlite URI mode a store opened only for reading uses
        try:
            parsed = make_url(self.url)
        except ArgumentError as exc:
            raise StorageError(f"storage URL {self.url!r} is not a valid SQLAlchemy URL") from exc
        self.is_sqlite = parsed.get_backend_name() == "sqlite"
        if self.is_sqlite:
            db = parsed.database
            if db and db != ":memory:":
                path = Path(db).expanduser()
                if not path.parent.exists():
                    if not create:
                        raise StorageError(f"storage {self.url!r}: no database at {path}")
                    try:
                        path.parent.mkdir(parents=True, exist_ok=True)
                    except OSError as exc:
                        raise StorageError(f"storage {self.url!r}: cannot create {path.parent}: {exc}") from exc
                elif not create and not path.exists():
                    raise StorageError(f"storage {self.url!r}: no database at {path}")
                if path.is_dir():
                    raise StorageError(f"storage {self.url!r}: {path} is a directory, not a database file")
                if not create and path.exists():
                    self.read_only = _read_only_mode(path)
        try:
            self.engine = self._make_engine(self.url)
            if not self.read_only:
                Base.metadata.create_all(self.engine)
                self._upgrade()
        except (NoSuchModuleError, ModuleNotFoundError) as exc:
            raise StorageError(f"storage URL {self.url!r}: database driver not installed ({exc})") from exc
        except (SQLAlchemyError, OSError) as exc:
            reason = str(getattr(exc, "orig", None) or exc).splitlines()[0]
            raise StorageError(f"storage URL {self.url!r} cannot be opened: {reason}") from exc
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    def _make_engine(self, url: str) -> Engine:
        if not self.is_sqlite:
            return create_engine(url, pool_pre_ping=True)
        if self.read_only:
            path = Path(str(make_url(url).database)).expanduser().resolve()
            uri = f"{path.as_uri()}?{self.read_only}"
            return create_engine("sqlite://", creator=lambda: sqlite3.connect(uri, uri=True, timeout=60,
                                                                              check_same_thread=False))
        engine = create_engine(url, connect_args={"timeout": 60})

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.isolation_level = None  # let SQLAlchemy's "begin" hook issue BEGIN IMMEDIATE
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        @event.listens_for(engine, "begin")
        def _on_begin(conn: Any) -> None:
            conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine

    def _upgrade(self) -> None:
        """Add the columns newer releases use to a database an older release created."""
        for table, column, sqltype in ADDED_COLUMNS:
            if column in {c["name"] for c in inspect(self.engine).get_columns(table)}:
                continue
            try:
                with self.engine.begin() as conn:
                    conn.exec_driver_sql(f"ALTER TABLE {table} ADD COLUMN {column} {sqltype}")
            except SQLAlchemyError:
                if column not in {c["name"] for c in inspect(self.engine).get_columns(table)}:
                    raise  # not another process adding it at the same moment

    def session(self) -> Session:
        return self._sessions()

    def dispose(self) -> None:
        self.engine.dispose()

    # ---- studies -------------------------------------------------------------------------
    def get_study(self, name: str) -> StudyInfo | None:
        with self.session() as s:
            m = s.scalar(select(StudyModel).where(StudyModel.name == name))
            return _study(m) if m else None

    def require_study(self, name: str) -> StudyInfo:
        info = self.get_study(name)
        if info is None:
            names = [str(st["name"]) for st in self.list_studies()]
            hint = f"; studies here: {', '.join(names[:10])}" if names else "; this storage has no studies"
            raise StorageError(f"no study named {name!r} in {self.url}{hint}")
        return info

    def create_study(self, name: str, *, owner: str, config: JSONDict, objective: str, direction: str,
                     artifact_dir: str) -> StudyInfo:
        try:
            with self.session() as s, s.begin():
                existing = s.scalar(select(StudyModel).where(StudyModel.name == name))
                if existing is not None:
                    return _study(existing)
                m = StudyModel(name=name, owner=owner, config=config, objective=objective, direction=direction,
                               artifact_dir=artifact_dir, created=_now())
                s.add(m)
                s.flush()
                return _study(m)
        except IntegrityError:
            # several runners started at once on a new study: one insert wins, the others use its row
            found = self.get_study(name)
            if found is None:
                raise
            return found

    def set_baseline(self, study_id: int, baseline: JSONDict) -> None:
        """Store the baseline's metrics with the study (replacing any earlier one)."""
        with self.engine.begin() as conn:
            conn.execute(update(StudyModel).where(StudyModel.id == study_id).values(baseline=baseline))

    def list_studies(self) -> list[dict[str, Any]]:
        with self.session() as s:
            studies = s.scalars(select(StudyModel).order_by(StudyModel.id)).all()
            counts = dict(
                s.execute(
                    select(TrialModel.study_id, func.count()).where(TrialModel.state == "complete")
                    .group_by(TrialModel.study_id)
                ).all()
            )
            best_rows = s.execute(
                select(TrialModel.study_id, func.max(TrialModel.score)).group_by(TrialModel.study_id)
            ).all()
            best = {sid: val for sid, val in best_rows}
            out = []
            for m in studies:
                b = best.get(m.id)
                if b is not None and m.direction == "minimize":
                    b = -b
                out.append({"name": m.name, "owner": m.owner, "space": m.config.get("space"),
                            "strategy": m.config.get("strategy"), "complete": counts.get(m.id, 0),
                            "objective": m.objective, "best": b, "created": m.created})
            return out

    # ---- trials --------------------------------------------------------------------------
    @contextmanager
    def locked(self, study_id: int) -> Iterator[Connection]:
        """A transaction holding the study's lock: SQLite's write lock (BEGIN IMMEDIATE), elsewhere the
        study row (SELECT ... FOR UPDATE). Runners sharing a study read and write its strategy state,
        trial numbers and counts only inside one, so they never interleave."""
        with self.engine.begin() as conn:
            if not self.is_sqlite:
                conn.execute(select(StudyModel.id).where(StudyModel.id == study_id).with_for_update())
            yield conn

    def add_trials(self, study_id: int, new: Sequence[NewTrial], state: JSONDict | None,
                   seed_of: Any, runner: str | None = None) -> list[TrialRow]:
        """Allocate numbers and insert trials, and save the strategy state, in one transaction.

        `seed_of(number)` gives each trial's seed. The study lock means several runners sharing one
        study never allocate the same number.
        """
        with self.locked(study_id) as conn:
            rows = self.insert_trials(conn, study_id, new, seed_of, runner)
            if state is not None:
                self.put_state(conn, study_id, state)
            return rows

    def insert_trials(self, conn: Connection, study_id: int, new: Sequence[NewTrial], seed_of: Callable[[int], int],
                      runner: str | None) -> list[TrialRow]:
        """Insert running trials numbered after the highest; call inside `locked`. Core statements, not ORM
        objects: this is the runner's hot path (a benchmark makes thousands of trials a minute)."""
        trials = cast(Table, TrialModel.__table__)
        top = conn.scalar(select(func.max(TrialModel.number)).where(TrialModel.study_id == study_id))
        first = (top if top is not None else -1) + 1
        now = _now()
        rows = [TrialRow(number=first + i, key=t.key, arch=t.arch, state=TrialState.RUNNING,
                         seed=seed_of(first + i), started=now, parent=t.parent, budget=dict(t.budget),
                         info=dict(t.info), heartbeat=now, runner=runner, retry_of=t.retry_of)
                for i, t in enumerate(new)]
        if rows:
            conn.execute(trials.insert(), [
                {"study_id": study_id, "number": r.number, "key": r.key, "arch": r.arch,
                 "state": TrialState.RUNNING.value, "seed": r.seed, "started": now, "heartbeat": now,
                 "parent": r.parent, "budget": r.budget, "info": r.info, "metrics": {}, "runner": runner,
                 "retry_of": r.retry_of} for r in rows])
        return rows

    def finish_trial(self, study_id: int, number: int, result: Result, state: JSONDict | None) -> None:
        """Record a result, its curve and the strategy state after `tell`, atomically."""
        with self.locked(study_id) as conn:
            if not self.record_result(conn, study_id, number, result, runner=None):
                raise KeyError(f"trial {number} not found")
            if state is not None:
                self.put_state(conn, study_id, state)

    def record_result(self, conn: Connection, study_id: int, number: int, result: Result,
                      runner: str | None) -> bool:
        """Store a result and its curve. With `runner`, only while that runner still holds the running
        trial: False means another runner claimed it (its heartbeat went stale) and this result is dropped."""
        trials = cast(Table, TrialModel.__table__)
        q = select(TrialModel.id).where(TrialModel.study_id == study_id, TrialModel.number == number)
        if runner is not None:
            q = q.where(TrialModel.runner == runner, TrialModel.state.in_(UNFINISHED))
        trial_id = conn.scalar(q)
        if trial_id is None:
            return False
        conn.execute(trials.update().where(trials.c.id == trial_id).values(
            state=result.state.value, score=result.score, metrics=dict(result.metrics), params=result.params,
            error=result.error, checkpoint=result.checkpoint, duration=result.duration, finished=_now()))
        points = [{"trial_id": trial_id, "step": int(point.get("epoch", step)), "name": name,
                   "value": float(value)}
                  for step, point in enumerate(result.curve) for name, value in point.items()]
        if points:
            conn.execute(cast(Table, IntermediateModel.__table__).insert(), points)
        return True

    def add_finished_trial(self, study_id: int, new: NewTrial, seed: int,
                           finish: Callable[[int], Result]) -> TrialRow:
        """Insert a trial made outside the runner (an ensemble, a distilled model) already finished.

        `finish(number)` runs inside the transaction, once the number is allocated (it moves the trial's
        files into place and returns its result), so no half-made row is ever left `running` for a
        resumed search to pick up.
        """
        return self._add_finished(study_id, new, seed, finish, reuse_complete=False)[0]

    def add_finished_trial_once(self, study_id: int, new: NewTrial, seed: int,
                                finish: Callable[[int], Result]) -> tuple[TrialRow, bool]:
        """As `add_finished_trial`, unless a complete trial with the same key is stored: then that trial and
        False, and `finish` is not called. The check and the insert hold the study lock together, so two
        commands making the same ensemble, final model or distillation at once store it once."""
        return self._add_finished(study_id, new, seed, finish, reuse_complete=True)

    def _add_finished(self, study_id: int, new: NewTrial, seed: int, finish: Callable[[int], Result],
                      reuse_complete: bool) -> tuple[TrialRow, bool]:
        trials = cast(Table, TrialModel.__table__)
        with self.locked(study_id) as conn:
            if reuse_complete:
                found = conn.execute(select(trials).where(
                    trials.c.study_id == study_id, trials.c.key == new.key,
                    trials.c.state == TrialState.COMPLETE.value).order_by(trials.c.number.desc()).limit(1)).first()
                if found is not None:
                    return _row(found), False
            top = conn.scalar(select(func.max(TrialModel.number)).where(TrialModel.study_id == study_id))
            number = (top if top is not None else -1) + 1
            result = finish(number)
            now = _now()
            conn.execute(trials.insert(), [{
                "study_id": study_id, "number": number, "key": new.key, "arch": new.arch,
                "state": result.state.value, "score": result.score, "metrics": dict(result.metrics),
                "params": result.params, "seed": seed, "started": now, "finished": now, "heartbeat": now,
                "duration": result.duration, "error": result.error, "checkpoint": result.checkpoint,
                "parent": new.parent, "budget": dict(new.budget), "info": dict(new.info)}])
            trial_id = conn.scalar(select(TrialModel.id).where(TrialModel.study_id == study_id,
                                                              TrialModel.number == number))
            points = [{"trial_id": trial_id, "step": int(point.get("epoch", step)), "name": name,
                       "value": float(value)}
                      for step, point in enumerate(result.curve) for name, value in point.items()]
            if points:
                conn.execute(cast(Table, IntermediateModel.__table__).insert(), points)
        row = self.trial(study_id, number)
        assert row is not None
        return row, True

    def save_state(self, study_id: int, state: JSONDict) -> None:
        with self.locked(study_id) as conn:
            self.put_state(conn, study_id, state)

    def put_state(self, conn: Connection, study_id: int, state: JSONDict, current: int | None = None) -> int:
        """Overwrite without reading the old state back (it grows with the search); returns the new version.
        `current`, the version read in this same locked transaction, saves reading it again."""
        table = cast(Table, StrategyStateModel.__table__)
        done = conn.execute(table.update().where(table.c.study_id == study_id).values(
            state=state, updated=_now(), version=table.c.version + 1))
        if done.rowcount == 0:
            conn.execute(table.insert().values(study_id=study_id, state=state, updated=_now(), version=1))
            return 1
        return current + 1 if current is not None else self.state_version(conn, study_id)

    @staticmethod
    def state_version(conn: Connection, study_id: int) -> int:
        """0 before the first save; every save adds one."""
        return int(conn.scalar(select(StrategyStateModel.version).where(StrategyStateModel.study_id == study_id))
                   or 0)

    def peek_state_version(self, study_id: int) -> int:
        with self.engine.connect() as conn:
            return self.state_version(conn, study_id)

    @staticmethod
    def state_at(conn: Connection, study_id: int) -> tuple[JSONDict | None, int]:
        row = conn.execute(select(StrategyStateModel.state, StrategyStateModel.version)
                           .where(StrategyStateModel.study_id == study_id)).first()
        return (None, 0) if row is None else (dict(row[0]), int(row[1] or 0))

    @staticmethod
    def counts_at(conn: Connection, study_id: int) -> StudyCounts:
        rows = conn.execute(
            select(TrialModel.state, func.count(), func.count(TrialModel.retry_of))
            .where(TrialModel.study_id == study_id).group_by(TrialModel.state)).all()
        total = sum(int(n) for _, n, _ in rows)
        retries = sum(int(r) for _, _, r in rows)
        running = sum(int(n) for st, n, _ in rows if st in UNFINISHED)
        failed = sum(int(n) for st, n, _ in rows if st == TrialState.FAILED.value)
        pruned = sum(int(n) for st, n, _ in rows if st == TrialState.PRUNED.value)
        return StudyCounts(logical=total - retries - pruned, running=running, failed=failed - retries, pruned=pruned)

    def counts(self, study_id: int) -> StudyCounts:
        with self.engine.connect() as conn:
            return self.counts_at(conn, study_id)

    @staticmethod
    def latest_by_key(conn: Connection, study_id: int, keys: Sequence[str]) -> dict[str, TrialRow]:
        """The newest trial of each key (a retry is newer than the failure it replaces)."""
        out: dict[str, TrialRow] = {}
        if not keys:
            return out
        trials = cast(Table, TrialModel.__table__)
        result = conn.execute(select(trials).where(trials.c.study_id == study_id, trials.c.key.in_(sorted(set(keys))))
                              .order_by(trials.c.number))
        for m in result:
            out[m.key] = _row(m)
        return out

    def claim_orphans(self, study_id: int, runner: str, stale_before: datetime,
                      holder_is_dead: Callable[[str], bool], limit: int | None = None) -> list[TrialRow]:
        """Take over running trials whose holder is gone: no holder recorded, a heartbeat older than
        `stale_before`, or a holder `holder_is_dead` says has exited. Each takeover is a conditional update
        on the row as it was read, so when two runners race for one trial exactly one gets it."""
        claimed: list[TrialRow] = []
        now = _now()
        with self.session() as s, s.begin():
            candidates = s.scalars(select(TrialModel).where(
                TrialModel.study_id == study_id, TrialModel.state.in_(UNFINISHED),
                or_(TrialModel.runner.is_(None), TrialModel.runner != runner)).order_by(TrialModel.number)).all()
            for m in candidates:
                if limit is not None and len(claimed) >= limit:
                    break
                stale = m.heartbeat is None or m.heartbeat < stale_before
                if not (m.runner is None or stale or holder_is_dead(m.runner)):
                    continue
                cond = [TrialModel.id == m.id, TrialModel.state.in_(UNFINISHED),
                        TrialModel.runner.is_(None) if m.runner is None else TrialModel.runner == m.runner]
                if m.heartbeat is not None:
                    cond.append(TrialModel.heartbeat == m.heartbeat)  # nobody beat for it since we read it
                done = s.execute(update(TrialModel).where(*cond).values(runner=runner, heartbeat=now)
                                 .execution_options(synchronize_session=False))
                if getattr(done, "rowcount", 0) == 1:
                    row = _row(m)
                    row.runner, row.heartbeat = runner, now
                    claimed.append(row)
        return claimed

    def attempt_of(self, study_id: int, number: int) -> int:
        """0 for a first try, 1 for its retry, and so on (follows `retry_of`)."""
        attempt = 0
        with self.engine.connect() as conn:
            previous = conn.scalar(select(TrialModel.retry_of).where(TrialModel.study_id == study_id,
                                                                     TrialModel.number == number))
            while previous is not None and attempt < 10_000:
                attempt += 1
                previous = conn.scalar(select(TrialModel.retry_of).where(TrialModel.study_id == study_id,
                                                                         TrialModel.number == previous))
        return attempt

    def beat(self, study_id: int, runner: str) -> int:
        """Refresh the heartbeat of every trial `runner` holds; returns how many it still holds."""
        with self.engine.begin() as conn:
            done = conn.execute(update(TrialModel).where(
                TrialModel.study_id == study_id, TrialModel.runner == runner,
                TrialModel.state.in_(UNFINISHED)).values(heartbeat=_now()))
            return int(done.rowcount or 0)

    def release(self, study_id: int, runner: str) -> int:
        """Hand back every unfinished trial `runner` holds (waiting, no holder), so that the study never shows
        trials running for a process that has stopped; the next runner takes them. Returns how many."""
        with self.engine.begin() as conn:
            done = conn.execute(update(TrialModel).where(
                TrialModel.study_id == study_id, TrialModel.runner == runner,
                TrialModel.state.in_(UNFINISHED)).values(state=TrialState.WAITING.value, runner=None,
                                                         heartbeat=None))
            return int(done.rowcount or 0)

    # ---- measured costs (nasforge.objectives.costs) ---------------------------------------------------
    def cached_costs(self, key: str, limit: int = 20) -> list[JSONDict]:
        """Every context's costs stored for an architecture key (newest first): the worker uses the one whose
        context matches its own."""
        table = cast(Table, CostModel.__table__)
        with self.engine.connect() as conn:
            rows = conn.execute(select(table.c.context, table.c["values"]).where(table.c.key == key)
                                .order_by(table.c.id.desc()).limit(limit)).all()
        return [{"context": str(c), "values": dict(v)} for c, v in rows]

    @staticmethod
    def put_costs(conn: Connection, key: str, context: str, values: JSONDict) -> None:
        """Add (or extend) the costs of a key in a context; call inside a write transaction."""
        table = cast(Table, CostModel.__table__)
        found = conn.execute(select(table.c.id, table.c["values"]).where(
            table.c.key == key, table.c.context == context)).first()
        if found is None:
            try:
                with conn.begin_nested():  # another study's runner may insert the same measurement first
                    conn.execute(table.insert().values(key=key, context=context, values=dict(values),
                                                       created=_now()))
            except IntegrityError:
                pass
        elif any(k not in found[1] for k in values):
            conn.execute(table.update().where(table.c.id == found[0]).values(values={**values, **found[1]}))

    def load_state(self, study_id: int) -> JSONDict | None:
        with self.session() as s:
            m = s.get(StrategyStateModel, study_id)
            return dict(m.state) if m else None

    def trials(self, study_id: int, states: Sequence[TrialState] | None = None) -> list[TrialRow]:
        with self.session() as s:
            q = select(TrialModel).where(TrialModel.study_id == study_id)
            if states:
                q = q.where(TrialModel.state.in_([st.value for st in states]))
            return [_row(m) for m in s.scalars(q.order_by(TrialModel.number)).all()]

    def trial(self, study_id: int, number: int) -> TrialRow | None:
        with self.session() as s:
            m = s.scalar(select(TrialModel).where(TrialModel.study_id == study_id, TrialModel.number == number))
            return _row(m) if m else None

    def count(self, study_id: int, states: Sequence[TrialState]) -> int:
        with self.session() as s:
            return int(s.scalar(select(func.count()).select_from(TrialModel).where(
                TrialModel.study_id == study_id, TrialModel.state.in_([st.value for st in states]))) or 0)

    def intermediate(self, study_id: int, number: int) -> list[tuple[int, str, float]]:
        with self.session() as s:
            rows = s.execute(
                select(IntermediateModel.step, IntermediateModel.name, IntermediateModel.value)
                .join(TrialModel, TrialModel.id == IntermediateModel.trial_id)
                .where(TrialModel.study_id == study_id, TrialModel.number == number)
                .order_by(IntermediateModel.id)
            ).all()
            return [(int(a), str(b), float(c)) for a, b, c in rows]

    def heartbeat(self, study_id: int, numbers: Sequence[int]) -> None:
        if not numbers:
            return
        with self.session() as s, s.begin():
            s.execute(update(TrialModel).where(TrialModel.study_id == study_id,
                                               TrialModel.number.in_(list(numbers))).values(heartbeat=_now()))

    def delete_study(self, name: str) -> bool:
        with self.session() as s, s.begin():
            m = s.scalar(select(StudyModel).where(StudyModel.name == name))
            if m is None:
                return False
            ids = select(TrialModel.id).where(TrialModel.study_id == m.id)
            s.execute(delete(IntermediateModel).where(IntermediateModel.trial_id.in_(ids)))
            s.execute(delete(TrialModel).where(TrialModel.study_id == m.id))
            s.execute(delete(StrategyStateModel).where(StrategyStateModel.study_id == m.id))
            s.delete(m)
            return True


# the records and the location moved to records.py and location.py; importable from here as before
__all__ = ["DBAPIError", "NewTrial", "Store", "StudyCounts", "StudyInfo", "TrialRow", "default_storage_url",
           "user_data_dir"]
