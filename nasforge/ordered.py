"""Reproducible mode's bookkeeping: the strategy hears results in trial order, never as they happen to come.

With several workers, which result arrives first depends on timing, and so would every later proposal. Here
the runner asks one proposal at a time while fewer than `ahead` trials wait to be told, runs them as workers
free up, and tells each result only when every earlier trial's has been told, one at a time, filling the
window again after each. What the strategy sees (its asks and tells, in order) then depends on the seed and
`ahead` alone, not on --workers or on timing. The tell
pointer and the proposals waiting on an untold duplicate are saved with the strategy state, so a killed run
resumes to the study an uninterrupted one makes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from nasforge.core.types import JSONDict, Proposal, Result
from nasforge.storage.sql import TrialRow

ORDER_KEY = "_nasforge_order"  # beside the strategy's own state_dict keys in the stored state


class TellOrder:
    """Untold trials by their first number (a retry keeps its trial's place), their results as they arrive,
    and the duplicates waiting on them."""

    def __init__(self, ahead: int) -> None:
        self.ahead = ahead
        self.pending: list[int] = []  # first numbers of trials made but not yet told, in order
        self.pending_keys: set[str] = set()
        self.arrived: dict[int, tuple[Proposal, Result]] = {}
        self.queue: list[tuple[TrialRow, Proposal]] = []  # made, not yet given to a worker
        self._first_of: dict[int, int] = {}  # trial number (a retry's too) -> its trial's first number
        self._waits: dict[str, list[Proposal]] = {}

    def room(self) -> bool:
        return len(self.pending) < self.ahead

    def created(self, row: TrialRow, proposal: Proposal) -> None:
        self.pending.append(row.number)
        self.pending_keys.add(row.key)
        self._first_of[row.number] = row.number
        self.queue.append((row, proposal))

    def retried(self, number: int, retry: int) -> None:
        self._first_of[retry] = self._first_of.pop(number, number)

    def wait(self, proposal: Proposal) -> None:
        self._waits.setdefault(proposal.key, []).append(proposal)

    def arrive(self, number: int, proposal: Proposal, result: Result) -> None:
        self.arrived[self._first_of.pop(number, number)] = (proposal, result)

    def has_ready(self) -> bool:
        return bool(self.pending) and self.pending[0] in self.arrived

    def pop_ready(self) -> tuple[Proposal, Result, list[Proposal]]:
        """The next result in trial order (see `has_ready`), with the duplicates that waited on it."""
        proposal, result = self.arrived.pop(self.pending.pop(0))
        self.pending_keys.discard(proposal.key)
        return proposal, result, self._waits.pop(proposal.key, [])

    # ---- saved with the strategy state -------------------------------------------------------
    def saved(self, space: Any) -> JSONDict:
        waits = [{"key": p.key, "arch": space.to_json(p.arch), "seed": p.seed, "parent": p.parent,
                  "budget": p.budget, "info": p.info} for ps in self._waits.values() for p in ps]
        return {"next": self.pending[0] if self.pending else None, "waits": waits}

    def restore(self, saved: JSONDict | None, rows: Sequence[TrialRow], space: Any,
                proposal_of: Callable[[TrialRow], Proposal]) -> None:
        """Rebuild from the store after a restart: trials from `next` on are untold; the finished ones among
        them wait for their turn, the unfinished ones are taken over and run again by the runner."""
        latest: dict[int, TrialRow] = {}
        first_row: dict[int, TrialRow] = {}
        for row in sorted(rows, key=lambda r: r.number):
            first = row.number if row.retry_of is None else self._first_of.get(row.retry_of, row.retry_of)
            self._first_of[row.number] = first
            latest[first] = row
            first_row.setdefault(first, row)
        start = None if saved is None else saved.get("next")
        self.pending = [] if start is None else sorted(n for n in latest if n >= int(start))
        for first in self.pending:
            row = latest[first]
            self.pending_keys.add(row.key)
            if row.state.finished:
                self.arrived[first] = (proposal_of(first_row[first]), row.to_result())
        for item in (saved or {}).get("waits", []):
            self.wait(Proposal(arch=space.from_json(item["arch"]), key=item["key"], seed=int(item["seed"]),
                               parent=item["parent"], budget=dict(item["budget"]), info=dict(item["info"])))
