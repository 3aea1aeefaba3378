"""The dashboard's view of a store: read-only, while searches write to it.

SQLite is opened with `mode=ro` (a missing file is an error, never a new database) and PostgreSQL sessions
with `default_transaction_read_only`, so no query the dashboard makes can change a study. Every answer is
plain JSON-ready data; the big ones (history, front) are sized for studies of 10,000 trials.
"""

from __future__ import annotations

import json
import math
import shlex
import sqlite3
import threading
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

from sqlalchemy import Table, create_engine, func, inspect, select
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, SQLAlchemyError

from nasforge.core import registry
from nasforge.core.errors import StorageError, UserError
from nasforge.core.types import TrialState
from nasforge.storage.schema import IntermediateModel, StudyModel, TrialModel

STUDIES = cast(Table, StudyModel.__table__)
TRIALS = cast(Table, TrialModel.__table__)
POINTS = cast(Table, IntermediateModel.__table__)
LEADERBOARD_ROWS = 50


class NotFound(UserError):
    """A study or trial the store does not have (the server answers 404)."""


def open_readonly(url: str) -> Engine:
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise StorageError(f"storage URL {url!r} is not a valid SQLAlchemy URL") from exc
    if parsed.get_backend_name() == "sqlite":
        if not parsed.database or parsed.database == ":memory:":
            raise StorageError(f"storage {url!r}: the dashboard reads a database file")
        path = Path(parsed.database).expanduser().resolve()
        if not path.is_file():
            raise StorageError(f"storage {url!r}: no database at {path} (the dashboard creates none)")
        uri = f"{path.as_uri()}?mode=ro"
        engine = create_engine("sqlite://", creator=lambda: sqlite3.connect(uri, uri=True, timeout=10,
                                                                            check_same_thread=False))
    else:
        postgres = parsed.get_backend_name() == "postgresql"
        options = {"options": "-c default_transaction_read_only=on"} if postgres else {}
        try:
            engine = create_engine(url, pool_pre_ping=True, connect_args=options)
        except (NoSuchModuleError, ModuleNotFoundError) as exc:
            raise StorageError(f"storage URL {url!r}: database driver not installed ({exc})") from exc
    try:
        if not inspect(engine).has_table("studies"):
            raise StorageError(f"storage {url!r} holds no nasforge studies")
    except SQLAlchemyError as exc:
        reason = str(getattr(exc, "orig", None) or exc).splitlines()[0]
        raise StorageError(f"storage URL {url!r} cannot be opened: {reason}") from exc
    return engine


def _clean(value: Any) -> Any:
    """JSON without NaN or infinity (which browsers' JSON.parse refuses) and with dates as ISO text."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


class StoreReader:
    def __init__(self, url: str) -> None:
        self.url = url
        self.shown_url = make_url(url).render_as_string(hide_password=True)
        self.engine = open_readonly(url)
        self._spaces: dict[str, Any] = {}
        self._drawings: dict[tuple[str, int], str] = {}
        self._draw_lock = threading.Lock()

    def close(self) -> None:
        self.engine.dispose()

    # ---- studies -------------------------------------------------------------------------
    def studies(self) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(STUDIES.c.id, STUDIES.c.name, STUDIES.c.config, STUDIES.c.objective,
                                       STUDIES.c.direction, STUDIES.c.created).order_by(STUDIES.c.id)).all()
            counts: dict[int, dict[str, int]] = {}
            for sid, state, n in conn.execute(select(TRIALS.c.study_id, TRIALS.c.state, func.count())
                                              .group_by(TRIALS.c.study_id, TRIALS.c.state)):
                counts.setdefault(sid, {})[state] = int(n)
            best = dict(conn.execute(select(TRIALS.c.study_id, func.max(TRIALS.c.score))
                                     .group_by(TRIALS.c.study_id)).all())
        out = []
        for sid, name, config, objective, direction, created in rows:
            out.append({"name": name, "space": config.get("space"), "strategy": config.get("strategy"),
                        "objective": objective, "direction": direction, "created": created,
                        "counts": counts.get(sid, {}), "best": _value(best.get(sid), direction)})
        return _clean(out)

    def _study(self, conn: Any, name: str) -> Any:
        row = conn.execute(select(STUDIES).where(STUDIES.c.name == name)).first()
        if row is None:
            raise NotFound(f"no study named {name!r}")
        return row

    def space_of(self, config: dict[str, Any]) -> Any:
        key = json.dumps([config.get("space"), config.get("space_config", {})], sort_keys=True, default=str)
        if key not in self._spaces:
            try:
                self._spaces[key] = registry.create("space", config["space"], **config.get("space_config", {}))
            except Exception:  # a space from a newer version: the study still shows, without summaries
                self._spaces[key] = None
        return self._spaces[key]

    def study(self, name: str, top: int = LEADERBOARD_ROWS) -> dict[str, Any]:
        """Everything the study page shows: counts, leaderboard, history, front, running trials."""
        with self.engine.connect() as conn:
            study = self._study(conn, name)
            direction = study.direction
            counts = {state: int(n) for state, n in conn.execute(
                select(TRIALS.c.state, func.count()).where(TRIALS.c.study_id == study.id).group_by(TRIALS.c.state))}
            best_rows = conn.execute(
                select(TRIALS.c.number, TRIALS.c.score, TRIALS.c.params, TRIALS.c.duration, TRIALS.c.arch,
                       TRIALS.c.metrics)
                .where(TRIALS.c.study_id == study.id, TRIALS.c.state == "complete", TRIALS.c.score.is_not(None))
                .order_by(TRIALS.c.score.desc(), TRIALS.c.number).limit(top)).all()
            history = conn.execute(
                select(TRIALS.c.number, TRIALS.c.state, TRIALS.c.score, TRIALS.c.params, TRIALS.c.started,
                       TRIALS.c.finished)
                .where(TRIALS.c.study_id == study.id).order_by(TRIALS.c.number)).all()
            complete = conn.execute(
                select(TRIALS.c.number, TRIALS.c.params, TRIALS.c.metrics)
                .where(TRIALS.c.study_id == study.id, TRIALS.c.state == "complete")
                .order_by(TRIALS.c.number)).all()
            running = conn.execute(
                select(TRIALS.c.number, TRIALS.c.started, TRIALS.c.arch, TRIALS.c.heartbeat)
                .where(TRIALS.c.study_id == study.id, TRIALS.c.state.in_(("running", "waiting")))
                .order_by(TRIALS.c.number)).all()
        space = self.space_of(study.config)
        starts = [r.started for r in history if r.started is not None]
        origin = min(starts) if starts else None
        points = []
        for r in history:
            if r.state in ("running", "waiting"):
                continue
            when = r.finished or r.started
            seconds = (when - origin).total_seconds() if origin and when else None
            points.append([r.number, r.state, _value(r.score, direction), seconds])
        leaderboard = [{"rank": i + 1, "trial": r.number, "value": _value(r.score, direction), "params": r.params,
                        "flops": (r.metrics or {}).get("flops"), "time_s": r.duration,
                        "test": (r.metrics or {}).get(study.objective.replace("valid_", "test_", 1)),
                        "architecture": _summary(space, r.arch)} for i, r in enumerate(best_rows)]
        artifact = Path(study.artifact_dir) if study.artifact_dir else None
        live = [{"trial": r.number, "started": r.started, "heartbeat": r.heartbeat,
                 "architecture": _summary(space, r.arch), "progress": _progress(artifact, r.number)} for r in running]
        return _clean({
            "name": study.name, "objective": study.objective, "direction": direction,
            "space": study.config.get("space"), "strategy": study.config.get("strategy"),
            "created": study.created, "counts": counts, "leaderboard": leaderboard,
            "history": {"columns": ["trial", "state", "value", "seconds"], "rows": points},
            "pareto": _pareto(study, complete),
            "running": live,
        })

    # ---- one trial -----------------------------------------------------------------------
    def trial(self, name: str, number: int) -> dict[str, Any]:
        with self.engine.connect() as conn:
            study = self._study(conn, name)
            row = conn.execute(select(TRIALS).where(TRIALS.c.study_id == study.id, TRIALS.c.number == number)).first()
            if row is None:
                raise NotFound(f"study {name!r} has no trial {number}")
            curve = conn.execute(select(POINTS.c.step, POINTS.c.name, POINTS.c.value)
                                 .where(POINTS.c.trial_id == row.id).order_by(POINTS.c.id)).all()
        space = self.space_of(study.config)
        by_step: dict[int, dict[str, float]] = {}
        for step, metric, value in curve:
            by_step.setdefault(int(step), {"step": int(step)})[metric] = float(value)
        points = [by_step[k] for k in sorted(by_step)]
        if not points and row.state in ("running", "waiting"):
            points = _progress(Path(study.artifact_dir) if study.artifact_dir else None, number)
        return _clean({
            "study": name, "trial": row.number, "state": row.state, "key": row.key, "objective": study.objective,
            "value": _value(row.score, study.direction), "metrics": row.metrics or {}, "params": row.params,
            "seed": row.seed, "parent": row.parent, "retry_of": row.retry_of, "started": row.started,
            "finished": row.finished, "duration_s": row.duration, "error": row.error, "info": row.info or {},
            "budget": row.budget or {}, "architecture": row.arch, "summary": _summary(space, row.arch),
            "curve": points, "drawable": space is not None,
            "commands": self.commands(name, row.number, row.state),
        })

    def commands(self, name: str, number: int, state: str) -> dict[str, str]:
        storage = f" --storage {shlex.quote(self.shown_url)}"
        study = shlex.quote(name)
        out = {"show": f"nasforge show --study {study} --trial {number}{storage}",
               "replay": f"nasforge show --study {study} --trial {number} --replay trial{number}.json{storage}"
                         f" && nasforge train --replay trial{number}.json",
               "draw": f"nasforge show --study {study} --trial {number} --draw trial{number}.svg{storage}"}
        if state == "complete":
            out["export"] = f"nasforge export --study {study} --trial {number} --out trial{number}.onnx{storage}"
        return out

    def drawing(self, name: str, number: int) -> str:
        """The trial's architecture as SVG text (drawn once, then cached)."""
        if (name, number) in self._drawings:
            return self._drawings[(name, number)]
        with self.engine.connect() as conn:
            study = self._study(conn, name)
            arch = conn.scalar(select(TRIALS.c.arch).where(TRIALS.c.study_id == study.id, TRIALS.c.number == number))
        if arch is None:
            raise NotFound(f"study {name!r} has no trial {number}")
        space = self.space_of(study.config)
        if space is None:
            raise NotFound(f"study {name!r}: its space cannot be built here")
        from nasforge.report.drawing import drawing_for, svg_text

        try:
            drawing = drawing_for(space, space.from_json(arch))
        except Exception as exc:
            raise NotFound(f"trial {number} has no architecture of space {space.name!r} to draw") from exc
        with self._draw_lock:  # matplotlib is not thread-safe
            svg = svg_text(drawing)
        if len(self._drawings) > 256:
            self._drawings.clear()
        self._drawings[(name, number)] = svg
        return svg

    # ---- several studies -----------------------------------------------------------------
    def compare(self, names: Sequence[str]) -> dict[str, Any]:
        """Each study's best-so-far curve by trial number (and its counts), to draw on one chart."""
        out = []
        with self.engine.connect() as conn:
            for name in names:
                study = self._study(conn, name)
                rows = conn.execute(select(TRIALS.c.number, TRIALS.c.score).where(
                    TRIALS.c.study_id == study.id, TRIALS.c.state == "complete", TRIALS.c.score.is_not(None))
                    .order_by(TRIALS.c.number)).all()
                best, curve = -math.inf, []
                for number, score in rows:
                    if score > best:
                        best = score
                        curve.append([number, _value(score, study.direction)])
                out.append({"name": name, "objective": study.objective, "direction": study.direction,
                            "space": study.config.get("space"), "strategy": study.config.get("strategy"),
                            "complete": len(rows), "best": _value(best if rows else None, study.direction),
                            "curve": curve})
        return _clean({"studies": out})


def _value(score: float | None, direction: str) -> float | None:
    """The objective as the user reads it (a minimised objective's score is its negative)."""
    if score is None:
        return None
    return -float(score) if direction == "minimize" else float(score)


def _summary(space: Any, arch: dict[str, Any]) -> str:
    if space is not None:
        try:
            return str(space.summary(space.from_json(arch)))
        except Exception:
            pass
    described = arch.get("description", "")
    return described if isinstance(described, str) else json.dumps(described)[:200]


def _progress(artifact: Path | None, number: int) -> list[dict[str, float]]:
    """A running trial's epochs so far, from the file its worker appends to (nasforge.execution.worker)."""
    from nasforge.execution.worker import PROGRESS_FILE

    if artifact is None:
        return []
    path = artifact / "trials" / str(number) / PROGRESS_FILE
    try:
        lines = path.read_text().splitlines()[-2000:]
    except OSError:
        return []
    points: list[dict[str, float]] = []
    for line in lines:
        try:
            point = json.loads(line)
        except ValueError:  # the line being written
            continue
        if points and point.get("step", 0) <= points[-1].get("step", 0):
            points = []  # the trial restarted (taken over by another runner): keep the latest run
        points.append(point)
    return points


def _pareto(study: Any, complete: Sequence[Any]) -> dict[str, Any]:
    """The study's front over its own objectives (`--objectives`, else its objective and params), computed
    as `trials --pareto` computes it (`nasforge.objectives.pareto`). Points: [trial, x, y] with y the first
    objective and x the second; with three or more objectives the front is over all of them, drawn on the
    first two."""
    from nasforge.objectives.pareto import pareto_front, study_objectives, trial_points

    objectives = study_objectives(study.config, study.objective, study.direction)
    rows = [SimpleNamespace(number=r.number, state=TrialState.COMPLETE, params=r.params, metrics=r.metrics or {})
            for r in complete]
    kept, points = trial_points(rows, objectives)
    y, x = objectives[0], objectives[1] if len(objectives) > 1 else objectives[0]
    return {"objectives": [o.text() for o in objectives], "x": x.name, "y": y.name, "cost": x.name,
            "points": [[t.number, x.sign * p[1 if len(p) > 1 else 0], y.sign * p[0]] for t, p in zip(kept, points)],
            "front": [t.number for t in pareto_front(rows, objectives)]}
