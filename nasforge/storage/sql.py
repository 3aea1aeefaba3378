"""The store: the runner is its only writer; readers are the CLI, the API and reports."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, cast

from sqlalchemy import Table, create_engine, delete, event, func, select, update
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from nasforge.core.errors import StorageError
from nasforge.core.types import JSONDict, Result, TrialState
from nasforge.storage.schema import Base, IntermediateModel, StrategyStateModel, StudyModel, TrialModel


def _now() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


def user_data_dir() -> Path:
    """Where nasforge keeps its default database and artifacts (XDG data home)."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "nasforge"


def default_storage_url() -> str:
    return f"sqlite:///{user_data_dir() / 'nasforge.db'}"


@dataclass(frozen=True)
class StudyInfo:
    id: int
    name: str
    owner: str
    config: JSONDict
    objective: str
    direction: str
    artifact_dir: str
    created: datetime


@dataclass
class TrialRow:
    number: int
    key: str
    arch: JSONDict
    state: TrialState
    score: float | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    params: int | None = None
    seed: int = 0
    started: datetime | None = None
    finished: datetime | None = None
    duration: float | None = None
    error: str | None = None
    checkpoint: str | None = None
    parent: int | None = None
    budget: JSONDict = field(default_factory=dict)
    info: JSONDict = field(default_factory=dict)

    def to_result(self) -> Result:
        return Result(state=self.state, metrics=dict(self.metrics), score=self.score, error=self.error,
                      params=self.params, duration=self.duration or 0.0, checkpoint=self.checkpoint,
                      trial_number=self.number)


@dataclass(frozen=True)
class NewTrial:
    key: str
    arch: JSONDict
    parent: int | None = None
    budget: JSONDict = field(default_factory=dict)
    info: JSONDict = field(default_factory=dict)


def _row(m: TrialModel) -> TrialRow:
    return TrialRow(number=m.number, key=m.key, arch=m.arch, state=TrialState(m.state), score=m.score,
                    metrics=dict(m.metrics or {}), params=m.params, seed=m.seed, started=m.started,
                    finished=m.finished, duration=m.duration, error=m.error, checkpoint=m.checkpoint,
                    parent=m.parent, budget=dict(m.budget or {}), info=dict(m.info or {}))


def _study(m: StudyModel) -> StudyInfo:
    return StudyInfo(id=m.id, name=m.name, owner=m.owner, config=m.config, objective=m.objective,
                     direction=m.direction, artifact_dir=m.artifact_dir, created=m.created)


class Store:
    """SQLAlchemy store. On SQLite: WAL, and `BEGIN IMMEDIATE` so read-then-write is atomic."""

    def __init__(self, url: str | None = None, *, create: bool = True) -> None:
        self.url = url or default_storage_url()
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
        try:
            self.engine = self._make_engine(self.url)
            Base.metadata.create_all(self.engine)
        except (NoSuchModuleError, ModuleNotFoundError) as exc:
            raise StorageError(f"storage URL {self.url!r}: database driver not installed ({exc})") from exc
        except (SQLAlchemyError, OSError) as exc:
            reason = str(getattr(exc, "orig", None) or exc).splitlines()[0]
            raise StorageError(f"storage URL {self.url!r} cannot be opened: {reason}") from exc
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    def _make_engine(self, url: str) -> Engine:
        if not self.is_sqlite:
            return create_engine(url, pool_pre_ping=True)
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
        with self.session() as s, s.begin():
            existing = s.scalar(select(StudyModel).where(StudyModel.name == name))
            if existing is not None:
                return _study(existing)
            m = StudyModel(name=name, owner=owner, config=config, objective=objective, direction=direction,
                           artifact_dir=artifact_dir, created=_now())
            s.add(m)
            s.flush()
            return _study(m)

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
    def add_trials(self, study_id: int, new: Sequence[NewTrial], state: JSONDict | None,
                   seed_of: Any) -> list[TrialRow]:
        """Allocate numbers and insert trials, and save the strategy state, in one transaction.

        `seed_of(number)` gives each trial's seed. On PostgreSQL the study row is locked so that
        several runners sharing one study never allocate the same number. Core statements, not ORM
        objects: this is the runner's hot path (a benchmark makes thousands of trials a minute).
        """
        trials = cast(Table, TrialModel.__table__)
        with self.engine.begin() as conn:
            if not self.is_sqlite:
                conn.execute(select(StudyModel.id).where(StudyModel.id == study_id).with_for_update())
            top = conn.scalar(select(func.max(TrialModel.number)).where(TrialModel.study_id == study_id))
            first = (top if top is not None else -1) + 1
            now = _now()
            rows = [TrialRow(number=first + i, key=t.key, arch=t.arch, state=TrialState.RUNNING,
                             seed=seed_of(first + i), started=now, parent=t.parent, budget=dict(t.budget),
                             info=dict(t.info)) for i, t in enumerate(new)]
            if rows:
                conn.execute(trials.insert(), [
                    {"study_id": study_id, "number": r.number, "key": r.key, "arch": r.arch,
                     "state": TrialState.RUNNING.value, "seed": r.seed, "started": now, "heartbeat": now,
                     "parent": r.parent, "budget": r.budget, "info": r.info, "metrics": {}} for r in rows])
            if state is not None:
                self._put_state(conn, study_id, state)
            return rows

    def finish_trial(self, study_id: int, number: int, result: Result, state: JSONDict | None) -> None:
        """Record a result, its curve and the strategy state after `tell`, atomically."""
        trials = cast(Table, TrialModel.__table__)
        with self.engine.begin() as conn:
            trial_id = conn.scalar(select(TrialModel.id).where(TrialModel.study_id == study_id,
                                                              TrialModel.number == number))
            if trial_id is None:
                raise KeyError(f"trial {number} not found")
            conn.execute(trials.update().where(trials.c.id == trial_id).values(
                state=result.state.value, score=result.score, metrics=dict(result.metrics), params=result.params,
                error=result.error, checkpoint=result.checkpoint, duration=result.duration, finished=_now()))
            points = [{"trial_id": trial_id, "step": int(point.get("epoch", step)), "name": name,
                       "value": float(value)}
                      for step, point in enumerate(result.curve) for name, value in point.items()]
            if points:
                conn.execute(cast(Table, IntermediateModel.__table__).insert(), points)
            if state is not None:
                self._put_state(conn, study_id, state)

    def save_state(self, study_id: int, state: JSONDict) -> None:
        with self.engine.begin() as conn:
            self._put_state(conn, study_id, state)

    @staticmethod
    def _put_state(conn: Any, study_id: int, state: JSONDict) -> None:
        """Overwrite without reading the old state back (it grows with the search)."""
        table = cast(Table, StrategyStateModel.__table__)
        done = conn.execute(table.update().where(table.c.study_id == study_id).values(state=state, updated=_now()))
        if done.rowcount == 0:
            conn.execute(table.insert().values(study_id=study_id, state=state, updated=_now()))

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


__all__ = ["DBAPIError", "NewTrial", "Store", "StudyInfo", "TrialRow", "default_storage_url"]
