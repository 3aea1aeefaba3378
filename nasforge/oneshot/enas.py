"""ENAS (Pham et al., 2018): an LSTM controller and one supernet whose weights every sampled child shares.

Each epoch alternates two phases:

(a) the shared weights ω are trained on training batches, one architecture drawn from the controller per
    batch (M = 1): a language model walks its stream in truncated-BPTT windows with the recurrent state
    carried across windows (SGD, gradient norm clipped at 0.25); images use SGD with Nesterov momentum,
    a cosine learning rate over the whole search and gradient clipping at 5;
(b) the controller θ is trained with REINFORCE on validation batches: per step one architecture is drawn,
    its reward is measured with the shared weights on the next validation batch (accuracy for images,
    c / perplexity with c = 80 for language models), and Adam follows (R - b) ∇ log π + λ ∇ H(π), with an
    exponential-moving-average baseline b and an entropy bonus λ.

After the last epoch, `derive_samples` architectures are drawn from the controller, each scored on a
validation subset with the shared weights, and the best is returned (to be retrained from scratch as an
ordinary trial). The controller is `nasforge.strategies.reinforce.Controller`, the same policy the
`reinforce` strategy uses (one softmax head per decision name, masks, anchor attention for skips).
"""

from __future__ import annotations

import math
import resource
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from nasforge.core.errors import ConfigError
from nasforge.core.seeding import derive_seed, seed_everything
from nasforge.core.types import Architecture, Decision
from nasforge.data.base import CLASSIFICATION, LANGUAGE_MODEL, Dataset, stratified_order
from nasforge.data.text import batchify, bptt_windows
from nasforge.evaluators.train import lm_forward, lm_loss
from nasforge.oneshot.base import OneShotResult, ProgressFn
from nasforge.oneshot.rnn_supernet import RNNSupernet
from nasforge.strategies.reinforce import Adam, Controller

CNN_SPACES = ("enas_macro", "nb201", "darts", "nasnet")
# ENAS's micro search space (Pham et al., 2018, section 2.3): five ops, all of them in the DARTS vocabulary
ENAS_MICRO_OPS: tuple[str, ...] = ("skip_connect", "sep_conv_3x3", "sep_conv_5x5", "avg_pool_3x3", "max_pool_3x3")
Sampler = Callable[[], Architecture]
MAX_LOG_PPL = 50.0  # a diverged child scores perplexity e^50 (reward ~0), never NaN, so the controller stays sane


class ENAS:
    """Options (constructor keywords, JSON values); defaults are the paper's where they fit a CPU.

    Search: `epochs` (10), `controller_steps` (50) REINFORCE steps per epoch, `train_steps` (None: a full
    pass) shared-weight steps per epoch, `derive_samples` (10) architectures compared at the end,
    `derive_batches` (None: the whole validation split) validation batches each is scored on.
    Shared weights: `batch_size` (64 images / 32 streams), `bptt` (35), `child_lr` (20 for language
    models, 0.05 for images), `child_lr_min` (0.001, images' cosine floor), `lr_decay` (1.0: language
    models' per-epoch factor), `momentum` (0.9), `weight_decay` (1e-7 language models / 1e-4 images),
    `grad_clip` (0.25 / 5.0). Controller: `controller_hidden` (64), `controller_embed` (64),
    `controller_lr` (3.5e-4), `entropy_weight` (1e-4), `baseline_decay` (0.95), `reward_c` (80),
    `init_range` (0.1). `random_baseline` (True): also score `derive_samples` uniform architectures at the
    end (`random_mean_<metric>`). `supernet` (dict): options for a CNN space's `build_supernet`.
    `micro_ops` ("enas"): on the `darts` (micro-cell) space without its own `ops`, search ENAS's five ops
    (identity, 3x3 and 5x5 separable convs, 3x3 average and max pooling); "space" keeps the space's list.
    Resource penalty: `resource_penalty` λ (0: off) makes an image child's reward `accuracy − λ · cost`, cost
    the child's `resource` ("flops", "params" or "latency_ms") as a share of the supernet's most expensive
    choice on every edge: the table DARTS's penalty uses (`nasforge.oneshot.resource`). A difference, not
    MnasNet's `accuracy · (cost / target)^w`: it needs no target, and λ reads as accuracy given up for the
    whole cost. The final candidates are ranked by the same penalised reward.
    """

    name = "enas"

    def __init__(self, *, epochs: int = 10, controller_steps: int = 50, train_steps: int | None = None,
                 derive_samples: int = 10, derive_batches: int | None = None, batch_size: int | None = None,
                 bptt: int = 35, child_lr: float | None = None, child_lr_min: float = 0.001,
                 lr_decay: float = 1.0, momentum: float = 0.9, weight_decay: float | None = None,
                 grad_clip: float | None = None, controller_hidden: int = 64, controller_embed: int = 64,
                 controller_lr: float = 3.5e-4, entropy_weight: float = 1e-4, baseline_decay: float = 0.95,
                 reward_c: float = 80.0, init_range: float = 0.1, random_baseline: bool = True,
                 supernet: dict[str, Any] | None = None, micro_ops: str = "enas", resource_penalty: float = 0.0,
                 resource: str = "flops") -> None:
        from nasforge.oneshot.resource import check_options

        self.resource_penalty, self.resource = check_options("enas", resource_penalty, resource)
        self.table: Any = None  # the running search's ResourceTable, when resource_penalty > 0
        self._costs: dict[tuple[int, ...], float] = {}
        if micro_ops not in ("enas", "space"):
            raise ConfigError(f"enas: micro_ops must be 'enas' or 'space', got {micro_ops!r}")
        self.micro_ops = micro_ops
        for label, value, low in (("epochs", epochs, 1), ("controller_steps", controller_steps, 0),
                                  ("derive_samples", derive_samples, 1), ("bptt", bptt, 1),
                                  ("controller_hidden", controller_hidden, 1),
                                  ("controller_embed", controller_embed, 1)):
            _check_int(label, value, low)
        for label, opt in (("train_steps", train_steps), ("derive_batches", derive_batches),
                           ("batch_size", batch_size)):
            if opt is not None:
                _check_int(label, opt, 1)
        for label, number in (("child_lr", child_lr), ("controller_lr", controller_lr), ("reward_c", reward_c),
                              ("lr_decay", lr_decay), ("init_range", init_range)):
            if number is not None and not (isinstance(number, int | float) and number > 0):
                raise ConfigError(f"enas: {label} must be a positive number, got {number!r}")
        if not (isinstance(baseline_decay, int | float) and 0.0 <= baseline_decay < 1.0):
            raise ConfigError(f"enas: baseline_decay must be in [0, 1), got {baseline_decay!r}")
        for label, number in (("entropy_weight", entropy_weight), ("momentum", momentum),
                              ("child_lr_min", child_lr_min), ("weight_decay", weight_decay),
                              ("grad_clip", grad_clip)):
            if number is not None and not (isinstance(number, int | float) and number >= 0):
                raise ConfigError(f"enas: {label} must be a number >= 0, got {number!r}")
        self.epochs, self.controller_steps, self.train_steps = int(epochs), int(controller_steps), train_steps
        self.derive_samples, self.derive_batches = int(derive_samples), derive_batches
        self.batch_size, self.bptt = batch_size, int(bptt)
        self.child_lr, self.child_lr_min, self.lr_decay = child_lr, float(child_lr_min), float(lr_decay)
        self.momentum, self.weight_decay, self.grad_clip = float(momentum), weight_decay, grad_clip
        self.controller_hidden, self.controller_embed = int(controller_hidden), int(controller_embed)
        self.controller_lr, self.entropy_weight = float(controller_lr), float(entropy_weight)
        self.baseline_decay, self.reward_c, self.init_range = float(baseline_decay), float(reward_c), float(init_range)
        if not isinstance(random_baseline, bool):
            raise ConfigError(f"enas: random_baseline must be true or false, got {random_baseline!r}")
        self.random_baseline = random_baseline
        self.supernet_options = dict(supernet or {})

    # ---- the search ----------------------------------------------------------------------
    def search(self, space: Any, dataset: Dataset, *, seed: int, device: torch.device,
               progress: ProgressFn) -> OneShotResult:
        start = time.perf_counter()
        seed_everything(seed)
        space = self.searched_space(space)
        child = self.make_child(space, dataset, device, seed)
        self.table, self._costs = self.resource_table(child), {}
        agent = ControllerAgent(space, seed=seed, hidden=self.controller_hidden, embed=self.controller_embed,
                                lr=self.controller_lr, entropy_weight=self.entropy_weight,
                                baseline_decay=self.baseline_decay, init_range=self.init_range)
        curves: dict[str, list[float]] = {"reward_curve": [], "entropy_curve": [], "train_loss_curve": []}
        for epoch in range(1, self.epochs + 1):
            train_loss = child.train_epoch(agent.draw, epoch)
            report = {"train_loss": train_loss, **self.controller_phase(agent, child)}
            for key, value in (("reward_curve", report["valid_reward"]),
                               ("entropy_curve", report["controller_entropy"]), ("train_loss_curve", train_loss)):
                curves[key].append(value)
            progress(epoch, report)
        candidates = self.derive(agent, child)
        best, score = candidates[0]
        metrics_out = {child.metric_name: score, "valid_reward": child.reward_of(score) - self.penalty(best, child),
                       f"policy_mean_{child.metric_name}": child.summarise([s for _, s in candidates]),
                       "controller_entropy": agent.entropy()}
        if self.random_baseline:
            metrics_out[f"random_mean_{child.metric_name}"] = self.uniform_score(space, child, seed)
        if self.table is not None:
            metrics_out["resource_cost"] = self.cost(best, child)
        metrics_out |= {"search_seconds": time.perf_counter() - start, "peak_memory_mb": _peak_memory_mb(device)}
        state: dict[str, Any] = {**curves, "baseline": agent.baseline,
                                 "candidates": [{"tokens": list(a.tokens), child.metric_name: s}
                                                for a, s in candidates]}
        if self.table is not None:
            state["resource"] = {"resource": self.resource, "penalty": self.resource_penalty,
                                 "full": self.table.full}
            for entry, (arch, _) in zip(state["candidates"], candidates):
                entry["resource_cost"] = self.cost(arch, child)
        return OneShotResult(best, metrics_out, candidates=candidates, state=state)

    def searched_space(self, space: Any) -> Any:
        """The micro space with ENAS's own five ops unless the user chose ops. Only a mask changes, so the
        derived cell's tokens mean the same in the study's space, where it is retrained."""
        if self.micro_ops == "enas" and getattr(space, "name", None) == "darts" and space.ops is None:
            return type(space)(**{**space.config(), "ops": list(ENAS_MICRO_OPS)})
        return space

    def resource_table(self, child: Child) -> Any:
        """The per-op cost table of the child's supernet when the penalty is on, else None."""
        if not self.resource_penalty:
            return None
        if not isinstance(child, ImageChild):
            raise ConfigError("enas: resource_penalty needs an image (CNN) supernet; the recurrent cell's ops "
                              "all cost about the same")
        from nasforge.oneshot.resource import build_table

        return build_table(child.net, child.valid_x[:2], self.resource)

    def cost(self, arch: Architecture, child: Child) -> float:
        """The architecture's cost share (0 without a table), computed once per architecture."""
        if self.table is None:
            return 0.0
        if arch.tokens not in self._costs:
            assert isinstance(child, ImageChild)
            self._costs[arch.tokens] = self.table.path_cost(child.net, arch, child.valid_x[:2])
        return self._costs[arch.tokens]

    def penalty(self, arch: Architecture, child: Child) -> float:
        """λ · cost: what the reward loses for the architecture's resource use."""
        return self.resource_penalty * self.cost(arch, child) if self.table is not None else 0.0

    def controller_phase(self, agent: ControllerAgent, child: Child) -> dict[str, float]:
        """`controller_steps` REINFORCE steps, one sample and one validation batch each; their mean reward."""
        rewards, entropies, metrics = [], [], []
        for _ in range(self.controller_steps):
            arch = agent.draw()
            reward, metric = child.reward(arch)
            reward -= self.penalty(arch, child)
            entropies.append(agent.update(arch, reward))
            rewards.append(reward)
            metrics.append(metric)
        return {"valid_reward": _mean(rewards),
                "controller_entropy": _mean(entropies) if entropies else agent.entropy(),
                child.metric_name: child.summarise(metrics) if metrics else math.nan}

    def derive(self, agent: ControllerAgent, child: Child) -> list[tuple[Architecture, float]]:
        """Up to `derive_samples` distinct architectures from the policy, best one-shot score first."""
        seen: dict[str, Architecture] = {}
        for _ in range(3 * self.derive_samples):
            if len(seen) >= self.derive_samples:
                break
            arch = agent.draw()
            seen.setdefault(agent.space.key(arch), arch)
        scored = [(arch, child.evaluate(arch, self.derive_batches)) for arch in seen.values()]
        scored.sort(key=lambda pair: child.reward_of(pair[1]) - self.penalty(pair[0], child), reverse=True)
        return scored

    def uniform_score(self, space: Any, child: Child, seed: int) -> float:
        """The mean one-shot score of `derive_samples` uniformly drawn architectures, scored as the candidates
        are: what the controller's samples should beat if it learned more than the shared weights did."""
        rng = np.random.default_rng(derive_seed(seed, 4))
        archs = [space.sample(rng) for _ in range(self.derive_samples)]
        return child.summarise([child.evaluate(arch, self.derive_batches) for arch in archs])

    def make_child(self, space: Any, dataset: Dataset, device: torch.device, seed: int = 0) -> Child:
        """The shared-weight model and its training/scoring loop for the dataset's task."""
        task = dataset.spec.task
        if task == LANGUAGE_MODEL:
            if getattr(space, "name", None) != "rnn_cell":
                raise ConfigError(f"enas: a language model needs the rnn_cell space, got {space.name!r}")
            supernet = RNNSupernet(space, dataset.spec.num_outputs).to(device)
            return LanguageChild(supernet, dataset, device, batch_size=self.batch_size or 32, bptt=self.bptt,
                                 lr=self.child_lr or 20.0, lr_decay=self.lr_decay,
                                 weight_decay=1e-7 if self.weight_decay is None else self.weight_decay,
                                 grad_clip=0.25 if self.grad_clip is None else self.grad_clip,
                                 train_steps=self.train_steps, reward_c=self.reward_c)
        if task != CLASSIFICATION:
            raise ConfigError(f"enas: searches language models and image classifiers, not {task!r} data")
        if getattr(space, "name", None) not in CNN_SPACES:
            raise ConfigError(f"enas: image data needs one of the spaces {', '.join(CNN_SPACES)}, got {space.name!r}")
        from nasforge.oneshot.supernet import build_supernet

        net: nn.Module = build_supernet(space, dataset.spec, **self.supernet_options).to(device)
        total = self.epochs * (self.train_steps or _batches(len(dataset.train), self.batch_size or 64))
        return ImageChild(net, dataset, device, batch_size=self.batch_size or 64,
                          lr=self.child_lr or 0.05, lr_min=self.child_lr_min, momentum=self.momentum,
                          weight_decay=1e-4 if self.weight_decay is None else self.weight_decay,
                          grad_clip=5.0 if self.grad_clip is None else self.grad_clip,
                          train_steps=self.train_steps, total_steps=total, seed=seed)


class ControllerAgent:
    """The REINFORCE side: draws from the `reinforce` Controller and updates it one reward at a time."""

    def __init__(self, space: Any, *, seed: int, hidden: int, embed: int, lr: float, entropy_weight: float,
                 baseline_decay: float, init_range: float) -> None:
        self.space = space
        self.rng = np.random.default_rng(derive_seed(seed, 1))
        self.controller = Controller(derive_seed(seed, 2), hidden, embed, init_range)
        self.optim = Adam(lr)
        self.entropy_weight, self.baseline_decay = entropy_weight, baseline_decay
        self.baseline: float | None = None

    def draw(self) -> Architecture:
        with torch.no_grad():
            tokens = self.controller.sample(self.space, self.rng)
        return Architecture(self.space.name, tuple(tokens))

    def _decisions(self, arch: Architecture) -> list[Decision]:
        return [dec for dec, _ in self.space.walk(arch.tokens)]

    def update(self, arch: Architecture, reward: float) -> float:
        """One REINFORCE step; the baseline moves first, as in ENAS's code. Returns the walk's entropy."""
        b = self.baseline_decay
        self.baseline = reward if self.baseline is None else b * self.baseline + (1 - b) * reward
        logp, entropy = self.controller.score(self._decisions(arch), [list(arch.tokens)])
        loss = -(reward - self.baseline) * logp.sum() - self.entropy_weight * entropy.sum()
        loss.backward()
        self.optim.step(self.controller.params)
        self.controller.changed()
        return float(entropy.detach().sum())

    def entropy(self) -> float:
        """The policy's entropy along one fresh walk (nats summed over decisions)."""
        arch = self.draw()
        with torch.no_grad():
            _, entropy = self.controller.score(self._decisions(arch), [list(arch.tokens)])
        return float(entropy.sum())


class Child:
    """The shared weights and how they are trained and scored; one subclass per task."""

    metric_name: str
    optimizer: torch.optim.Optimizer
    weights: list[nn.Parameter]
    grad_clip: float

    def train_epoch(self, sample: Sampler, epoch: int) -> float:
        raise NotImplementedError

    def update(self, loss: torch.Tensor) -> None:
        """One optimizer step on the shared weights from `loss`, the gradient norm clipped."""
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.grad_clip:
            nn.utils.clip_grad_norm_(self.weights, self.grad_clip)
        self.optimizer.step()

    def reward(self, arch: Architecture) -> tuple[float, float]:
        """(reward, metric) of `arch` on the next validation batch."""
        raise NotImplementedError

    def evaluate(self, arch: Architecture, batches: int | None) -> float:
        """The metric of `arch` on the first `batches` validation batches (None: all)."""
        raise NotImplementedError

    def reward_of(self, metric: float) -> float:
        raise NotImplementedError

    def summarise(self, metrics: list[float]) -> float:
        return _mean(metrics)


class LanguageChild(Child):
    """An `RNNSupernet` trained in truncated-BPTT windows; reward c / perplexity of one validation window."""

    metric_name = "valid_perplexity"

    def __init__(self, net: RNNSupernet, dataset: Dataset, device: torch.device, *, batch_size: int, bptt: int,
                 lr: float, lr_decay: float, weight_decay: float, grad_clip: float, train_steps: int | None,
                 reward_c: float) -> None:
        self.net, self.device, self.bptt = net, device, bptt
        self.batch_size, self.grad_clip, self.train_steps = batch_size, grad_clip, train_steps
        self.lr, self.lr_decay, self.reward_c = lr, lr_decay, reward_c
        self.train_x, self.train_y = self._streams(dataset.train.x, dataset.train.y, batch_size)
        self.valid_x, self.valid_y = self._streams(dataset.valid.x, dataset.valid.y, batch_size)
        self.raw_valid = (torch.as_tensor(np.asarray(dataset.valid.x, dtype=np.int64), device=device),
                          torch.as_tensor(np.asarray(dataset.valid.y, dtype=np.int64), device=device))
        self.weights = net.weight_parameters()
        self.optimizer = torch.optim.SGD(self.weights, lr=lr, weight_decay=weight_decay)
        self.train_windows = bptt_windows(self.train_x.shape[1], bptt)
        self.valid_windows = bptt_windows(self.valid_x.shape[1], bptt)
        self.train_at = 0  # next training window: an epoch capped by train_steps resumes where the last stopped
        self.valid_at = 0
        self.train_state: Any = None
        self.valid_state: Any = None

    def _streams(self, x: np.ndarray, y: np.ndarray, rows: int) -> tuple[torch.Tensor, torch.Tensor]:
        xs = torch.as_tensor(np.asarray(x, dtype=np.int64), device=self.device)
        ys = torch.as_tensor(np.asarray(y, dtype=np.int64), device=self.device)
        rows = max(1, min(rows, len(xs) // 2))
        return batchify(xs, rows), batchify(ys, rows)

    def train_epoch(self, sample: Sampler, epoch: int) -> float:
        for group in self.optimizer.param_groups:
            group["lr"] = self.lr * self.lr_decay ** (epoch - 1)
        self.net.train()
        steps = self.train_steps or len(self.train_windows)
        total, seen = 0.0, 0
        for _ in range(steps):
            if self.train_at == 0:
                self.train_state = None  # a new pass over the stream starts from a zero state
            s, e = self.train_windows[self.train_at]
            self.train_at = (self.train_at + 1) % len(self.train_windows)
            path = self.net.path(sample())
            logits, state = lm_forward(path, self.train_x[:, s:e], self.train_state)
            target = self.train_y[:, s:e]
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), target.reshape(-1))
            if not torch.isfinite(loss):  # a child that blew up its state: skip it and restart from zeros
                self.train_state = None
                continue
            self.update(loss)
            self.train_state = tuple(t.detach() for t in state)
            total += float(loss.detach()) * target.numel()
            seen += target.numel()
        return total / seen if seen else math.nan

    def reward(self, arch: Architecture) -> tuple[float, float]:
        if self.valid_at == 0:
            self.valid_state = None
        s, e = self.valid_windows[self.valid_at]
        self.valid_at = (self.valid_at + 1) % len(self.valid_windows)
        self.net.eval()
        with torch.no_grad():
            logits, state = lm_forward(self.net.path(arch), self.valid_x[:, s:e], self.valid_state)
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), self.valid_y[:, s:e].reshape(-1))
        value = float(loss)
        self.valid_state = state if math.isfinite(value) else None  # carried across steps, as ENAS's code does
        ppl = math.exp(min(value, MAX_LOG_PPL) if math.isfinite(value) else MAX_LOG_PPL)
        return self.reward_of(ppl), ppl

    def evaluate(self, arch: Architecture, batches: int | None) -> float:
        x, y = self.raw_valid
        if batches is not None:
            x, y = x[:batches * self.batch_size * self.bptt], y[:batches * self.batch_size * self.bptt]
        loss = lm_loss(self.net.path(arch), x, y, self.bptt, self.batch_size)
        return math.exp(min(loss, MAX_LOG_PPL) if math.isfinite(loss) else MAX_LOG_PPL)

    def reward_of(self, metric: float) -> float:
        return self.reward_c / metric

    def summarise(self, metrics: list[float]) -> float:
        """Perplexity of the mean log-loss over the epoch's controller samples (a geometric mean)."""
        return math.exp(_mean([math.log(m) for m in metrics]))


@dataclass
class _Cursor:
    """A seeded endless walk over rows in shuffled batches."""

    rows: int
    batch: int
    rng: np.random.Generator
    order: np.ndarray | None = None
    at: int = 0

    def next(self) -> np.ndarray:
        if self.order is None or self.at >= len(self.order):
            self.order, self.at = self.rng.permutation(self.rows), 0
        idx = self.order[self.at:self.at + self.batch]
        self.at += self.batch
        return idx


class ImageChild(Child):
    """A CNN supernet (`forward(x, arch)`); reward: accuracy on one validation batch, with batch statistics.

    Batch norm uses the batch's statistics when scoring too (as ENAS's code does): running averages
    mix every sampled child and describe none of them.
    """

    metric_name = "valid_accuracy"

    def __init__(self, net: nn.Module, dataset: Dataset, device: torch.device, *, batch_size: int, lr: float,
                 lr_min: float, momentum: float, weight_decay: float, grad_clip: float, train_steps: int | None,
                 total_steps: int, seed: int = 0) -> None:
        self.net, self.device, self.batch_size = net, device, batch_size
        self.grad_clip, self.train_steps = grad_clip, train_steps
        self.train_x = torch.as_tensor(np.asarray(dataset.train.x, dtype=np.float32), device=device)
        self.train_y = torch.as_tensor(np.asarray(dataset.train.y, dtype=np.int64).reshape(-1), device=device)
        self.valid_x = torch.as_tensor(np.asarray(dataset.valid.x, dtype=np.float32), device=device)
        self.valid_y = torch.as_tensor(np.asarray(dataset.valid.y, dtype=np.int64).reshape(-1), device=device)
        weights = getattr(net, "weight_parameters", None)
        self.weights = list(weights() if callable(weights) else net.parameters())
        self.optimizer = torch.optim.SGD(self.weights, lr=lr, momentum=momentum, nesterov=momentum > 0,
                                         weight_decay=weight_decay)
        self.schedule = torch.optim.lr_scheduler.CosineAnnealingLR(self.optimizer, T_max=max(1, total_steps),
                                                                   eta_min=min(lr_min, lr))
        rng = np.random.default_rng(derive_seed(seed, 3))
        self.train_rows = _Cursor(len(self.train_y), batch_size, rng)
        self.valid_rows = _Cursor(len(self.valid_y), batch_size, rng)
        # `evaluate`'s fixed batches: stratified, so each mixes the classes (scoring uses batch statistics,
        # and a one-class batch of a class-sorted dataset would be normalised into noise)
        self.valid_order = torch.as_tensor(stratified_order(np.asarray(dataset.valid.y).reshape(-1),
                                                            len(self.valid_y), derive_seed(seed, 4)), device=device)

    def train_epoch(self, sample: Sampler, epoch: int) -> float:
        self.net.train()
        steps = self.train_steps or _batches(len(self.train_y), self.batch_size)
        total, seen = 0.0, 0
        for _ in range(steps):
            idx = torch.as_tensor(self.train_rows.next(), device=self.device)
            logits = self.net(self.train_x[idx], sample())
            loss = F.cross_entropy(logits, self.train_y[idx])
            if not torch.isfinite(loss):  # one diverged child must not poison the shared weights
                self.schedule.step()
                continue
            self.update(loss)
            self.schedule.step()
            total += float(loss.detach()) * len(idx)
            seen += len(idx)
        return total / seen if seen else math.nan

    def _accuracy(self, x: torch.Tensor, y: torch.Tensor, arch: Architecture) -> tuple[int, int]:
        self.net.train()  # batch statistics (see the class docstring)
        with torch.no_grad():
            return int((self.net(x, arch).argmax(1) == y).sum()), len(y)

    def reward(self, arch: Architecture) -> tuple[float, float]:
        idx = torch.as_tensor(self.valid_rows.next(), device=self.device)
        right, count = self._accuracy(self.valid_x[idx], self.valid_y[idx], arch)
        accuracy = right / max(1, count)
        return accuracy, accuracy

    def evaluate(self, arch: Architecture, batches: int | None) -> float:
        rows = len(self.valid_y) if batches is None else min(len(self.valid_y), batches * self.batch_size)
        right = 0
        for s in range(0, rows, self.batch_size):
            idx = self.valid_order[s:min(rows, s + self.batch_size)]
            right += self._accuracy(self.valid_x[idx], self.valid_y[idx], arch)[0]
        return right / max(1, rows)

    def reward_of(self, metric: float) -> float:
        return metric


def _check_int(label: str, value: Any, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ConfigError(f"enas: {label} must be an integer of at least {low}, got {value!r}")


def _batches(rows: int, batch: int | None) -> int:
    return max(1, math.ceil(rows / (batch or 64)))


def _mean(values: list[float]) -> float:
    return float(np.mean(values)) if values else math.nan


def _peak_memory_mb(device: torch.device) -> float:
    """Peak device memory on CUDA, else the process's peak resident size."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10
