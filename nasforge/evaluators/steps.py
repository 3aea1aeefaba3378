"""The train evaluator's training steps: optimizers, losses, one epoch over batches or BPTT windows, and
the recurrent-state helpers the one-shot methods share."""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from nasforge.core.errors import ConfigError
from nasforge.core.types import JSONDict
from nasforge.data.augment import Augment
from nasforge.data.base import CLASSIFICATION, PAD_LABEL
from nasforge.data.text import batchify, bptt_windows
from nasforge.evaluators.devices import autocast
from nasforge.evaluators.train_data import TargetScale, _Prepared
from nasforge.evaluators.train_options import OPTIMIZERS
from nasforge.models.tricks import FinalTraining

# Parallel streams when scoring a language model: 64 scores 3x faster than the papers' 10 on a CPU and moves
# perplexity by well under 1%; give eval_batch_size=10 for numbers comparable to published ones.
LM_EVAL_BATCH = 64


def _fused(params: list[nn.Parameter]) -> bool | None:
    """One kernel over all parameters instead of one per tensor (small CNNs have many small tensors).

    None (torch's own choice) where a parameter is elsewhere or of another kind."""
    if params and all(p.device.type in ("cpu", "cuda") and p.dtype in (torch.float32, torch.float64)
                      and not p.is_sparse for p in params):
        return True
    return None


def make_optimizer(params: list[nn.Parameter], hp: JSONDict) -> torch.optim.Optimizer:
    """`hp`: optimizer, learning_rate, and optionally momentum (SGD, default 0.9), nesterov, weight_decay."""
    name, lr = str(hp["optimizer"]), float(hp["learning_rate"])
    decay = float(hp.get("weight_decay") or 0.0)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=decay, fused=_fused(params))
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=decay, fused=_fused(params))
    if name == "sgd":
        momentum = float(hp.get("momentum", 0.9))
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=decay,
                               nesterov=bool(hp.get("nesterov", False)) and momentum > 0, fused=_fused(params))
    if name == "rmsprop":
        return torch.optim.RMSprop(params, lr=lr, weight_decay=decay)
    raise ConfigError(f"unknown optimizer {name!r}; choose one of: {', '.join(OPTIMIZERS)}")


def _warm_up_torch() -> None:
    """One tiny optimizer step: torch imports its optimizers' machinery (torch._dynamo, over a second) on the
    first optimizer made in a process, which would otherwise be counted in a worker's first trial."""
    weight = nn.Parameter(torch.zeros(1))
    optimizer = make_optimizer([weight], {"optimizer": "adam", "learning_rate": 1e-3})
    (weight * 2.0).sum().backward()
    optimizer.step()


def detach_state(state: Any) -> Any:
    """A recurrent state (a tensor, or tuples/lists of them) cut from the graph of the last window."""
    if isinstance(state, torch.Tensor):
        return state.detach()
    if isinstance(state, tuple | list):
        return type(state)(detach_state(s) for s in state)
    return state


def lm_forward(model: nn.Module, x: torch.Tensor, state: Any) -> tuple[torch.Tensor, Any]:
    """Logits (batch, T, vocab) and the next state.

    A model with `run(ids, state) -> (logits, state)` (nasforge.models.rnn.LanguageModel) or whose
    forward returns `(logits, state)` carries its state; one whose forward returns bare logits is stateless.
    """
    runner = getattr(model, "run", None)
    if not callable(runner):
        runner = (lambda ids, _: model(ids)) if state is None else model
    out = runner(x, state)
    if isinstance(out, tuple | list):
        return out[0], out[1] if len(out) > 1 else None
    return out, None

@dataclass
class _Run:
    """The moving parts of one trial's training loop."""

    model: nn.Module
    net: nn.Module
    optimizer: torch.optim.Optimizer
    trainable: list[nn.Parameter]
    clip: float | None
    total_steps: int
    step_scheduler: torch.optim.lr_scheduler.LRScheduler | None
    generator: torch.Generator
    augment_generator: torch.Generator
    channels_last: bool
    precision: str = "fp32"
    step: int = 0
    deadline: float | None = None  # time.time() at which training stops (a search's time budget)
    tricks: FinalTraining | None = None
    label_smoothing: float = 0.0

    def out_of_time(self) -> bool:
        return self.deadline is not None and time.time() >= self.deadline

    def precision_context(self) -> contextlib.AbstractContextManager[Any]:
        return autocast(self.model, self.precision)

class TrainingSteps:
    """Training epochs and steps; mixed into the train evaluator (distillation overrides `_batch_loss`)."""

    batch_size: int
    augment: Augment | None

    # ---- training epochs ----------------------------------------------------------------
    def _epoch(self, run: _Run, data: _Prepared, batches: list[tuple[int, int]]) -> tuple[float, int]:
        """One shuffled pass over the (sub)set; returns (summed loss, examples seen)."""
        model, device = run.model, data.train.x.device
        model.train()
        x, y = data.train.x, data.train.y
        perm = torch.randperm(len(y), generator=run.generator).to(device)
        loss_sum = torch.zeros((), device=device)
        seen = 0
        for i, (s, e) in enumerate(batches):
            if run.step >= run.total_steps or (i % 16 == 15 and run.out_of_time()):
                break
            idx = perm[s:e]
            xb = x[idx]
            if self.augment is not None:
                xb = self.augment(xb, run.augment_generator)
            if run.channels_last:
                xb = xb.contiguous(memory_format=torch.channels_last)
            with run.precision_context():
                loss = self._batch_loss(run, data, xb, idx)
            self._step(run, loss)
            loss_sum += loss.detach() * (e - s)  # summed on the device: one sync per epoch, not per step
            seen += e - s
        return float(loss_sum), seen

    def _batch_loss(self, run: _Run, data: _Prepared, xb: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        """Loss of one (augmented) batch of training rows `idx`; distillation changes only this."""
        target = data.train.y[idx]
        loss = task_loss(run.net(xb), target, data.task, run.label_smoothing, training_members(run.model))
        if run.tricks is None:
            return loss
        criterion = F.cross_entropy if data.task == CLASSIFICATION else F.mse_loss
        return run.tricks.loss(loss, target, criterion)

    def _lm_epoch(self, run: _Run, data: _Prepared, bptt: int) -> tuple[float, int]:
        """One pass over the stream in BPTT windows, state carried (and detached) from window to window."""
        model, device = run.model, data.train.x.device
        model.train()
        x, y = batchify(data.train.x, self.batch_size), batchify(data.train.y, self.batch_size)
        loss_sum = torch.zeros((), device=device)
        seen = 0
        state: Any = None
        for s, e in bptt_windows(x.shape[1], bptt):
            if run.step >= run.total_steps:
                break
            target = y[:, s:e]
            with run.precision_context():
                logits, state = lm_forward(run.net, x[:, s:e], state)
                loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), target.reshape(-1))
            self._step(run, loss)
            state = detach_state(state)
            loss_sum += loss.detach() * target.numel()
            seen += target.numel()
        return float(loss_sum), seen

    @staticmethod
    def _step(run: _Run, loss: torch.Tensor) -> None:
        run.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if run.clip:
            nn.utils.clip_grad_norm_(run.trainable, run.clip)
        run.optimizer.step()
        if run.step_scheduler is not None:
            run.step_scheduler.step()
        run.step += 1

def task_loss(out: torch.Tensor, y: torch.Tensor, task: str, label_smoothing: float = 0.0,
              members: torch.Tensor | None = None) -> torch.Tensor:
    """Cross-entropy (with label smoothing) or MSE. With `members` (batch, members, outputs), as
    nasforge.models.tabular's networks keep in training, each member's own loss, averaged."""
    if members is not None:
        out = members.reshape(-1, members.shape[-1])
        y = y.repeat_interleave(members.shape[1], dim=0)
    if task == CLASSIFICATION:
        if out.dim() == 3:  # one label per step: padded steps carry PAD_LABEL, torch's ignore_index
            out, y = out.reshape(-1, out.shape[-1]), y.reshape(-1)
        return F.cross_entropy(out, y, label_smoothing=label_smoothing, ignore_index=PAD_LABEL)
    return F.mse_loss(out, y)


def training_members(model: nn.Module) -> torch.Tensor | None:
    """The member outputs a network kept from its last training forward (see task_loss), else None."""
    net = model.net if isinstance(model, TargetScale) else model
    members = getattr(net, "training_members", None)
    return members if isinstance(members, torch.Tensor) else None
def lm_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor, bptt: int, batch: int = LM_EVAL_BATCH) -> float:
    """Mean next-token cross-entropy (nats) over a stream, read as `batch` rows in windows with state carried."""
    rows = max(1, min(batch, len(x)))
    xs, ys = batchify(x, rows), batchify(y, rows)
    model.eval()
    total = torch.zeros((), dtype=torch.float64, device=x.device)
    state: Any = None
    with torch.inference_mode():
        for s, e in bptt_windows(xs.shape[1], bptt):
            logits, state = lm_forward(model, xs[:, s:e], state)
            total += F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), ys[:, s:e].reshape(-1),
                                     reduction="sum").double()
    return float(total) / max(1, ys.numel())
