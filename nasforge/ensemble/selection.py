"""Choosing members and weights from validation predictions: top-k average, fitted weights, and
Caruana et al. (2004) greedy forward selection with replacement.

Inputs are member terms (`combine.member_terms`) on the validation split, one (rows, k) array per
candidate; outputs are weights per candidate (zeros for candidates left out). `select` is what
`nasforge ensemble --size K` uses: every method returns exactly K distinct members.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from nasforge.core.errors import ConfigError
from nasforge.data.base import CLASSIFICATION
from nasforge.ensemble.combine import PROBABILITIES, combined, finish, rank, scores

METHODS = ("average", "weighted", "greedy")


@dataclass
class Selection:
    """Weights per candidate (same order as the terms given) and the validation metrics they reach."""

    weights: list[float]
    metrics: dict[str, float]
    history: list[tuple[list[int], tuple[float, float]]] = field(default_factory=list)

    @property
    def chosen(self) -> list[int]:
        return [i for i, w in enumerate(self.weights) if w > 0]


def _evaluate(terms: Sequence[np.ndarray], weights: Sequence[float], y: np.ndarray, task: str,
              combine: str) -> dict[str, float]:
    return scores(combined(terms, weights, task, combine), y, task, "valid")


def average(terms: Sequence[np.ndarray], y: np.ndarray, task: str, combine: str) -> Selection:
    """Equal weights over every candidate given."""
    weights = [1.0 / len(terms)] * len(terms)
    return Selection(weights, _evaluate(terms, weights, y, task, combine))


def greedy(terms: Sequence[np.ndarray], y: np.ndarray, task: str, combine: str, size: int) -> Selection:
    """Caruana's ensemble selection: `size` steps, each adding (with replacement) the candidate that makes
    the running average best on validation; the best ensemble of the sequence is returned (the first one
    on ties, so the smallest). Ties between candidates go to the lower index (callers pass the best first).
    While the ensemble is one member, a step adds a different one (re-adding it would change nothing, and
    the selection would repeat that member to the end).
    """
    if size < 1 or not terms:
        raise ConfigError(f"greedy selection needs at least one candidate and --size >= 1 (got {size})")
    counts = [0] * len(terms)
    total = np.zeros_like(terms[0])
    history: list[tuple[list[int], tuple[float, float]]] = []
    best: tuple[list[int], tuple[float, float], dict[str, float]] | None = None
    for step in range(1, size + 1):
        step_best: tuple[int, tuple[float, float], dict[str, float]] | None = None
        for i, t in enumerate(terms):
            if step > 1 and sum(counts) == counts[i]:
                continue  # re-adding the only member leaves the ensemble unchanged: not a step
            metrics = scores(finish((total + t) / step, task, combine), y, task, "valid")
            r = rank(metrics, task)
            if step_best is None or r > step_best[1]:
                step_best = (i, r, metrics)
        if step_best is None:
            break  # a single candidate: nothing to add
        i, r, metrics = step_best
        total = total + terms[i]
        counts[i] += 1
        history.append((list(counts), r))
        if best is None or r > best[1]:
            best = (list(counts), r, metrics)
    assert best is not None
    n = sum(best[0])
    return Selection([c / n for c in best[0]], best[2], history)


def greedy_members(terms: Sequence[np.ndarray], y: np.ndarray, task: str, combine: str, size: int) -> Selection:
    """Caruana's selection with replacement that ends with exactly `size` distinct members.

    `2 * size` steps; each adds the candidate that makes the running average best on validation, where a
    step may re-add a member (weighting it up) only while enough steps are left to reach `size` distinct
    members, and never adds a new one once there are `size`. The best ensemble of the sequence among
    those with `size` distinct members is returned (the first on ties). Ties between candidates go to the
    lower index.
    """
    if size < 1 or size > len(terms):
        raise ConfigError(f"greedy selection of {size} members needs at least {size} candidates, got {len(terms)}")
    steps = 2 * size
    counts = [0] * len(terms)
    total = np.zeros_like(terms[0])
    history: list[tuple[list[int], tuple[float, float]]] = []
    best: tuple[list[int], tuple[float, float], dict[str, float]] | None = None
    for step in range(1, steps + 1):
        distinct = sum(1 for c in counts if c)
        room = steps - step + 1 > size - distinct  # a re-add still leaves steps to reach `size` members
        step_best: tuple[int, tuple[float, float], dict[str, float]] | None = None
        for i, t in enumerate(terms):
            if (counts[i] and (not room or distinct == 1)) or (not counts[i] and distinct == size):
                continue  # see the docstring; re-adding a lone member would change nothing
            metrics = scores(finish((total + t) / step, task, combine), y, task, "valid")
            r = rank(metrics, task)
            if step_best is None or r > step_best[1]:
                step_best = (i, r, metrics)
        if step_best is None:
            break  # one member asked for: nothing more to add
        i, r, metrics = step_best
        total = total + terms[i]
        counts[i] += 1
        history.append((list(counts), r))
        if sum(1 for c in counts if c) == size and (best is None or r > best[1]):
            best = (list(counts), r, metrics)
    assert best is not None
    n = sum(best[0])
    return Selection([c / n for c in best[0]], best[2], history)


def fit_weights(terms: Sequence[np.ndarray], y: np.ndarray, task: str, combine: str,
                iterations: int = 100, floor: float | None = None) -> list[float]:
    """Weights on the simplex (a softmax of free parameters) minimising validation NLL (or MSE), by L-BFGS.
    Without `floor`, members with negligible weight are left out; with it, every weight is at least `floor`
    (before renormalising), so every member stays a member."""
    stack = torch.as_tensor(np.stack([np.asarray(t, dtype=np.float64) for t in terms]))
    target = torch.as_tensor(np.asarray(y))
    raw = torch.zeros(len(terms), dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([raw], lr=0.5, max_iter=iterations, line_search_fn="strong_wolfe")

    def loss_fn() -> torch.Tensor:
        opt.zero_grad()
        w = torch.softmax(raw, dim=0)
        total = torch.einsum("m,mnk->nk", w, stack)
        if task == CLASSIFICATION:
            logp = torch.log(total.clamp_min(1e-12)) if combine == PROBABILITIES else torch.log_softmax(total, 1)
            loss = torch.nn.functional.nll_loss(logp, target.reshape(-1).long())
        else:
            loss = torch.mean((total - target.reshape(total.shape).double()) ** 2)
        loss.backward()  # type: ignore[no-untyped-call]
        return loss

    opt.step(loss_fn)  # type: ignore[no-untyped-call]
    w = torch.softmax(raw.detach(), dim=0).numpy()
    w = np.where(w < 1e-4, 0.0, w) if floor is None else np.maximum(w, floor)
    return [float(x) for x in w / w.sum()]


MIN_WEIGHT = 1e-3  # a fitted weight below this is raised to it, so `--size K` keeps K members


def weighted(terms: Sequence[np.ndarray], y: np.ndarray, task: str, combine: str) -> Selection:
    """Fitted weights, kept only if they beat uniform weights and every single member on validation
    (accuracy first, then loss): so the result is never worse than the best member there."""
    n = len(terms)
    options = [fit_weights(terms, y, task, combine), [1.0 / n] * n]
    options += [[1.0 if j == i else 0.0 for j in range(n)] for i in range(n)]
    best: Selection | None = None
    for w in options:
        sel = Selection(w, _evaluate(terms, w, y, task, combine))
        if best is None or rank(sel.metrics, task) > rank(best.metrics, task):
            best = sel
    assert best is not None
    return best


def weighted_members(terms: Sequence[np.ndarray], y: np.ndarray, task: str, combine: str) -> Selection:
    """Fitted weights over every candidate given (none left out), or equal weights where those score
    better on validation (accuracy first, then loss)."""
    n = len(terms)
    best: Selection | None = None
    for w in (fit_weights(terms, y, task, combine, floor=MIN_WEIGHT), [1.0 / n] * n):
        sel = Selection(w, _evaluate(terms, w, y, task, combine))
        if best is None or rank(sel.metrics, task) > rank(best.metrics, task):
            best = sel
    assert best is not None
    return best


def select(method: str, terms: Sequence[np.ndarray], y: np.ndarray, task: str, combine: str,
           size: int) -> Selection:
    """Exactly `size` distinct members: `average` and `weighted` take the first `size` candidates (callers
    order them best first), `greedy` picks `size` of all of them (`greedy_members`). Fewer candidates than
    `size` is an error that says so; whether the result beats its best member is the caller's check."""
    if method not in METHODS:
        raise ConfigError(f"--method must be one of {', '.join(METHODS)}, got {method!r}")
    if size < 1:
        raise ConfigError(f"--size must be a positive number (got {size})")
    if size > len(terms):
        raise ConfigError(f"--size {size} needs at least {size} candidate trials, only {len(terms)} available")
    if method == "greedy":
        return greedy_members(terms, y, task, combine, size)
    k = size
    sel = average(terms[:k], y, task, combine) if method == "average" else weighted_members(terms[:k], y, task,
                                                                                            combine)
    sel.weights = sel.weights + [0.0] * (len(terms) - k)
    return sel
