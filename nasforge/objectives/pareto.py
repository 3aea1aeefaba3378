"""Pareto fronts, crowding and hypervolume: the one place nasforge computes them.

Points are tuples oriented so that every coordinate is to be maximised (`Goals.values`). The study's
front is never stored as a second copy that could drift from its trials: `pareto_front` computes it from
the stored trials whenever it is read, so a resumed study, or one several runners share, always shows the
front of exactly the trials it has.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from nasforge.core.types import TrialState
from nasforge.objectives.spec import Objective, parse_objectives, study_goals

Point = Sequence[float]


def dominates(a: Point, b: Point) -> bool:
    """a is at least as good everywhere and better somewhere (every coordinate maximised)."""
    better = False
    for x, y in zip(a, b):
        if x < y:
            return False
        if x > y:
            better = True
    return better


def non_dominated_sort(points: Sequence[Point]) -> list[list[int]]:
    """Deb's fast non-dominated sort: fronts of indices, the first being the non-dominated points."""
    n = len(points)
    dominated_by: list[list[int]] = [[] for _ in range(n)]
    count = [0] * n
    fronts: list[list[int]] = [[]]
    for i in range(n):
        for j in range(i + 1, n):
            if dominates(points[i], points[j]):
                dominated_by[i].append(j)
                count[j] += 1
            elif dominates(points[j], points[i]):
                dominated_by[j].append(i)
                count[i] += 1
    fronts[0] = [i for i in range(n) if count[i] == 0]
    while fronts[-1]:
        following: list[int] = []
        for i in fronts[-1]:
            for j in dominated_by[i]:
                count[j] -= 1
                if count[j] == 0:
                    following.append(j)
        fronts.append(sorted(following))
    return fronts[:-1]


def front_of(points: Sequence[Point]) -> list[int]:
    """Indices of the non-dominated points; of identical points only the first is kept."""
    out: list[int] = []
    for i, p in enumerate(points):
        if any(dominates(q, p) for q in points):
            continue
        if any(tuple(points[j]) == tuple(p) for j in out):
            continue
        out.append(i)
    return out


def crowding_distance(points: Sequence[Point], front: Sequence[int]) -> dict[int, float]:
    """NSGA-II's crowding distance of each index of `front`: boundary points get infinity."""
    distance = {i: 0.0 for i in front}
    if len(front) <= 2:
        return {i: math.inf for i in front}
    dims = len(points[front[0]])
    for m in range(dims):
        ordered = sorted(front, key=lambda i: (points[i][m], i))
        lo, hi = points[ordered[0]][m], points[ordered[-1]][m]
        distance[ordered[0]] = distance[ordered[-1]] = math.inf
        if hi <= lo:
            continue
        for k in range(1, len(ordered) - 1):
            distance[ordered[k]] += (points[ordered[k + 1]][m] - points[ordered[k - 1]][m]) / (hi - lo)
    return distance


def hypervolume(points: Sequence[Point], reference: Point) -> float:
    """The volume dominated by `points` and bounded below by `reference` (every coordinate maximised).

    Exact: a sweep for two objectives, slicing along the first coordinate for more (fine for the few
    hundred points a front has)."""
    pts = [tuple(float(x) for x in p) for p in points if all(x > r for x, r in zip(p, reference))]
    if not pts:
        return 0.0
    ref = tuple(float(r) for r in reference)
    if len(ref) == 1:
        return max(p[0] for p in pts) - ref[0]
    if len(ref) == 2:
        pts.sort(key=lambda p: (-p[0], -p[1]))
        volume, best_y = 0.0, ref[1]
        for x, y in pts:
            if y > best_y:
                volume += (x - ref[0]) * (y - best_y)
                best_y = y
        return volume
    pts.sort(key=lambda p: -p[0])
    volume = 0.0
    for k, p in enumerate(pts):
        lower = pts[k + 1][0] if k + 1 < len(pts) else ref[0]
        if p[0] > lower:
            volume += (p[0] - lower) * hypervolume([q[1:] for q in pts[:k + 1]], ref[1:])
    return volume


def igd(found: Sequence[Point], true_front: Sequence[Point], scale: Sequence[float] | None = None) -> float:
    """Inverted generational distance: mean distance from each point of the true front to the nearest
    found point (coordinates divided by `scale`, e.g. each objective's range). Lower is better."""
    if not true_front:
        return 0.0
    if not found:
        return math.inf
    s = scale or [1.0] * len(true_front[0])
    total = 0.0
    for t in true_front:
        total += min(math.sqrt(sum(((a - b) / w) ** 2 for a, b, w in zip(t, f, s))) for f in found)
    return total / len(true_front)


# ---- stored trials -------------------------------------------------------------------------------
def study_objectives(config: Any, objective: str, direction: str) -> list[Objective]:
    """The objectives a study's front is over: its `--objectives` when it has two or more, else its
    objective and params. One definition for `trials --pareto`, `Study.pareto_front`, the dashboard and
    `plot --kind pareto`."""
    goals = study_goals(config)
    if len(goals.objectives) >= 2:
        return list(goals.objectives)
    first = goals.objectives[0] if goals.objectives else Objective(objective, direction)
    return [first, Objective("params", "minimize")]


def trial_value(trial: Any, name: str) -> float | None:
    """A trial's value of `name`: its metrics, or its `params` column (every trial has one)."""
    value = trial.metrics.get(name)
    if value is None and name == "params":
        value = trial.params
    if value is None:
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def trial_points(trials: Sequence[Any], objectives: Sequence[Objective | str]) -> tuple[list[Any], list[list[float]]]:
    """Complete trials that have every objective, and their oriented points."""
    objs = [o if isinstance(o, Objective) else parse_objectives([o])[0] for o in objectives]
    kept: list[Any] = []
    points: list[list[float]] = []
    for t in trials:
        if t.state != TrialState.COMPLETE:
            continue
        values = [trial_value(t, o.name) for o in objs]
        if any(v is None for v in values):
            continue
        kept.append(t)
        points.append([o.sign * float(v) for o, v in zip(objs, values) if v is not None])
    return kept, points


def pareto_front(trials: Sequence[Any], objectives: Sequence[Objective | str]) -> list[Any]:
    """The complete trials no other complete trial dominates on `objectives` (e.g. `["valid_accuracy:max",
    "params:min"]` or `Objective`s), best on the first objective first. Trials lacking an objective are
    left out; of trials with identical values the lowest-numbered is kept."""
    kept, points = trial_points(trials, objectives)
    front = [kept[i] for i in front_of(points)]
    index = {id(t): i for i, t in enumerate(kept)}
    return sorted(front, key=lambda t: (-points[index[id(t)]][0], t.number))
