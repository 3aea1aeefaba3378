"""Model Search's ensembling schedules inside a search (`nasforge search --ensemble-schedule ...`).

The search runs in phases (the ordinary runner, driven to an intermediate trial count); between phases
ensemble trials are added to the store. `--trials` stays the total: searched and ensemble trials both
count. Each step is decided from what the store holds, so a killed scheduled search resumes like any other.

- `nonadaptive`: search `pool` trials (default 80% of the budget); every later trial is an ensemble of
  `width` members drawn from the best `candidates` searched trials: the first draw is the best `width`,
  later draws are seeded random subsets (an already stored ensemble is never repeated).
- `adaptive`: rounds of `every` searched trials; after each round the best trial so far on validation (its
  prior: a searched model or an ensemble, as in Model Search) grows by the round's trial that improves it
  most; a prior with `width` members swaps its least useful member for it (nasforge.ensemble.adaptive).
- `intermixed`: every `every`-th trial is an ensembling trial over the best `candidates` searched so far.

Members are combined with `method` (average, weighted, greedy: see nasforge.ensemble.selection) over
`combine` (probabilities or logits).
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from nasforge.config import SearchConfig
from nasforge.core.errors import ConfigError
from nasforge.core.protocols import Backend
from nasforge.core.types import JSONDict, TrialState
from nasforge.ensemble.combine import COMBINES, PROBABILITIES
from nasforge.ensemble.members import ENSEMBLE, StudyMembers, kind_of
from nasforge.ensemble.selection import METHODS, select
from nasforge.storage.sql import Store, TrialRow

SCHEDULES = ("nonadaptive", "adaptive", "intermixed")
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAILED)
MAX_DRAWS = 50


@dataclass(frozen=True)
class Schedule:
    """Options of one schedule; None means the schedule's default (see the module docstring)."""

    name: str
    pool: int | None = None
    width: int = 3
    candidates: int = 5
    every: int = 5
    method: str = "average"
    combine: str = PROBABILITIES
    seed: int = 0

    def pool_size(self, trials: int) -> int:
        return self.pool if self.pool is not None else max(1, math.ceil(0.8 * trials))


def make_schedule(name: str, options: JSONDict | None = None, seed: int = 0) -> Schedule:
    """Validated schedule from `--ensemble-schedule NAME` and `--ensemble-option KEY=VALUE` pairs."""
    if name not in SCHEDULES:
        raise ConfigError(f"--ensemble-schedule must be one of {', '.join(SCHEDULES)}, got {name!r}")
    options = dict(options or {})
    fields = {f.name for f in dataclasses.fields(Schedule)} - {"name", "seed"}
    unknown = sorted(set(options) - fields)
    if unknown:
        raise ConfigError(f"unknown --ensemble-option {', '.join(unknown)}; choose from: {', '.join(sorted(fields))}")
    for key in ("pool", "width", "candidates", "every"):
        value = options.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise ConfigError(f"--ensemble-option {key} must be a positive integer, got {value!r}")
    if options.get("method", "average") not in METHODS:
        raise ConfigError(f"--ensemble-option method must be one of {', '.join(METHODS)}, "
                          f"got {options['method']!r}")
    if options.get("combine", PROBABILITIES) not in COMBINES:
        raise ConfigError(f"--ensemble-option combine must be one of {', '.join(COMBINES)}, "
                          f"got {options['combine']!r}")
    schedule = Schedule(name=name, seed=seed, **options)
    if name == "adaptive" and schedule.width < 2:
        raise ConfigError("--ensemble-option width must be at least 2 for the adaptive schedule")
    if name == "intermixed" and schedule.every < 2:
        raise ConfigError("--ensemble-option every must be at least 2 for the intermixed schedule")
    return schedule


@dataclass
class Step:
    """Either search until `target` trials are finished, or store an ensemble of `members` (weights by `method`)."""

    target: int | None = None
    members: list[TrialRow] | None = None
    extra: JSONDict | None = None
    weights: list[float] | None = None


def _searched_count(rows: list[TrialRow]) -> int:
    retried = {r.retry_of for r in rows if r.retry_of is not None}
    return sum(1 for r in rows if r.state in FINISHED and kind_of(r) == "search" and r.number not in retried)


def _schedule_ensembles(rows: list[TrialRow], name: str) -> list[TrialRow]:
    return [r for r in rows if kind_of(r) == ENSEMBLE and r.info.get("schedule") == name]


def _weights(members: StudyMembers, rows: list[TrialRow], schedule: Schedule, size: int) -> list[float]:
    terms = [members.terms(r, schedule.combine) for r in rows]
    return select(schedule.method, terms, members.y_valid, members.task, schedule.combine, size).weights


def count_finished(rows: list[TrialRow]) -> int:
    """Finished trials as `--trials` counts them: a failure and its retries are one trial."""
    retried = {r.retry_of for r in rows if r.retry_of is not None}
    return sum(1 for r in rows if r.state in FINISHED and r.number not in retried)


def next_step(schedule: Schedule, members: StudyMembers, rows: list[TrialRow], total: int,
              skip: set[str]) -> Step:
    """What to do next, from the store's trials alone; `skip` holds ensemble keys already tried this run."""
    finished = count_finished(rows)
    if schedule.name == "nonadaptive":
        pool = schedule.pool_size(total)
        searched = _searched_count(rows)
        if searched < pool:
            return Step(target=finished + pool - searched)
        best = members.searched(rows)[: schedule.candidates]
        width = min(schedule.width, len(best))
        if width < 2:
            return Step(target=finished + 1)
        start = len(_schedule_ensembles(rows, "nonadaptive"))
        for draw in range(start, start + MAX_DRAWS):
            if draw == 0:
                chosen = best[:width]
            else:
                rng = np.random.default_rng([schedule.seed, draw])
                chosen = [best[i] for i in sorted(rng.choice(len(best), size=width, replace=False))]
            key = ",".join(str(r.number) for r in chosen)
            if key not in skip:
                skip.add(key)
                return Step(members=chosen, extra={"schedule": "nonadaptive", "draw": draw},
                            weights=_weights(members, chosen, schedule, width))
        return Step(target=finished + 1)  # every draw is stored already: search instead
    if schedule.name == "adaptive":
        return _adaptive_step(schedule, members, rows, finished)
    # intermixed: the trial that would finish as number `finished` is an ensembling trial when it is every-th
    if (finished + 1) % schedule.every == 0:
        best = members.searched(rows)[: schedule.candidates]
        size = min(schedule.width, len(best))
        if size >= 2 and f"slot{finished}" not in skip:
            skip.add(f"slot{finished}")
            return Step(members=best, extra={"schedule": "intermixed"},
                        weights=_weights(members, best, schedule, size))
        return Step(target=finished + 1)  # nothing new to ensemble: this slot is searched
    target = finished + 1
    while (target + 1) % schedule.every != 0 and target < total:
        target += 1
    return Step(target=target)


def _adaptive_step(schedule: Schedule, members: StudyMembers, rows: list[TrialRow], finished: int) -> Step:
    """Rounds of `every` searched trials; after each, the best trial so far (a searched model or an ensemble)
    grows by the trial of the rounds since the last adaptive ensemble that improves it most (see
    nasforge.ensemble.adaptive). A round that adds nothing folds its trials into the next one."""
    from nasforge.ensemble.adaptive import best_so_far, grow, prior_members

    retried = {r.retry_of for r in rows if r.retry_of is not None}
    searched = [r for r in sorted(rows, key=lambda r: r.number)
                if kind_of(r) == "search" and r.state in FINISHED and r.number not in retried]
    made = _schedule_ensembles(rows, "adaptive")
    done = max((int(r.info.get("round", 0)) for r in made), default=0)
    round_ = len(searched) // schedule.every
    if round_ <= done:
        return Step(target=finished + (done + 1) * schedule.every - len(searched))
    prior = best_so_far(members, rows)
    if prior is None:
        return Step(target=finished + 1)
    base = prior_members(members, prior)
    fresh = members.searched(searched[done * schedule.every: round_ * schedule.every])
    grown = grow(members, base, fresh, schedule.width, schedule.combine)
    if len(grown) < 2 or {r.number for r in grown} == {r.number for r in base}:
        return Step(target=finished + 1)  # nothing of these rounds helps: search on, they join the next round
    weights = [1.0] * len(grown) if schedule.method == "average" else _weights(members, grown, schedule, len(grown))
    return Step(members=grown, weights=weights,
                extra={"schedule": "adaptive", "round": round_, "prior": prior.number})


class _KeepOpen:
    """A progress bar the phase runners update but do not close."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def update(self, *, done: int, running: int, failed: int, best: float | None) -> None:
        if self.inner is not None:
            self.inner.update(done=done, running=running, failed=failed, best=best)

    def close(self) -> None:
        return None


def run_scheduled(config: SearchConfig, store: Store, backend: Backend, progress: Any, schedule: Schedule,
                  budget: Any = None) -> Any:
    """Drive the study to `config.trials` finished trials, searched and ensemble trials together (or until
    the time budget, a nasforge.budget.TimeBudget, fits no further trial)."""
    from nasforge.runner import Runner, RunSummary

    start = time.perf_counter()
    keep = _KeepOpen(progress)
    reused, new_numbers, reason, broken = 0, [], "", False
    members: StudyMembers | None = None
    skip: set[str] = set()
    study = None
    try:
        while True:
            runner_probe = Runner(config, store, backend, keep, budget)
            study = runner_probe.study
            rows = store.trials(study.id)
            finished = count_finished(rows)
            if finished >= config.trials:
                break
            members = members or StudyMembers(store, study)
            step = next_step(schedule, members, rows, config.trials, skip)
            if step.members is not None:
                assert members is not None and step.weights is not None
                picked = [(r, w) for r, w in zip(step.members, step.weights) if w > 0]
                row, created = members.add_ensemble([r for r, _ in picked], [w for _, w in picked],
                                                    schedule.combine, schedule.method, step.extra)
                if created:
                    new_numbers.append(row.number)
                    keep.update(done=finished + 1, running=0, failed=0, best=None)
                    continue
                if schedule.name != "adaptive":
                    continue  # the next step tries another draw or searches this slot
                step = Step(target=finished + 1)  # stored already (made by hand): search this slot instead
            target = min(config.trials, max(step.target or 0, finished + 1))
            runner_probe.config = dataclasses.replace(config, trials=target)
            summary = runner_probe.run()
            reused += summary.reused
            new_numbers.extend(summary.new_trials)
            if summary.broken or (summary.stopped_reason and summary.finished < target):
                reason, broken = summary.stopped_reason, summary.broken
                break
    finally:
        if progress is not None:
            progress.close()
    assert study is not None
    return RunSummary(study=study, finished=store.count(study.id, list(FINISHED)),
                      complete=store.count(study.id, [TrialState.COMPLETE]),
                      failed=store.count(study.id, [TrialState.FAILED]), reused=reused,
                      elapsed=time.perf_counter() - start, stopped_reason=reason, new_trials=new_numbers,
                      broken=broken)
