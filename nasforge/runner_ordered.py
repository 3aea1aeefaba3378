"""Reproducible mode's loop (`--reproducible`): one proposal asked at a time while the window has room, trials
run in number order as workers free up, results told in trial order (the bookkeeping is `nasforge.ordered`)."""

from __future__ import annotations

from nasforge.core.types import TrialState
from nasforge.runner_sharing import RunnerBase
from nasforge.storage.sql import NewTrial


class OrderedRunner(RunnerBase):
    """The ordered loop; `nasforge.runner.Runner` adds the free loop and the recording of results."""

    def _wait_one(self) -> bool:
        """Wait for a trial to finish and record it (nasforge.runner.Runner)."""
        raise NotImplementedError

    def _ordered_loop(self, new_numbers: list[int]) -> tuple[str, int]:
        """Reproducible mode (nasforge.ordered): ask one proposal at a time while fewer than `ahead` trials are
        untold, run them in number order as workers free up, tell results in trial order."""
        assert self._order is not None
        order = self._order
        reused = 0
        duplicates_in_a_row = 0
        while True:
            fresh, dups = self._ask_ordered()
            while order.has_ready():  # one result, then the window filled again: the same order for any timing
                self._tell_next()
                more, more_dups = self._ask_ordered()
                fresh, dups = fresh + more, dups + more_dups
            new_numbers += fresh
            reused += dups
            duplicates_in_a_row = 0 if fresh else duplicates_in_a_row + dups
            if duplicates_in_a_row >= self.max_consecutive_duplicates:
                return (f"stopped: the strategy proposed {duplicates_in_a_row} already-evaluated architectures "
                        "in a row (the space may be exhausted)"), reused
            while order.queue and self.backend.capacity() > len(self._inflight):
                row, proposal = order.queue.pop(0)
                self._submit(row, proposal)
            if self._pruned_in_a_row >= self.max_consecutive_pruned:
                return (f"stopped: the last {self._pruned_in_a_row} architectures proposed all broke the "
                        "constraints (they may be too tight for this space)"), reused
            if self._failures_in_a_row >= self.max_consecutive_failures:
                return (f"stopped: {self._failures_in_a_row} trials failed in a row; the last error was: "
                        f"{self._last_error}"), reused
            if not self._inflight:
                if order.queue or (dups and not fresh):
                    continue
                if self._logical >= self.config.trials:
                    return "", reused
                if self.budget is not None and not self.budget.can_start():
                    return f"stopped: the time budget ({self.budget.describe()}) fits no further trial", reused
                if self.strategy.is_finished():
                    return "stopped: the strategy has nothing more to propose", reused
                return "stopped: the strategy proposed nothing while no trial was running", reused
            self._wait_one()
            self._housekeeping()

    def _ask_ordered(self) -> tuple[list[int], int]:
        """Ask one at a time while the window has room; each fresh proposal becomes a trial (saved with the
        strategy state), a duplicate of a told result is told it, one of an untold trial waits for it."""
        assert self._order is not None
        order = self._order
        fresh: list[int] = []
        dups = 0
        while (order.room() and self._logical < self.config.trials and not self.strategy.is_finished()
               and (self.budget is None or self.budget.can_start()) and dups < self.max_consecutive_duplicates):
            asked = self.strategy.ask(1)
            if not asked:
                break
            proposal = asked[0]
            done = self._completed_by_key.get(proposal.key)
            if done is not None:
                self._tell(proposal, done)
                dups += 1
                continue
            if proposal.key in order.pending_keys:
                order.wait(proposal)
                dups += 1
                continue
            with self.store.locked(self.study.id) as conn:
                row = self.store.insert_trials(conn, self.study.id, [NewTrial(
                    key=proposal.key, arch=self.space.to_json(proposal.arch), parent=proposal.parent,
                    budget=proposal.budget, info=proposal.info)], self._seed_of, self.me)[0]
                order.created(row, proposal)
                self._save_state(conn)
            self._attempts[row.number] = 0
            self._logical += 1
            fresh.append(row.number)
        return fresh, dups

    def _tell_next(self) -> None:
        """Tell the next result in trial order (and the duplicates that waited on it); save the strategy."""
        assert self._order is not None
        proposal, result, waits = self._order.pop_ready()
        with self.store.locked(self.study.id) as conn:
            self._tell(proposal, result)
            self._note_complete(proposal.key, result)
            for dup in waits:
                self._tell(dup, result)
            self._save_state(conn)
        if result.state == TrialState.PRUNED:
            self._logical -= 1

    def _restore_order(self) -> None:
        """After a restart: which trials are told, which results wait their turn (nasforge.ordered)."""
        assert self._order is not None
        self._order.restore(self._saved_order, self.store.trials(self.study.id), self.space, self._proposal_of)
        for key in self._order.pending_keys:  # known to the store, not yet to the strategy
            self._completed_by_key.pop(key, None)
