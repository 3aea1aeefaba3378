"""`nasforge ensemble`: pick members from a study's best searched trials and store the ensemble as a trial."""

from __future__ import annotations

from collections.abc import Sequence

from nasforge.core.errors import ConfigError, UserError
from nasforge.core.types import JSONDict
from nasforge.ensemble.combine import PROBABILITIES, check_combine
from nasforge.ensemble.members import ENSEMBLE, StudyMembers, kind_of, worse_than_best_member
from nasforge.ensemble.selection import METHODS, select
from nasforge.storage.sql import TrialRow

__all__ = ["make_ensemble", "worse_than_best_member"]

DEFAULT_METHOD = "greedy"
DEFAULT_SIZE = 5
DEFAULT_POOL = 10


def make_ensemble(members: StudyMembers, method: str = DEFAULT_METHOD, size: int = DEFAULT_SIZE,
                  pool: int = DEFAULT_POOL, combine: str = PROBABILITIES, trials: Sequence[int] | None = None,
                  extra: JSONDict | None = None) -> tuple[TrialRow, bool]:
    """Candidates: the `pool` best searched trials (or the given trial numbers, in that order); the ensemble
    has exactly `size` distinct members: `average`/`weighted` the best `size` of them, `greedy` the `size`
    that Caruana's selection with replacement picks (it may weigh some up). Fewer candidates than `size` is
    a UserError that says how many there are. Returns (the ensemble trial, whether it is new: an identical
    stored ensemble is reused); one worse on validation than its best member is flagged (`info.worse_than_member`)."""
    if method not in METHODS:
        raise ConfigError(f"--method must be one of {', '.join(METHODS)}, got {method!r}")
    check_combine(combine)
    if size < 2 or pool < 1:
        raise ConfigError(f"--size must be at least 2 (an ensemble of one trial is that trial) and --pool "
                          f"positive (got {size}, {pool})")
    if trials:
        candidates = [members.row(n) for n in dict.fromkeys(int(n) for n in trials)]  # each trial once
        for r in candidates:
            if kind_of(r) == ENSEMBLE:
                raise ConfigError(f"trial {r.number} is an ensemble; members must be single models")
    else:
        candidates = members.searched()[:pool]
    if not candidates:
        raise UserError(f"study {members.info.name!r} has no complete searched trial with saved weights")
    if len(candidates) < size:
        where = "--trials gives" if trials else (f"--pool {pool} leaves" if pool < size else "the study has")
        raise UserError(f"--size {size} asks for {size} distinct members, but {where} only {len(candidates)} "
                        f"candidate trials (complete, searched, with saved weights)")
    terms = [members.terms(r, combine) for r in candidates]
    chosen = select(method, terms, members.y_valid, members.task, combine, size)
    picked = [(r, w) for r, w in zip(candidates, chosen.weights) if w > 0]
    return members.add_ensemble([r for r, _ in picked], [w for _, w in picked], combine, method,
                                {"pool": [r.number for r in candidates], **(extra or {})})
