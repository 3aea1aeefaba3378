"""A search's wall-clock budget (`--time-budget SECONDS`), split into phases from measured times.

The phases are: the baseline fit, the trials, and the final step (ensembling the best trials). The
final step's share is held back from the start (`reserve`); the trials get the rest. The runner asks
`can_start()` before making a trial: a trial starts only while the time left before the trials'
deadline fits the median time a trial took so far in this run (any trial may start before one has
finished). Every trial is also handed the deadline itself, and the train evaluator ends a trial that
would run past it after its last whole epoch, keeping its best epoch so far, so the trials never
overrun the final step's share.

The clock starts when the user's command started (`process_started()` for the CLI, the call for the API),
so the data load, the baseline fit and the workers' start-up are all spent from the budget. Worker start-up
is paid once per worker, so it is left out of the per-trial times the planning uses (`record(..., startup=)`).
A budget that ends before any trial could finish is a `ConfigError` (`too_short`), not an empty study.
"""

from __future__ import annotations

import math
import os
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


def process_started() -> float:
    """When this process started, on the time.monotonic() clock (Linux: from /proc; elsewhere: now).

    `nasforge search --time-budget S` counts its S seconds from here, so Python's and torch's own import
    time is spent from the budget too, as the user's wall clock sees it."""
    now = time.monotonic()
    try:
        with open("/proc/self/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
        started_ticks = int(fields[19])  # field 22 of stat(5): start time after boot, in clock ticks
        with open("/proc/uptime", "rb") as f:
            uptime = float(f.read().split()[0])
        age = uptime - started_ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return now
    return now - age if 0.0 <= age < 3600.0 else now  # a clock oddity (suspend, containers): start now


def too_short(budget: TimeBudget) -> ConfigError:
    """The one-line error when the budget ended before any trial finished."""
    return ConfigError(f"the time budget of {budget.seconds:g}s ended before any trial finished "
                       f"({budget.elapsed():.1f}s went on loading the data, the baseline fit and starting the "
                       "workers); give a larger --time-budget")


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
    def record(self, seconds: float, startup: float = 0.0) -> None:
        """How long one trial took from submission to result (a stacked group's trials all took its time),
        less `startup`, the seconds its worker spent starting (paid once per worker, not per trial)."""
        if math.isfinite(seconds) and seconds >= 0:
            spent = seconds - startup if math.isfinite(startup) and startup > 0.0 else seconds
            self._latencies.append(max(0.0, float(spent)))

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
