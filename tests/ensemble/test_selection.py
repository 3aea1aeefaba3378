"""Selection and combination on hand-made prediction matrices (no models, no data files)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from nasforge.core.errors import ConfigError
from nasforge.ensemble.combine import LOGITS, PROBABILITIES, combined, member_terms, rank, scores
from nasforge.ensemble.selection import greedy, select, weighted

# Five validation rows, two classes; each model is given by its probability of class 1.
Y = np.array([0, 0, 0, 1, 1])
P1 = {"A": [0.1, 0.2, 0.3, 0.9, 0.45],   # 4/5 right (misses row 4)
      "B": [0.6, 0.6, 0.2, 0.9, 0.9],    # 3/5 right, but fixes A's row 4 when averaged with A
      "C": [0.8, 0.1, 0.1, 0.05, 0.3]}   # 3/5 right; A+C averaged gets 3/5


def _terms(names: str) -> list[np.ndarray]:
    return [np.column_stack([1 - np.array(P1[n]), np.array(P1[n])]) for n in names]


def test_caruana_greedy_hand_computed() -> None:
    sel = greedy(_terms("ABC"), Y, "classification", PROBABILITIES, size=2)
    # step 1: A alone is best (4/5); step 2: A+B averages to [.35, .4, .25, .9, .675] -> 5/5
    assert [counts for counts, _ in sel.history] == [[1, 0, 0], [1, 1, 0]]
    assert sel.weights == [0.5, 0.5, 0.0]
    assert sel.metrics["valid_accuracy"] == 1.0
    expected_nll = -np.mean(np.log([0.65, 0.6, 0.75, 0.9, 0.675]))
    assert sel.metrics["valid_loss"] == pytest.approx(expected_nll)


def test_caruana_keeps_the_best_prefix_and_picks_with_replacement() -> None:
    perfect = np.array([[0.9, 0.1], [0.8, 0.2], [0.2, 0.8]])
    bad = np.array([[0.1, 0.9], [0.3, 0.7], [0.9, 0.1]])
    sel = greedy([bad, perfect], np.array([0, 0, 1]), "classification", PROBABILITIES, size=4)
    # issue 22 item 5: the lone best member is not re-added over and over; step 2 must add the other one
    assert [c for c, _ in sel.history][:2] == [[0, 1], [1, 1]]
    assert sel.weights == [0.0, 1.0]
    assert sel.chosen == [1]


def test_combine_probabilities_and_logits_by_hand() -> None:
    z1, z2 = np.array([[2.0, 0.0]]), np.array([[0.0, 1.0]])
    probs = combined([member_terms(z, "classification", PROBABILITIES) for z in (z1, z2)], [1, 1],
                     "classification", PROBABILITIES)
    s1, s2 = 1 / (1 + math.exp(-2)), 1 / (1 + math.exp(1))  # class-0 probabilities
    assert probs[0, 0] == pytest.approx((s1 + s2) / 2)
    logits = combined([member_terms(z, "classification", LOGITS) for z in (z1, z2)], [3, 1],
                      "classification", LOGITS)
    mean = 0.75 * z1 + 0.25 * z2
    assert mean.tolist() == [[1.5, 0.25]]
    assert logits[0, 0] == pytest.approx(1 / (1 + math.exp(-(1.5 - 0.25))))


def test_weighted_never_below_the_best_member_on_validation() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, size=200)
    terms = []
    for noise in (1.0, 1.5, 2.0, 3.0):
        logits = rng.normal(size=(200, 3)) * noise
        logits[np.arange(200), y] += 1.5
        terms.append(member_terms(logits, "classification", PROBABILITIES))
    sel = weighted(terms, y, "classification", PROBABILITIES)
    best_single = max(rank(scores(t, y, "classification", "valid"), "classification") for t in terms)
    assert rank(sel.metrics, "classification") >= best_single
    assert sum(sel.weights) == pytest.approx(1.0) and min(sel.weights) >= 0


def test_regression_average_and_select_errors() -> None:
    y = np.array([1.0, 2.0, 3.0])
    a, b = np.array([[0.0], [2.0], [4.0]]), np.array([[2.0], [2.0], [2.0]])
    sel = select("average", [a, b], y, "regression", LOGITS, size=2)
    assert sel.metrics["valid_rmse"] == pytest.approx(0.0)
    with pytest.raises(ConfigError, match="--method"):
        select("vote", [a], y, "regression", LOGITS, size=1)
    with pytest.raises(ConfigError, match="--size"):
        select("greedy", [a], y, "regression", LOGITS, size=0)


def test_greedy_never_repeats_a_lone_member_and_keeps_the_best_prefix() -> None:
    from nasforge.ensemble.selection import greedy

    y = np.array([0, 1, 0, 1])
    good = np.array([[0.9, 0.1], [0.1, 0.9], [0.9, 0.1], [0.2, 0.8]])
    bad = np.array([[0.1, 0.9], [0.9, 0.1], [0.1, 0.9], [0.9, 0.1]])
    sel = greedy([good, bad], y, "classification", "probabilities", 4)
    first_two = [counts for counts, _ in sel.history[:2]]
    assert first_two == [[1, 0], [1, 1]]  # step 2 adds the other member instead of repeating the lone one
    assert sel.weights == [1.0, 0.0]  # the single best member was the best ensemble of the sequence


def test_an_ensemble_below_its_best_member_on_validation_is_flagged() -> None:
    from types import SimpleNamespace

    from nasforge.ensemble.build import worse_than_best_member

    y = np.array([0, 1, 0])
    outs = {1: np.array([[0.9, 0.1], [0.2, 0.8], [0.8, 0.2]]), 2: np.array([[0.1, 0.9], [0.9, 0.1], [0.9, 0.1]])}
    fake = SimpleNamespace(task="classification", y_valid=y, terms=lambda r, c: outs[r.number])
    rows = [SimpleNamespace(number=1), SimpleNamespace(number=2)]
    worse = {"valid_accuracy": 2 / 3, "valid_loss": 0.7}
    assert worse_than_best_member(fake, rows, worse, PROBABILITIES) == {"worse_than_member": 1}  # type: ignore[arg-type]
    better = {"valid_accuracy": 1.0, "valid_loss": 0.1}
    assert worse_than_best_member(fake, rows, better, PROBABILITIES) == {}  # type: ignore[arg-type]
