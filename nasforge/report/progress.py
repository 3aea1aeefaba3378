"""A one-line live view of a search: done, running, failed, best so far, elapsed and ETA."""

from __future__ import annotations

import sys

from tqdm import tqdm


class ProgressBar:
    def __init__(self, total: int, initial: int = 0, objective: str = "score", enabled: bool = True) -> None:
        self.objective = objective
        self._bar = tqdm(total=total, initial=initial, unit="trial", dynamic_ncols=True, file=sys.stderr,
                         disable=not enabled, desc="search")
        self._last = initial

    def update(self, *, done: int, running: int, failed: int, best: float | None) -> None:
        if done > self._last:
            self._bar.update(done - self._last)
            self._last = done
        best_text = "-" if best is None else f"{best:.4g}"
        self._bar.set_postfix_str(f"running={running} failed={failed} best {self.objective}={best_text}",
                                  refresh=True)

    def close(self) -> None:
        self._bar.close()
