"""Ranked trial tables for the terminal, CSV and JSON."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from typing import Any

from nasforge.core.ranking import best_key
from nasforge.core.types import TrialState
from nasforge.execution.worker import STARTUP_METRIC
from nasforge.storage.sql import StudyInfo, TrialRow


def _test_metric(objective: str) -> str:
    return objective.replace("valid_", "test_", 1)


def _companions(objective: str) -> list[str]:
    """Metrics shown beside the objective: R² (validation, test) beside a regression's RMSE."""
    if objective.endswith("_rmse"):
        return [objective.removesuffix("_rmse") + "_r2", _test_metric(objective).removesuffix("_rmse") + "_r2"]
    return []


def rows_for(study: StudyInfo, trials: Sequence[TrialRow], space: Any | None, include_all: bool = True
             ) -> list[dict[str, Any]]:
    """Complete trials ranked best first, then (optionally) the others by number."""
    complete = sorted((t for t in trials if t.state == TrialState.COMPLETE and t.score is not None),
                      key=best_key, reverse=True)
    others = [t for t in trials if t not in complete] if include_all else []
    test_name = _test_metric(study.objective)
    extra = [n for n in _companions(study.objective) if n not in goal_columns(study)] + goal_columns(study)
    out = []
    for rank, t in enumerate(list(complete) + others, start=1):
        summary = ""
        if space is not None:
            try:
                summary = space.summary(space.from_json(t.arch))
            except Exception:  # an architecture from an older space version, or an ensemble, still lists
                described = t.arch.get("description", t.arch)
                summary = described if isinstance(described, str) else json.dumps(described)
        out.append({
            "rank": rank if t in complete else None,
            "trial": t.number,
            "state": t.state.value,
            study.objective: t.metrics.get(study.objective),
            test_name: t.metrics.get(test_name),
            **{name: t.metrics.get(name) for name in extra},
            "params": t.params,
            "time_s": round(t.duration, 2) if t.duration is not None else None,
            # a worker's start-up (process, imports, data), paid before its first trial and not in time_s
            "startup_s": round(t.metrics[STARTUP_METRIC], 2) if STARTUP_METRIC in t.metrics else None,
            "architecture": summary,
            "error": t.error,
        })
    return out


def goal_columns(study: StudyInfo) -> list[str]:
    """The study's other objectives and limited costs (params has its own column), shown beside the score."""
    from nasforge.objectives.spec import study_goals

    goals = study_goals(study.config)
    names = [o.name for o in goals.objectives[1:]] + list(goals.constraints)
    skip = {study.objective, _test_metric(study.objective), "params"}
    return [n for i, n in enumerate(names) if n not in skip and n not in names[:i]]


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) >= 1e5 else f"{value:.4f}"
    return str(value)


def format_table(rows: list[dict[str, Any]], limit: int | None = None, width: int = 60) -> str:
    if not rows:
        return "(no trials yet)"
    shown = rows[:limit] if limit else rows
    columns = [c for c in shown[0] if c != "error" and any(r.get(c) is not None for r in shown)]
    cells = [[_fmt(r.get(c)) for c in columns] for r in shown]
    for line in cells:
        idx = columns.index("architecture") if "architecture" in columns else -1
        if idx >= 0 and len(line[idx]) > width:
            line[idx] = line[idx][: width - 3] + "..."
    widths = [max(len(c), *(len(line[i]) for line in cells)) for i, c in enumerate(columns)]
    head = "  ".join(c.ljust(w) for c, w in zip(columns, widths))
    body = ["  ".join(v.ljust(w) for v, w in zip(line, widths)) for line in cells]
    failed = [r for r in shown if r["state"] == "failed" and r.get("error")]
    notes = [f"trial {r['trial']} failed: {r['error']}" for r in failed[:5]]
    return "\n".join([head, *body, *notes])


def format_csv(rows: list[dict[str, Any]]) -> str:
    buf = io.StringIO()
    if rows:
        writer = csv.DictWriter(buf, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return buf.getvalue()


def format_json(rows: list[dict[str, Any]]) -> str:
    return json.dumps(rows, indent=2, default=str)
