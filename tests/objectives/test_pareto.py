"""Non-dominated sorting, crowding, hypervolume, IGD and the front of stored trials."""

from __future__ import annotations

import itertools
import math
from types import SimpleNamespace

import numpy as np
import pytest

from nasforge.core.types import TrialState
from nasforge.objectives.pareto import (
    crowding_distance,
    dominates,
    front_of,
    hypervolume,
    igd,
    non_dominated_sort,
    pareto_front,
)


def test_dominance() -> None:
    assert dominates((2, 2), (1, 2)) and not dominates((1, 2), (1, 2)) and not dominates((2, 1), (1, 2))


def test_sort_matches_brute_force() -> None:
    rng = np.random.default_rng(0)
    points = [tuple(p) for p in rng.integers(0, 6, size=(60, 3)).tolist()]
    fronts = non_dominated_sort(points)
    assert sorted(i for f in fronts for i in f) == list(range(60))
    remaining = set(range(60))
    for front in fronts:
        expected = {i for i in remaining if not any(dominates(points[j], points[i]) for j in remaining)}
        assert set(front) == expected
        remaining -= expected


def test_front_of_keeps_one_of_equal_points() -> None:
    assert front_of([(1, 1), (2, 0), (1, 1), (0, 0)]) == [0, 1]


def test_crowding_distance_boundaries_are_infinite() -> None:
    points = [(0.0, 4.0), (1.0, 3.0), (2.0, 1.0), (4.0, 0.0)]
    d = crowding_distance(points, [0, 1, 2, 3])
    assert math.isinf(d[0]) and math.isinf(d[3])
    assert d[1] == pytest.approx(2 / 4 + 3 / 4) and d[2] == pytest.approx(3 / 4 + 3 / 4)


def test_hypervolume_2d_and_3d_against_a_grid() -> None:
    assert hypervolume([(1, 3), (2, 2), (3, 1)], (0, 0)) == pytest.approx(6.0)
    assert hypervolume([(1, 3), (2, 2), (3, 1), (1, 1)], (0, 0)) == pytest.approx(6.0)  # dominated adds nothing
    assert hypervolume([(-1, 5)], (0, 0)) == 0.0  # not beyond the reference point
    rng = np.random.default_rng(1)
    points = rng.integers(1, 5, size=(8, 3)).tolist()
    cells = sum(1 for c in itertools.product(range(5), repeat=3)
                if any(all(c[k] < p[k] for k in range(3)) for p in points))  # unit cells [c, c+1) dominated
    assert hypervolume(points, (0, 0, 0)) == pytest.approx(float(cells))


def test_igd_is_zero_on_the_front_and_grows_away_from_it() -> None:
    front = [(0.0, 1.0), (1.0, 0.0)]
    assert igd(front, front) == 0.0
    assert igd([(0.0, 1.0)], front) == pytest.approx(math.sqrt(2) / 2)
    assert igd([], front) == math.inf


def _trial(number: int, state: TrialState, **metrics: float) -> SimpleNamespace:
    params = metrics.pop("params", None)
    return SimpleNamespace(number=number, state=state, metrics=metrics, params=params, score=metrics.get("acc"))


def test_front_of_trials_reads_metrics_and_the_params_column() -> None:
    trials = [_trial(0, TrialState.COMPLETE, acc=0.9, params=100), _trial(1, TrialState.COMPLETE, acc=0.8, params=10),
              _trial(2, TrialState.COMPLETE, acc=0.7, params=50), _trial(3, TrialState.PRUNED, acc=1.0, params=1),
              _trial(4, TrialState.COMPLETE, acc=0.9, params=100), _trial(5, TrialState.COMPLETE, acc=0.95)]
    front = pareto_front(trials, ["acc:max", "params:min"])
    assert [t.number for t in front] == [0, 1]  # 2 is dominated, 3 never trained, 4 equals 0, 5 has no params
