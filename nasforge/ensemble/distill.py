"""Distillation trials (Model Search): a searched student architecture retrained against a teacher's outputs.

The teacher is a trial of the study: a single model or an ensemble (whose "logits" are its combined
log-probabilities). Losses, for student logits s, teacher logits t, labels y and temperature T:

- `mse_logits`: mean of (s - t)^2 over rows and classes;
- `mse_softmax`: mean of (softmax(s) - softmax(t))^2;
- `cross_entropy`: T^2 * mean over rows of -sum softmax(t/T) * log_softmax(s/T) (Hinton et al.'s soft targets);
- `balanced`: CE(s, y) + lambda * cross_entropy(s, t), with lambda ramped linearly over the distillation
  trials from `lambda_min` to `lambda_max`, so later trials lean harder on the teacher.
"""

from __future__ import annotations

import hashlib
import math
import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from nasforge.core.errors import ConfigError, UserError
from nasforge.core.seeding import derive_seed
from nasforge.core.types import JSONDict, Result, TrialSpec, TrialState
from nasforge.data.base import CLASSIFICATION
from nasforge.ensemble.members import DISTILLATION, ENSEMBLE, StudyMembers, kind_of
from nasforge.evaluators.train import TrainEvaluator, _Prepared, _Run
from nasforge.execution.worker import score_of
from nasforge.final import staged_finish
from nasforge.storage.sql import NewTrial, TrialRow

LOSSES = ("mse_logits", "mse_softmax", "cross_entropy", "balanced")
DEFAULT_LOSS = "cross_entropy"
DEFAULT_TEMPERATURE = 2.0


def soft_cross_entropy(student: torch.Tensor, teacher: torch.Tensor, temperature: float) -> torch.Tensor:
    """T^2-scaled cross-entropy of the student's tempered softmax against the teacher's."""
    t = temperature
    target = torch.softmax(teacher / t, dim=1)
    return -(target * torch.log_softmax(student / t, dim=1)).sum(dim=1).mean() * (t * t)


def distill_loss(name: str, student: torch.Tensor, teacher: torch.Tensor, labels: torch.Tensor,
                 temperature: float = DEFAULT_TEMPERATURE, lam: float = 1.0) -> torch.Tensor:
    """One of LOSSES (see the module docstring) for a batch of student and teacher logits."""
    if name == "mse_logits":
        return F.mse_loss(student, teacher)
    if name == "mse_softmax":
        return F.mse_loss(torch.softmax(student, dim=1), torch.softmax(teacher, dim=1))
    if name == "cross_entropy":
        return soft_cross_entropy(student, teacher, temperature)
    if name == "balanced":
        return F.cross_entropy(student, labels) + lam * soft_cross_entropy(student, teacher, temperature)
    raise ConfigError(f"--loss must be one of {', '.join(LOSSES)}, got {name!r}")


def ramp(index: int, count: int, low: float, high: float) -> float:
    """lambda for the index-th of `count` trials: low to high in equal steps (high alone for one trial)."""
    if count <= 1:
        return float(high)
    return float(low + (high - low) * index / (count - 1))


class DistillEvaluator(TrainEvaluator):
    """The train evaluator with the label loss replaced by a distillation loss against `teacher`."""

    def setup(self, teacher: nn.Module, loss: str, temperature: float, lam: float) -> None:
        if loss not in LOSSES:
            raise ConfigError(f"--loss must be one of {', '.join(LOSSES)}, got {loss!r}")
        self.teacher, self.loss_name, self.temperature, self.lam = teacher, loss, float(temperature), float(lam)
        self.teacher.eval()
        self._teacher_cache: tuple[torch.Tensor, torch.Tensor] | None = None

    def _teacher_logits(self, x: torch.Tensor) -> torch.Tensor:
        """The teacher's outputs on the (un-augmented) training rows, computed once per tensor."""
        from nasforge.evaluators.metrics import forward_batched

        if self._teacher_cache is None or self._teacher_cache[0] is not x:
            out = forward_batched(self.teacher, x, 1024 if x.dim() == 4 else 4096).float()
            self._teacher_cache = (x, out)
        return self._teacher_cache[1]

    def _batch_loss(self, run: _Run, data: _Prepared, xb: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        if data.task != CLASSIFICATION:
            raise ConfigError("distillation supports classification studies only")
        if self.augment is None:  # the teacher's outputs on the plain rows, computed once
            target = self._teacher_logits(data.train.x)[idx]
        else:
            with torch.no_grad():
                target = self.teacher(xb).float()
        return distill_loss(self.loss_name, run.net(xb), target, data.train.y[idx], self.temperature, self.lam)


class _Quiet:
    def report(self, step: int, metrics: dict[str, float]) -> None:
        return None


def teacher_module(members: StudyMembers, row: TrialRow) -> nn.Module:
    """The teacher's network (an ensemble's combined module), frozen; no preprocessing (inputs are model-ready)."""
    from nasforge.ensemble.members import load_ensemble
    from nasforge.evaluators.train import load_checkpoint

    if not row.checkpoint or not Path(row.checkpoint).is_file():
        raise UserError(f"teacher trial {row.number} has no saved weights")
    loaded = load_ensemble(row.checkpoint) if kind_of(row) == ENSEMBLE else load_checkpoint(row.checkpoint)
    model: nn.Module = loaded[0]
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def pick_students(members: StudyMembers, max_params: int | None, trials: int,
                  students: Sequence[int] | None = None) -> list[TrialRow]:
    """The best searched architectures with at most `max_params` parameters (or the given trials),
    repeated in order when fewer than `trials` fit."""
    if students:
        pool = [members.row(int(n)) for n in students]
        for r in pool:
            if kind_of(r) == ENSEMBLE:
                raise ConfigError(f"trial {r.number} is an ensemble and cannot be a student")
    else:
        searched = members.searched()
        pool = [r for r in searched if max_params is None or (r.params or 0) <= max_params]
        if not pool:
            smallest = min((r.params or 0 for r in searched), default=None)
            raise UserError(f"study {members.info.name!r}: no searched architecture has at most {max_params} "
                            f"parameters (the smallest has {smallest})")
    return [pool[i % len(pool)] for i in range(trials)]


def distill(members: StudyMembers, teacher: int | None = None, loss: str = DEFAULT_LOSS,
            temperature: float = DEFAULT_TEMPERATURE, lambda_min: float = 0.25, lambda_max: float = 1.0,
            max_params: int | None = None, trials: int = 1, students: Sequence[int] | None = None,
            epochs: int | None = None, require_ensemble: bool = False) -> list[TrialRow]:
    """Train `trials` distilled students and store each as a trial (`info.kind == "distillation"`, `parent` =
    the teacher). The teacher defaults to the study's best complete trial, ensembles included. A student
    already distilled with the same teacher, loss, temperature and lambda is not trained again."""
    if members.task != CLASSIFICATION:
        raise ConfigError("distillation supports classification studies only")
    if loss not in LOSSES:
        raise ConfigError(f"--loss must be one of {', '.join(LOSSES)}, got {loss!r}")
    if trials < 1:
        raise ConfigError(f"--trials must be a positive number (got {trials})")
    if not (temperature > 0 and math.isfinite(temperature)):
        raise ConfigError(f"--temperature must be a positive number (got {temperature})")
    if max_params is not None and max_params < 1:
        raise ConfigError(f"--max-params must be a positive number (got {max_params})")
    if lambda_min < 0 or lambda_max < 0:
        raise ConfigError(f"lambda must be >= 0 (got {lambda_min}, {lambda_max})")
    teacher_row = members.row(teacher) if teacher is not None else members.best()
    if require_ensemble and kind_of(teacher_row) != ENSEMBLE:
        raise ConfigError(f"trial {teacher_row.number} is not an ensemble trial")
    teacher_net = teacher_module(members, teacher_row)
    chosen = pick_students(members, max_params, trials, students)
    config = dict(members.info.config["evaluator_config"])
    if epochs is not None:
        config.update(epochs=int(epochs), steps=None)
    evaluator = DistillEvaluator(**config)
    evaluator._dataset = members.dataset
    existing = {r.key for r in members.rows()}
    space_name, space_config = members.info.config["space"], members.info.config.get("space_config", {})
    out: list[TrialRow] = []
    for i, student in enumerate(chosen):
        lam = ramp(i, len(chosen), lambda_min, lambda_max) if loss == "balanced" else None
        key = (f"distill:{teacher_row.number}:{loss}:{temperature:g}:{'-' if lam is None else f'{lam:g}'}:"
               f"{'' if epochs is None else f'e{int(epochs)}:'}{student.key}")
        if key in existing:
            continue
        existing.add(key)
        out.append(_one(members, evaluator, teacher_net, teacher_row, student, key, loss, temperature, lam,
                        max_params, space_name, space_config))
    return out


def _one(members: StudyMembers, evaluator: DistillEvaluator, teacher: nn.Module, teacher_row: TrialRow,
         student: TrialRow, key: str, loss: str, temperature: float, lam: float | None, max_params: int | None,
         space_name: str, space_config: JSONDict) -> TrialRow:
    from nasforge.core import registry

    info = members.info
    seed = derive_seed(int(info.config.get("seed", 0)), int(hashlib.sha1(key.encode()).hexdigest()[:7], 16))
    folder = members.trials_dir()
    staging = folder / f".staging-{hashlib.sha1(key.encode()).hexdigest()[:12]}"
    shutil.rmtree(staging, ignore_errors=True)
    spec = TrialSpec(study=info.name, number=-1, arch=student.arch, seed=seed, space=space_name,
                     space_config=space_config, evaluator="train", evaluator_config=info.config["evaluator_config"],
                     budget={}, objective=info.objective, direction=info.direction, workdir=str(staging))
    evaluator.setup(teacher, loss, temperature, 1.0 if lam is None else lam)
    space = registry.create("space", space_name, **space_config)
    start = time.perf_counter()
    try:
        result = evaluator.evaluate(space.from_json(student.arch), spec, _Quiet(), space=space)
    except UserError:
        raise
    except Exception as exc:  # a failed training is a failed trial, as in the runner
        result = Result(TrialState.FAILED, error=f"{type(exc).__name__}: {exc}",
                        duration=time.perf_counter() - start)
    if result.state == TrialState.COMPLETE:
        result.score = score_of(result.metrics, info.objective, info.direction)
        if result.score is None:
            result = Result(TrialState.FAILED, error=f"objective {info.objective} is not finite",
                            metrics=result.metrics, duration=result.duration)
    extra: dict[str, Any] = {"kind": DISTILLATION, "teacher": teacher_row.number,
                             "teacher_kind": kind_of(teacher_row), "loss": loss, "lambda": lam,
                             "temperature": temperature, "student": student.number, "max_params": max_params,
                             "epochs": evaluator.epochs if evaluator.steps is None else None}

    new = NewTrial(key=key, arch=student.arch, parent=teacher_row.number, info=extra)
    try:
        row, _ = members.add_trial(new, seed, staged_finish(result, staging, folder))
    finally:
        shutil.rmtree(staging, ignore_errors=True)  # left behind only when another command stored it first
    return row
