"""A search's wall-clock budget (`--time-budget SECONDS`), split into phases from measured times.

The phases are: the baseline fit, the trials, and the final step (ensembling the best trials). The
final step's share is held back from the start (`reserve`); the trials get the rest. The runner asks
`can_start()` before making a trial: a trial starts only while the time left before the trials'
deadline fits the median time a trial took so far in this run (any trial may start before one has
finished). Every trial is also handed the deadline itself, and the train evaluator ends a trial that
would run past it after its last whole epoch, keeping its best epoch so far, so the trials never
overrun the final step's share.
"""

from __future__ import annotations

import math
import statistics
import time

from nasforge.core.errors import ConfigError

# Held back for the final step: ensembling reads each candidate's stored outputs (computed once from its
# checkpoint) and runs greedy selection; a few seconds for tables of tens of thousands of rows.
RESERVE_FRACTION = 0.04
RESERVE_MIN_S = 3.0
RESERVE_MAX_S = 30.0


def check_budget(seconds: float | None) -> float | None:
    """None, or a positive finite number of seconds (a ConfigError naming the flag otherwise)."""
    if seconds is None:
        return None
    if isinstance(seconds, bool) or not isinstance(seconds, int | float) or not math.isfinite(seconds) \
            or seconds <= 0:
        raise ConfigError(f"--time-budget must be a positive number of seconds (got {seconds!r})")
    return float(seconds)


class TimeBudget:
    """Seconds from `start` (time.monotonic) for the whole search; deadlines as both clocks.

    `deadline()` is the trials' deadline on the wall clock (time.time), so a worker process can compare
    it with its own clock; everything else here uses the monotonic clock.
    """

    def __init__(self, seconds: float, start: float | None = None, reserve: float | None = None) -> None:
        self.seconds = float(seconds)
        self.start = time.monotonic() if start is None else float(start)
        self._wall_offset = time.time() - time.monotonic()
        if reserve is None:
            reserve = min(RESERVE_MAX_S, max(RESERVE_MIN_S, RESERVE_FRACTION * self.seconds))
        self.reserve = min(float(reserve), 0.5 * self.seconds)
        self._latencies: list[float] = []

    # ---- clocks ----------------------------------------------------------------------------
    def elapsed(self) -> float:
        return time.monotonic() - self.start

    def left(self) -> float:
        """Seconds left of the whole budget (negative once spent)."""
        return self.seconds - self.elapsed()

    def trials_left(self) -> float:
        """Seconds left before the trials' deadline."""
        return self.left() - self.reserve

    def deadline(self) -> float:
        """The trials' deadline as a time.time() value."""
        return self.start + self.seconds - self.reserve + self._wall_offset

    # ---- planning --------------------------------------------------------------------------
    def record(self, seconds: float) -> None:
        """How long one trial took from submission to result (a stacked group's trials all took its time)."""
        if math.isfinite(seconds) and seconds >= 0:
            self._latencies.append(float(seconds))

    def expected_trial(self) -> float | None:
        """The median measured trial time, or None before any trial has finished."""
        return statistics.median(self._latencies) if self._latencies else None

    def can_start(self) -> bool:
        left = self.trials_left()
        if left <= 0:
            return False
        expected = self.expected_trial()
        return expected is None or expected <= left

    def describe(self) -> str:
        return f"{self.seconds:g}s budget, {max(0.0, self.left()):.0f}s left"
