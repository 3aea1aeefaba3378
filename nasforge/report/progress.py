"""A one-line live view of a search: done, running, failed, best so far, elapsed and ETA (or time left)."""

from __future__ import annotations

import sys
from typing import Any

from tqdm import tqdm


class ProgressBar:
    """`total` None: trials until a time budget is spent. `budget` (a nasforge.budget.TimeBudget) adds the
    seconds left of it to every update."""

    def __init__(self, total: int | None, initial: int = 0, objective: str = "score", enabled: bool = True,
                 budget: Any = None) -> None:
        self.objective = objective
        self.budget = budget
        self._bar = tqdm(total=total, initial=initial, unit="trial", dynamic_ncols=True, file=sys.stderr,
                         disable=not enabled, desc="search")
        self._last = initial

    def update(self, *, done: int, running: int, failed: int, best: float | None) -> None:
        if done > self._last:
            self._bar.update(done - self._last)
            self._last = done
        best_text = "-" if best is None else f"{best:.4g}"
        left = "" if self.budget is None else f" left={max(0.0, self.budget.left()):.0f}s"
        self._bar.set_postfix_str(f"running={running} failed={failed} best {self.objective}={best_text}{left}",
                                  refresh=True)

    def close(self) -> None:
        self._bar.close()
