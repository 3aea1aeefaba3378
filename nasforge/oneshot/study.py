"""A one-shot search as a study: the search phase and the retraining of what it derived, each a trial.

`nasforge search --strategy darts|enas|smash` lands here instead of the ask/tell runner. The search
phase runs in this process (its weights are shared, so it cannot be spread over workers) and is
stored as a `oneshot` trial: the derived architecture, the one-shot metrics (prefixed `oneshot_`, so
they never compete with trained scores on the leaderboard), the per-epoch progress as its curve, and
the ranked candidates. The derived architecture is then trained from scratch by the study's own
evaluator as an ordinary trial (its key is the space's canonical key) linked to the one-shot trial,
so `trials`, `show`, `predict`, `train` and `export` work on it unchanged.

Resuming: running the same command again finds the complete one-shot trial and only retrains what
is missing; a search phase that crashed is run again from the start (it keeps no checkpoint).
"""

from __future__ import annotations

import hashlib
import logging
import time
from typing import Any

from nasforge.config import SearchConfig
from nasforge.core import registry
from nasforge.core.errors import ConfigError, UserError
from nasforge.core.types import Result, TrialState, canonical_json
from nasforge.oneshot.base import OneShotResult
from nasforge.storage.sql import NewTrial, Store, StudyInfo, TrialRow

log = logging.getLogger("nasforge.oneshot")

ONESHOT = "oneshot"
RETRAIN = "retrain"
KEPT_CANDIDATES = 50  # ranked candidates stored with the one-shot trial (SMASH ranks hundreds)
_OWN_METRICS = ("search_seconds", "peak_memory_mb")


def is_oneshot(strategy: str) -> bool:
    return strategy in registry.ONESHOT


def check_config(config: SearchConfig) -> None:
    """Fail before any study exists: a one-shot method needs data to train on and valid options."""
    if config.evaluator != "train":
        raise ConfigError(f"--strategy {config.strategy} trains shared weights on data: it needs the train "
                          f"evaluator (--data), not {config.evaluator!r}")
    registry.create("oneshot", config.strategy, **config.strategy_config)


def oneshot_key(config: SearchConfig) -> str:
    digest = hashlib.sha1(canonical_json({"options": config.strategy_config, "seed": config.seed}).encode())
    return f"{ONESHOT}:{config.strategy}:{digest.hexdigest()[:12]}"


def run_oneshot(config: SearchConfig, store: Store, study: StudyInfo, echo: Any = print) -> list[TrialRow]:
    """Search (unless a complete one-shot trial exists), then retrain the derived architecture.

    Returns the one-shot trial and the retrained trial.
    """
    from nasforge.evaluators.train import TrainEvaluator, resolve_device

    space = registry.create("space", config.space, **config.space_config)
    key = oneshot_key(config)
    found = [r for r in store.trials(study.id, [TrialState.COMPLETE]) if r.key == key]
    if found:
        searched = found[-1]
        echo(f"one-shot search already done: trial {searched.number} (derived {_summary(space, searched.arch)})")
    else:
        evaluator = TrainEvaluator(**config.evaluator_config)
        method = registry.create("oneshot", config.strategy, **config.strategy_config)
        device = resolve_device(str(config.evaluator_config.get("device", "cpu")))
        curve: list[dict[str, float]] = []

        def progress(epoch: int, metrics: dict[str, float]) -> None:
            curve.append({"epoch": float(epoch), **{k: float(v) for k, v in metrics.items()}})
            shown = ", ".join(f"{k} {v:.4g}" for k, v in metrics.items())
            echo(f"{config.strategy} epoch {epoch}: {shown}")
            log.info("%s epoch %d: %s", config.strategy, epoch, shown)

        start = time.perf_counter()
        try:
            found_arch = method.search(space, evaluator.dataset(), seed=config.seed, device=device,
                                       progress=progress)
        except FloatingPointError as exc:  # diverged: a setting to change, not a bug to report
            raise UserError(f"{config.strategy} search diverged ({exc}); try a smaller learning rate") from None
        searched = _store_search(store, study, config, space, key, found_arch, curve, time.perf_counter() - start)
        echo(f"one-shot search done in {time.perf_counter() - start:.0f} s: trial {searched.number}, "
             f"derived {_summary(space, searched.arch)}")
    retrained = _retrain(store, study, config, space, searched, echo)
    return [searched, retrained]


def _store_search(store: Store, study: StudyInfo, config: SearchConfig, space: Any, key: str,
                  found: OneShotResult, curve: list[dict[str, float]], seconds: float) -> TrialRow:
    metrics = {_prefixed(k): float(v) for k, v in found.metrics.items()}
    metrics.setdefault("search_seconds", seconds)
    candidates = [{"architecture": space.to_json(arch), "summary": _summary(space, space.to_json(arch)),
                   "score": float(score)} for arch, score in found.candidates[:KEPT_CANDIDATES]]
    info = {"kind": ONESHOT, "method": config.strategy, "options": config.strategy_config,
            "candidates": candidates, "state": found.state}
    result = Result(TrialState.COMPLETE, metrics=metrics, score=None, duration=seconds, curve=curve)
    return store.add_finished_trial(study.id, NewTrial(key=key, arch=space.to_json(found.arch), info=info),
                                    seed=config.seed, finish=lambda number: result)


def _retrain(store: Store, study: StudyInfo, config: SearchConfig, space: Any, searched: TrialRow,
             echo: Any) -> TrialRow:
    """The derived architecture trained from scratch with the study's evaluator: an ordinary trial."""
    from nasforge.final import Recipe, _train

    arch = space.from_json(searched.arch)
    recipe = Recipe(space=config.space, space_config=config.space_config, arch=searched.arch,
                    evaluator=config.evaluator, evaluator_config=config.evaluator_config, budget={},
                    seed=config.seed, objective=config.objective, direction=config.direction)
    new = NewTrial(key=space.key(arch), arch=searched.arch, parent=searched.number,
                   info={"kind": RETRAIN, "of": searched.number, "method": config.strategy})
    row, _ = _train(store, study, recipe, new, _EchoEpochs(echo))  # a failure is stored and counted by the caller
    return row


class _EchoEpochs:
    def __init__(self, echo: Any) -> None:
        self.echo = echo

    def report(self, step: int, metrics: dict[str, float]) -> None:
        shown = ", ".join(f"{k} {v:.4g}" for k, v in metrics.items() if k.startswith(("train_loss", "valid_")))
        self.echo(f"retrain epoch {step}: {shown}")


def _prefixed(name: str) -> str:
    """One-shot metrics keep out of the objective's column: shared-weight accuracy is not trained accuracy."""
    return name if name in _OWN_METRICS or name.startswith(ONESHOT) else f"{ONESHOT}_{name}"


def _summary(space: Any, arch: Any) -> str:
    try:
        return str(space.summary(space.from_json(arch)))
    except Exception:  # a summary is only for people; never fail a stored search over it
        return str(arch)
