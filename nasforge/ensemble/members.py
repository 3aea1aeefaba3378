"""A study's trained trials as ensemble members: their validation/test outputs, and ensemble trials in the store.

Each member's raw outputs (logits, or values for regression) on the validation and test splits are kept
in `predictions.npz` beside its checkpoint, computed from the checkpoint the first time they are needed
(and again if the checkpoint changes), so selecting and scoring ensembles never re-runs a model.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from nasforge.core.errors import ConfigError, UserError
from nasforge.core.ranking import best_key
from nasforge.core.types import JSONDict, Result, TrialState, canonical_json
from nasforge.data.base import CLASSIFICATION, REGRESSION, Dataset
from nasforge.ensemble.combine import (
    PROBABILITIES,
    check_combine,
    combined,
    finish,
    member_terms,
    normalise,
    rank,
    scores,
)
from nasforge.storage.sql import NewTrial, Store, StudyInfo, TrialRow

PREDICTIONS_NAME = "predictions.npz"
MANIFEST_NAME = "ensemble.json"
ENSEMBLE = "ensemble"
DISTILLATION = "distillation"
MANIFEST_FORMAT = 1


def kind_of(row: TrialRow) -> str:
    """'ensemble', 'distillation' or 'search' (a trial the search strategy proposed)."""
    return str(row.info.get("kind") or "search")


def standing(metrics: JSONDict, task: str, objective: str, direction: str) -> tuple[float, ...]:
    """Higher is better on validation: the study's objective first (as trials are ranked), then accuracy and
    log-loss (RMSE and R² for regression), so that a tie on the objective goes to the better fit."""
    value = metrics.get(objective)
    head = () if value is None else (float(value) if direction == "maximize" else -float(value),)
    try:
        return head + rank(dict(metrics), task)
    except KeyError:
        return head


def worse_than_best_member(members: Any, picked: Sequence[Any], metrics: JSONDict, combine: str) -> JSONDict:
    """{"worse_than_member": N} when member N alone stands above the ensemble on validation (`standing`):
    such an ensemble is stored, flagged, and ranks below N (its score is at most N's; ties go to the lower
    trial number, and members are always older than their ensemble)."""
    info = getattr(members, "info", None)
    objective = getattr(info, "objective", "valid_accuracy")
    direction = getattr(info, "direction", "maximize")
    best_number, best_standing = None, None
    for r in {r.number: r for r in picked}.values():
        single = scores(finish(members.terms(r, combine), members.task, combine), members.y_valid, members.task,
                        "valid")
        value = standing(single, members.task, objective, direction)
        if best_standing is None or value > best_standing:
            best_number, best_standing = r.number, value
    if best_standing is not None and standing(metrics, members.task, objective, direction) < best_standing:
        return {"worse_than_member": best_number}
    return {}


def ensemble_key(members: Sequence[int], weights: Sequence[float], combine: str) -> str:
    """Never a space key: the prefix differs, and equal member sets with equal weights share it."""
    pairs = sorted(zip((int(m) for m in members), (round(float(w), 6) for w in weights)))
    text = canonical_json({"members": [m for m, _ in pairs], "weights": [w for _, w in pairs], "combine": combine})
    return f"ensemble:{hashlib.sha1(text.encode()).hexdigest()[:16]}"


@dataclass
class Outputs:
    """Raw outputs of one trial: logits (classification; log-probabilities for an ensemble) or values."""

    valid: np.ndarray
    test: np.ndarray | None


def _fingerprint(path: Path) -> str:
    st = path.stat()
    return f"{st.st_size}:{st.st_mtime_ns}"


class StudyMembers:
    """The data of a study trained by the `train` evaluator, and its trials' outputs on it."""

    def __init__(self, store: Store, info: StudyInfo) -> None:
        from nasforge.data.loader import load_dataset

        self.store, self.info = store, info
        config = info.config
        if config.get("evaluator") != "train" or not config.get("evaluator_config", {}).get("data"):
            raise ConfigError(f"study {info.name!r}: ensembles and distillation need trials trained by the train "
                              f"evaluator (this study uses {config.get('evaluator')!r})")
        self.dataset: Dataset = load_dataset(config["evaluator_config"]["data"])
        self.task = self.dataset.spec.task
        if self.dataset.spec.per_step:
            raise ConfigError(f"study {info.name!r} has one label per step: ensembles and distillation of "
                              "per-step sequence models are not supported yet")
        if self.task not in (CLASSIFICATION, REGRESSION):
            raise ConfigError(f"study {info.name!r}: ensembles support classification and regression, "
                              f"not {self.task}")
        self.y_valid = np.asarray(self.dataset.valid.y)
        self.y_test = np.asarray(self.dataset.test.y) if self.dataset.test is not None and len(self.dataset.test) \
            else None
        self._outputs: dict[int, Outputs] = {}

    # ---- trials --------------------------------------------------------------------------------
    def rows(self) -> list[TrialRow]:
        return self.store.trials(self.info.id)

    def row(self, number: int) -> TrialRow:
        row = self.store.trial(self.info.id, number)
        if row is None:
            raise UserError(f"study {self.info.name!r} has no trial {number}")
        if row.state != TrialState.COMPLETE or row.score is None:
            raise UserError(f"trial {number} of study {self.info.name!r} is {row.state.value}, not complete")
        return row

    def searched(self, rows: Sequence[TrialRow] | None = None) -> list[TrialRow]:
        """Complete searched trials with saved weights, best first (`core.ranking.best_key`)."""
        rows = self.rows() if rows is None else rows
        usable = [r for r in rows if r.state == TrialState.COMPLETE and r.score is not None
                  and kind_of(r) == "search" and r.checkpoint and Path(r.checkpoint).is_file()]
        return sorted(usable, key=best_key, reverse=True)

    def best(self, rows: Sequence[TrialRow] | None = None) -> TrialRow:
        rows = self.rows() if rows is None else rows
        complete = [r for r in rows if r.state == TrialState.COMPLETE and r.score is not None and r.checkpoint]
        if not complete:
            raise UserError(f"study {self.info.name!r} has no complete trial with saved weights")
        return max(complete, key=best_key)

    # ---- outputs -------------------------------------------------------------------------------
    def outputs(self, row: TrialRow) -> Outputs:
        """Cached in memory and in `predictions.npz`; an ensemble trial combines its members'."""
        if row.number in self._outputs:
            return self._outputs[row.number]
        out = self._ensemble_outputs(row.info) if kind_of(row) == ENSEMBLE else self._single_outputs(row)
        self._outputs[row.number] = out
        return out

    def _single_outputs(self, row: TrialRow) -> Outputs:
        if not row.checkpoint or not Path(row.checkpoint).is_file():
            raise UserError(f"trial {row.number} of study {self.info.name!r} has no saved weights "
                            f"({row.checkpoint or 'the evaluator saved none'})")
        checkpoint = Path(row.checkpoint)
        cache = checkpoint.parent / PREDICTIONS_NAME
        stamp = _fingerprint(checkpoint)
        if cache.is_file():
            try:
                with np.load(cache, allow_pickle=False) as z:
                    if str(z["fingerprint"]) == stamp and len(z["valid"]) == len(self.y_valid):
                        test = z["test"] if "test" in z.files else None
                        return Outputs(np.asarray(z["valid"]), None if test is None else np.asarray(test))
            except (OSError, ValueError, KeyError):
                pass  # unreadable or stale: recompute below
        out = self._compute(checkpoint)
        arrays: dict[str, Any] = {"valid": out.valid, "fingerprint": np.asarray(stamp)}
        if out.test is not None:
            arrays["test"] = out.test
        tmp = cache.with_suffix(".tmp.npz")
        try:
            np.savez(tmp, **arrays)
            os.replace(tmp, cache)
        except OSError:
            pass  # a read-only study folder still ensembles, just without the cache
        return out

    def _compute(self, checkpoint: Path) -> Outputs:
        import torch

        from nasforge.evaluators.metrics import forward_batched
        from nasforge.evaluators.train import load_checkpoint

        model, _ = load_checkpoint(checkpoint)

        def run(x: np.ndarray) -> np.ndarray:
            xt = torch.as_tensor(np.asarray(x, dtype=np.float32))
            out = forward_batched(model, xt, 1024 if xt.dim() == 4 else 4096)
            return np.asarray(out.float().cpu().numpy(), dtype=np.float32)

        test = self.dataset.test
        return Outputs(run(self.dataset.valid.x), run(test.x) if test is not None and len(test) else None)

    def terms(self, row: TrialRow, combine: str, split: str = "valid") -> np.ndarray:
        out = self.outputs(row)
        data = out.valid if split == "valid" else out.test
        if data is None:
            raise UserError(f"study {self.info.name!r} has no {split} split")
        return member_terms(data, self.task, combine)

    def _ensemble_outputs(self, info: JSONDict) -> Outputs:
        members = [self.row(int(m)) for m in info["members"]]
        weights, combine = list(info["weights"]), str(info.get("combine", PROBABILITIES))
        parts: list[np.ndarray | None] = []
        for split in ("valid", "test"):
            if split == "test" and self.y_test is None:
                parts.append(None)
                continue
            pred = combined([self.terms(m, combine, split) for m in members], weights, self.task, combine)
            parts.append(np.log(np.clip(pred, 1e-12, None)) if self.task == CLASSIFICATION else pred)
        assert parts[0] is not None
        return Outputs(parts[0], parts[1])

    # ---- ensemble trials -----------------------------------------------------------------------
    def ensemble_metrics(self, members: Sequence[TrialRow], weights: Sequence[float], combine: str
                         ) -> dict[str, float]:
        metrics = scores(combined([self.terms(m, combine) for m in members], weights, self.task, combine),
                         self.y_valid, self.task, "valid")
        if self.y_test is not None:
            test = [self.terms(m, combine, "test") for m in members]
            metrics.update(scores(combined(test, weights, self.task, combine), self.y_test, self.task, "test"))
        return metrics

    def add_ensemble(self, members: Sequence[TrialRow], weights: Sequence[float], combine: str = PROBABILITIES,
                     method: str = "average", extra: JSONDict | None = None) -> tuple[TrialRow, bool]:
        """Store an ensemble trial (or find the identical stored one); returns (row, created). Every way of
        making one comes through here, so each is checked against its best member (`worse_than_best_member`)."""
        start = time.perf_counter()
        check_combine(combine)
        merged: dict[int, float] = {}
        for m, w in zip(members, normalise(weights)):
            if w > 0:
                merged[m.number] = merged.get(m.number, 0.0) + w
        numbers = sorted(merged)
        by_number = {m.number: m for m in members}
        rows = [by_number[n] for n in numbers]
        for r in rows:
            if kind_of(r) == ENSEMBLE:
                raise ConfigError(f"trial {r.number} is itself an ensemble; members must be single models")
        final = [round(merged[n], 6) for n in numbers]
        key = ensemble_key(numbers, final, combine)
        for existing in self.rows():
            if existing.key == key:
                return existing, False
        metrics = self.ensemble_metrics(rows, final, combine)
        params = sum(int(r.params or 0) for r in rows)
        metrics.update(params=float(params), members=float(len(rows)))
        flops = [r.metrics.get("flops") for r in rows]
        if all(f is not None for f in flops):
            metrics["flops"] = float(sum(f for f in flops if f is not None))
        value = metrics.get(self.info.objective)
        if value is None:
            raise ConfigError(f"study {self.info.name!r}: an ensemble cannot score objective {self.info.objective}")
        score = value if self.info.direction == "maximize" else -value
        parts = [f"{'' if abs(w * len(rows) - 1) < 1e-4 else f'{w:.2f}*'}#{n}" for n, w in zip(numbers, final)]
        description = f"ensemble {method}/{combine}: " + " + ".join(parts)
        info: JSONDict = {"kind": ENSEMBLE, "members": numbers, "weights": final, "combine": combine,
                          "method": method, **worse_than_best_member(self, rows, metrics, combine), **(extra or {})}
        arch: JSONDict = {"kind": ENSEMBLE, "description": description}
        checkpoints = [str(Path(r.checkpoint or "").resolve()) for r in rows]
        manifest = {"format": MANIFEST_FORMAT, "kind": ENSEMBLE, "members": numbers, "weights": final,
                    "combine": combine, "task": self.task, "checkpoints": checkpoints}
        folder = self.trials_dir()

        def finish(number: int) -> Result:
            target = folder / str(number)
            target.mkdir(parents=True, exist_ok=True)
            path = target / MANIFEST_NAME
            rel = [os.path.relpath(p, target) for p in checkpoints]
            path.write_text(json.dumps({**manifest, "relative": rel}, indent=2))
            return Result(TrialState.COMPLETE, metrics=metrics, score=score, params=params,
                          duration=time.perf_counter() - start, checkpoint=str(path))

        return self.store.add_finished_trial_once(self.info.id, NewTrial(key=key, arch=arch, info=info), seed=0,
                                                  finish=finish)

    def trials_dir(self) -> Path:
        if not self.info.artifact_dir:
            raise ConfigError(f"study {self.info.name!r} has no study folder to write trials into")
        return Path(self.info.artifact_dir) / "trials"

    def add_trial(self, new: NewTrial, seed: int, finish: Callable[[int], Result]) -> tuple[TrialRow, bool]:
        """Insert a finished trial, unless a complete one with its key is stored (then that one, False)."""
        return self.store.add_finished_trial_once(self.info.id, new, seed=seed, finish=finish)


def load_ensemble(path: str | Path, device: str = "cpu") -> tuple[Any, JSONDict]:
    """An ensemble trial's manifest -> (EnsembleModule in eval mode, the first member's checkpoint payload)."""
    from nasforge.ensemble.combine import EnsembleModule
    from nasforge.evaluators.train import load_checkpoint

    path = Path(path)
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise UserError(f"{path}: not a readable ensemble manifest ({exc})") from exc
    models, payload = [], None
    for rel, absolute in zip(manifest.get("relative", manifest["checkpoints"]), manifest["checkpoints"]):
        candidate = (path.parent / rel).resolve()
        member = candidate if candidate.is_file() else Path(absolute)
        if not member.is_file():
            raise UserError(f"ensemble {path}: member checkpoint {absolute} is missing")
        model, member_payload = load_checkpoint(member, device)
        models.append(model)
        payload = payload or member_payload
    assert payload is not None
    module = EnsembleModule(models, manifest["weights"], manifest["combine"], payload["data_spec"]["task"])
    module.eval()
    return module, {**payload, "ensemble": {k: manifest[k] for k in ("members", "weights", "combine")}}
