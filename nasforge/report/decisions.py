"""Each trial's decisions as named categorical values, for the importance and parallel-coordinates views.

Names come from the space's own walk (`Decision.name`, with its layer where it has one), so every space
is covered without code of its own; a name repeated inside one architecture (NASNet's two inputs of a
block) gets a running suffix.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from nasforge.core.types import TrialState
from nasforge.storage.sql import TrialRow


def decision_values(space: Any, arch_json: dict[str, Any]) -> dict[str, str] | None:
    """{decision label: chosen value as text} of one stored architecture; None if the space cannot read it."""
    try:
        arch = space.from_json(arch_json)
        walked = list(space.walk(arch.tokens))
    except Exception:  # an ensemble's description or an architecture from another version of the space
        return None
    seen: dict[str, int] = defaultdict(int)
    out: dict[str, str] = {}
    for dec, token in walked:
        label = dec.name if dec.layer is None else f"{dec.name}[{dec.layer}]"
        if dec.source is not None:
            label += f"<{dec.source}"
        seen[label] += 1
        if seen[label] > 1:
            label += f"#{seen[label]}"
        out[label] = str(dec.choices[token])
    return out


def decision_table(space: Any, trials: Sequence[TrialRow]) -> tuple[list[dict[str, str]], list[float]]:
    """Decision values and scores of the complete, scored trials the space can read."""
    rows: list[dict[str, str]] = []
    scores: list[float] = []
    for t in trials:
        if t.state != TrialState.COMPLETE or t.score is None:
            continue
        values = decision_values(space, t.arch)
        if values is not None:
            rows.append(values)
            scores.append(float(t.score))
    return rows, scores


def importance(rows: Sequence[dict[str, str]], scores: Sequence[float]) -> dict[str, float]:
    """Share of the score's variance each decision explains on its own, over the trials where it exists:
    epsilon², the correlation ratio corrected for the number of values (a decision with many values and few
    trials otherwise looks important by chance), floored at 0. Decisions that never vary are left out;
    largest first. One decision at a time: interactions (a cell's ops together) are not credited."""
    out: dict[str, float] = {}
    names = sorted({name for row in rows for name in row})
    for name in names:
        groups: dict[str, list[float]] = defaultdict(list)
        for row, score in zip(rows, scores):
            if name in row:
                groups[row[name]].append(score)
        values = [s for g in groups.values() for s in g]
        k, n = len(groups), len(values)
        if k < 2 or n <= k:
            continue
        mean = sum(values) / n
        total = sum((s - mean) ** 2 for s in values)
        if total <= 0:
            continue
        between = sum(len(g) * (sum(g) / len(g) - mean) ** 2 for g in groups.values())
        within_mean_square = (total - between) / (n - k)
        out[name] = max(0.0, (between - (k - 1) * within_mean_square) / total)
    return dict(sorted(out.items(), key=lambda kv: (-kv[1], kv[0])))
