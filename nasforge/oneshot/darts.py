"""DARTS (Liu, Simonyan & Yang, 2019): differentiable architecture search by bilevel optimisation.

Every edge of the supernet is a softmax(α)-weighted mixture of its candidate ops. The training set is
split in two halves: the shared weights w take SGD steps on the first half, α takes Adam steps on the
second half, alternating batch by batch; the dataset's validation split is kept for reporting. The
α gradient is either first order (∇α L_val(w, α), w treated as a constant) or second order: the
gradient through one unrolled weight step w' = w − ξ ∇w L_train(w, α), whose Hessian-vector product is
taken by finite differences (`second_order_arch_grads`). At the end the discrete cell is derived from α
(`Supernet.derive`) and handed back as an ordinary architecture to retrain from scratch.

The loss of a batch is computed by a small task object chosen by `spec.task`, so the same loop searches
CNN cells on images (`ImageTask`, cross-entropy, accuracy) and recurrent cells on a token stream
(`LanguageModelTask`, truncated BPTT with the hidden state carried per stream, perplexity).
"""

from __future__ import annotations

import contextlib
import math
import resource
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from nasforge.core.errors import ConfigError
from nasforge.core.types import Architecture, JSONDict
from nasforge.data.base import CLASSIFICATION, LANGUAGE_MODEL, Dataset, stratified_order
from nasforge.data.text import batchify, bptt_windows
from nasforge.evaluators.train import detach_state
from nasforge.oneshot.base import OneShotResult, ProgressFn

LossFn = Callable[[], torch.Tensor]

# The paper's CIFAR-10 settings (the first-order/second-order CNN search).
IMAGE_DEFAULTS: JSONDict = {"learning_rate": 0.025, "learning_rate_min": 0.001, "momentum": 0.9,
                            "weight_decay": 3e-4, "grad_clip": 5.0, "arch_learning_rate": 3e-4,
                            "arch_weight_decay": 1e-3}
# The paper's PTB settings (recurrent cell search): plain SGD at a large constant rate, tight clipping.
LM_DEFAULTS: JSONDict = {"learning_rate": 20.0, "learning_rate_min": 20.0, "momentum": 0.0,
                         "weight_decay": 5e-7, "grad_clip": 0.25, "arch_learning_rate": 3e-3,
                         "arch_weight_decay": 1e-3}
EVAL_BATCH = 256
EPSILON_SCALE = 0.01  # the paper's finite-difference step: ε = 0.01 / ‖∇w' L_val(w', α)‖


# ---- the architecture gradient ---------------------------------------------------------------------
def first_order_arch_grads(alphas: Sequence[torch.Tensor], valid_loss: LossFn) -> list[torch.Tensor]:
    """∇α L_val(w, α) with w held fixed (DARTS's first-order approximation, ξ = 0)."""
    grads = torch.autograd.grad(valid_loss(), list(alphas), allow_unused=True)
    return [torch.zeros_like(a) if g is None else g for a, g in zip(alphas, grads)]


def second_order_arch_grads(weights: Sequence[torch.Tensor], alphas: Sequence[torch.Tensor], train_loss: LossFn,
                            valid_loss: LossFn, xi: float, buffers: Sequence[torch.Tensor] = (),
                            epsilon_scale: float = EPSILON_SCALE) -> list[torch.Tensor]:
    """The unrolled architecture gradient of DARTS's eq. (7)-(8).

    w' = w − ξ ∇w L_train(w, α); the result is ∇α L_val(w', α) − ξ ∇²_{α,w} L_train(w, α) · v with
    v = ∇w' L_val(w', α), the Hessian-vector product taken by central differences:
    [∇α L_train(w⁺, α) − ∇α L_train(w⁻, α)] / (2ε), w± = w ± ε v, ε = `epsilon_scale` / ‖v‖ (the paper: 0.01).

    `weights` are changed in place and restored (bit for bit) before returning; so are `buffers` (batch
    norm running statistics the extra forward passes would otherwise move). The two loss closures read
    the current values of `weights` and `alphas`.
    """
    weights, alphas = list(weights), list(alphas)
    saved = [w.detach().clone() for w in weights]
    saved_buffers = [b.detach().clone() for b in buffers]
    try:
        train_grads = _grads_or_zeros(train_loss(), weights)
        with torch.no_grad():
            for w, g in zip(weights, train_grads):
                w.sub_(xi * g)
        grads = _grads_or_zeros(valid_loss(), [*alphas, *weights])
        d_alpha, v = grads[:len(alphas)], grads[len(alphas):]
        norm = torch.sqrt(sum((g.double() ** 2).sum() for g in v))  # type: ignore[arg-type]
        if not float(norm) > 0.0:
            return d_alpha
        eps = epsilon_scale / float(norm)
        grad_plus = _grads_at(weights, saved, v, eps, alphas, train_loss)
        grad_minus = _grads_at(weights, saved, v, -eps, alphas, train_loss)
        return [da - xi * (gp - gm) / (2 * eps) for da, gp, gm in zip(d_alpha, grad_plus, grad_minus)]
    finally:
        with torch.no_grad():
            for w, s in zip(weights, saved):
                w.copy_(s)
            for b, s in zip(buffers, saved_buffers):
                b.copy_(s)


def _grads_or_zeros(loss: torch.Tensor, tensors: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    grads = torch.autograd.grad(loss, list(tensors), allow_unused=True)
    return [torch.zeros_like(t) if g is None else g.detach() for t, g in zip(tensors, grads)]


def _grads_at(weights: list[torch.Tensor], origin: list[torch.Tensor], direction: list[torch.Tensor], step: float,
              alphas: list[torch.Tensor], loss: LossFn) -> list[torch.Tensor]:
    """∇α loss at w = origin + step * direction."""
    with torch.no_grad():
        for w, o, d in zip(weights, origin, direction):
            w.copy_(o + step * d)
    return _grads_or_zeros(loss(), alphas)


# ---- tasks: what a batch is and how its loss and metrics are computed ----------------------------
@dataclass
class Batch:
    """Inputs and targets; for a language model also the recurrent state it starts from and ends in."""

    inputs: torch.Tensor
    targets: torch.Tensor
    state: Any = None
    state_out: Any = None
    stream: str = ""


class SearchTask(Protocol):
    metric: str  # the validation metric reported ("valid_accuracy", "valid_perplexity")
    steps_per_epoch: int

    def weight_batches(self) -> Iterator[Batch]: ...

    def arch_batches(self) -> Iterator[Batch]: ...

    def loss(self, net: nn.Module, batch: Batch) -> torch.Tensor: ...

    def advance(self, batch: Batch) -> None: ...

    def evaluate(self, net: nn.Module, arch: Architecture | None) -> dict[str, float]: ...


class ImageTask:
    """Classification: cross-entropy on shuffled mini-batches; metrics on the validation split."""

    metric = "valid_accuracy"

    def __init__(self, dataset: Dataset, device: torch.device, batch_size: int, data_fraction: float,
                 max_valid: int | None, seed: int) -> None:
        train_y = np.asarray(dataset.train.y)
        order = stratified_order(train_y, len(train_y), seed)
        rows = order[:max(2, round(data_fraction * len(order)))]
        half = len(rows) // 2  # stratified order: both halves keep the class shares
        x = torch.as_tensor(np.asarray(dataset.train.x, dtype=np.float32), device=device)
        y = torch.as_tensor(train_y.astype(np.int64), device=device)
        index_w = torch.as_tensor(rows[:half], device=device)
        index_a = torch.as_tensor(rows[half:], device=device)
        self.weight_x, self.weight_y = x[index_w], y[index_w]
        self.arch_x, self.arch_y = x[index_a], y[index_a]
        valid_y = np.asarray(dataset.valid.y)
        # stratified order, not sorted: `evaluate` normalises by each batch's statistics, which a batch of
        # one class (a class-sorted dataset) would turn into noise
        keep = stratified_order(valid_y, len(valid_y), seed)[:max_valid]
        self.valid_x = torch.as_tensor(np.asarray(dataset.valid.x, dtype=np.float32)[keep], device=device)
        self.valid_y = torch.as_tensor(valid_y[keep].astype(np.int64), device=device)
        self.batch_size = max(1, min(batch_size, half))
        self.steps_per_epoch = max(1, half // self.batch_size)
        self._generator = torch.Generator().manual_seed(seed)

    def _batches(self, x: torch.Tensor, y: torch.Tensor) -> Iterator[Batch]:
        """Endless shuffled full batches (a new permutation each pass)."""
        while True:
            perm = torch.randperm(len(y), generator=self._generator).to(x.device)
            for s in range(0, len(y) - self.batch_size + 1, self.batch_size):
                idx = perm[s:s + self.batch_size]
                yield Batch(x[idx], y[idx])

    def weight_batches(self) -> Iterator[Batch]:
        return self._batches(self.weight_x, self.weight_y)

    def arch_batches(self) -> Iterator[Batch]:
        return self._batches(self.arch_x, self.arch_y)

    def loss(self, net: nn.Module, batch: Batch) -> torch.Tensor:
        return F.cross_entropy(net(batch.inputs), batch.targets)

    def advance(self, batch: Batch) -> None:
        """Image batches are independent: nothing carries over."""

    def evaluate(self, net: nn.Module, arch: Architecture | None) -> dict[str, float]:
        """Accuracy and loss on the validation split, batch norm using each batch's own statistics: one
        path's activations differ from the mixture's, and in a short search the running averages lag."""
        correct, loss_sum = 0, 0.0
        with batch_statistics(net), torch.no_grad():
            for s in range(0, len(self.valid_y), EVAL_BATCH):
                logits = net(self.valid_x[s:s + EVAL_BATCH], arch)
                target = self.valid_y[s:s + EVAL_BATCH]
                correct += int((logits.argmax(dim=1) == target).sum())
                loss_sum += float(F.cross_entropy(logits.float(), target, reduction="sum"))
        net.train()
        n = max(1, len(self.valid_y))
        return {"valid_accuracy": correct / n, "valid_loss": loss_sum / n}


@contextlib.contextmanager
def batch_statistics(net: nn.Module) -> Iterator[None]:
    """Batch norm normalises by each batch's statistics; the running statistics are restored afterwards."""
    saved = {name: b.detach().clone() for name, b in net.named_buffers()}
    net.train()
    try:
        yield
    finally:
        with torch.no_grad():
            for name, b in net.named_buffers():
                b.copy_(saved[name])


class LanguageModelTask:
    """Next-token prediction: `bptt`-long windows of `batch_size` parallel streams, the state carried
    (and detached) from window to window, separately for the weight half and the α half."""

    metric = "valid_perplexity"

    def __init__(self, dataset: Dataset, device: torch.device, batch_size: int, data_fraction: float,
                 max_valid: int | None, bptt: int) -> None:
        ids = torch.as_tensor(np.asarray(dataset.train.x, dtype=np.int64), device=device)
        nxt = torch.as_tensor(np.asarray(dataset.train.y, dtype=np.int64), device=device)
        used = max(4, round(data_fraction * len(ids)))
        half = used // 2
        self.bptt = int(bptt)
        self.weight_x, self.weight_y = batchify(ids[:half], batch_size), batchify(nxt[:half], batch_size)
        self.arch_x, self.arch_y = batchify(ids[half:used], batch_size), batchify(nxt[half:used], batch_size)
        end = len(dataset.valid.x) if max_valid is None else max_valid
        self.valid_x = torch.as_tensor(np.asarray(dataset.valid.x[:end], dtype=np.int64), device=device)
        self.valid_y = torch.as_tensor(np.asarray(dataset.valid.y[:end], dtype=np.int64), device=device)
        self.steps_per_epoch = len(bptt_windows(self.weight_x.shape[1], self.bptt))
        self._states: dict[str, Any] = {"weight": None, "arch": None}

    def _stream(self, x: torch.Tensor, y: torch.Tensor, name: str) -> Iterator[Batch]:
        while True:
            self._states[name] = None  # a new pass starts from a fresh state
            for s, e in bptt_windows(x.shape[1], self.bptt):
                yield Batch(x[:, s:e], y[:, s:e], state=self._states[name], stream=name)

    def weight_batches(self) -> Iterator[Batch]:
        return self._stream(self.weight_x, self.weight_y, "weight")

    def arch_batches(self) -> Iterator[Batch]:
        return self._stream(self.arch_x, self.arch_y, "arch")

    def loss(self, net: nn.Module, batch: Batch) -> torch.Tensor:
        logits, state = net.run(batch.inputs, batch.state)  # type: ignore[operator]
        batch.state_out = detach_state(state)
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), batch.targets.reshape(-1))

    def advance(self, batch: Batch) -> None:
        """The stream's next window starts from the state the last loss of this batch ended in."""
        self._states[batch.stream] = batch.state_out

    def evaluate(self, net: nn.Module, arch: Architecture | None) -> dict[str, float]:
        from nasforge.evaluators.train import lm_loss

        model = net if arch is None else net.path(arch)  # type: ignore[operator]
        loss = lm_loss(model, self.valid_x, self.valid_y, self.bptt)
        net.train()
        return {"valid_perplexity": math.exp(min(loss, 50.0)), "valid_loss": loss}


# ---- the search ----------------------------------------------------------------------------------
class DARTS:
    """DARTS's bilevel search; options are the paper's where CPU allows (see docs/methods/darts.md).

    Options: `order` (1 first order, 2 unrolled), `epochs`, `batch_size`; weights: SGD with
    `learning_rate` cosine-annealed to `learning_rate_min`, `momentum`, `weight_decay`, `grad_clip`;
    α: Adam with `arch_learning_rate`, `arch_betas`, `arch_weight_decay`; ξ of the unrolled step is the
    current weight learning rate. Budget: `max_steps` (total weight steps), `data_fraction` (of the
    training split, before it is halved), `max_valid` (validation rows/tokens used for reporting),
    `bptt` (language models). `supernet`: options of `build_supernet` (layers, channels, ...).
    Learning-rate options left as None take the image or language-model defaults by the data's task.
    Resource penalty (ProxylessNAS/FBNet): `resource_penalty` λ (0: off) adds λ · E[cost] to α's loss,
    E[cost] the softmax(α)-expected `resource` ("flops", "params" or "latency_ms") of the mixed edges as a
    share of their most expensive choice (`nasforge.oneshot.resource`); CNN supernets only.
    """

    name = "darts"

    def __init__(self, order: int = 1, epochs: int = 10, batch_size: int = 64, learning_rate: float | None = None,
                 learning_rate_min: float | None = None, momentum: float | None = None,
                 weight_decay: float | None = None, grad_clip: float | None = None,
                 arch_learning_rate: float | None = None, arch_betas: Sequence[float] = (0.5, 0.999),
                 arch_weight_decay: float | None = None, max_steps: int | None = None, data_fraction: float = 1.0,
                 max_valid: int | None = None, bptt: int = 35, supernet: JSONDict | None = None,
                 resource_penalty: float = 0.0, resource: str = "flops") -> None:
        from nasforge.oneshot.resource import check_options

        self.resource_penalty, self.resource = check_options("darts", resource_penalty, resource)
        self.table: Any = None  # the running search's ResourceTable, when resource_penalty > 0
        if int(order) not in (1, 2):
            raise ConfigError(f"darts: order must be 1 or 2, got {order!r}")
        if int(epochs) < 1 or int(batch_size) < 1 or int(bptt) < 1:
            raise ConfigError("darts: epochs, batch_size and bptt must be positive")
        if not 0.0 < float(data_fraction) <= 1.0:
            raise ConfigError(f"darts: data_fraction must be in (0, 1], got {data_fraction}")
        if max_steps is not None and int(max_steps) < 1:
            raise ConfigError(f"darts: max_steps must be positive, got {max_steps}")
        if max_valid is not None and int(max_valid) < 1:
            raise ConfigError(f"darts: max_valid must be positive, got {max_valid}")
        if len(arch_betas) != 2:
            raise ConfigError(f"darts: arch_betas must be two numbers, got {arch_betas!r}")
        self.order = int(order)
        self.epochs = int(epochs)
        self.batch_size = int(batch_size)
        self.max_steps = None if max_steps is None else int(max_steps)
        self.data_fraction = float(data_fraction)
        self.max_valid = None if max_valid is None else int(max_valid)
        self.bptt = int(bptt)
        self.arch_betas = (float(arch_betas[0]), float(arch_betas[1]))
        self.supernet_options = dict(supernet or {})
        self.overrides: JSONDict = {key: float(value) for key, value in (
            ("learning_rate", learning_rate), ("learning_rate_min", learning_rate_min), ("momentum", momentum),
            ("weight_decay", weight_decay), ("grad_clip", grad_clip), ("arch_learning_rate", arch_learning_rate),
            ("arch_weight_decay", arch_weight_decay)) if value is not None}

    def hparams(self, task: str) -> JSONDict:
        """The task's defaults with this search's overrides."""
        return {**(LM_DEFAULTS if task == LANGUAGE_MODEL else IMAGE_DEFAULTS), **self.overrides}

    # ---- pieces -----------------------------------------------------------------------------
    def build_network(self, space: Any, dataset: Dataset) -> nn.Module:
        spec = dataset.spec
        if spec.task == LANGUAGE_MODEL:
            from nasforge.oneshot.rnn_supernet import build_rnn_supernet

            if self.supernet_options:
                raise ConfigError("darts: the recurrent supernet takes its sizes from the rnn_cell space, "
                                  f"not supernet options {sorted(self.supernet_options)}")
            return build_rnn_supernet(space, int(spec.num_outputs))
        if spec.task != CLASSIFICATION:
            raise ConfigError(f"darts: searches classification or language-model data, not {spec.task!r}")
        from nasforge.oneshot.supernet import build_supernet

        return build_supernet(space, spec, **self.supernet_options)

    def make_task(self, dataset: Dataset, device: torch.device, seed: int) -> SearchTask:
        if dataset.spec.task == LANGUAGE_MODEL:
            return LanguageModelTask(dataset, device, self.batch_size, self.data_fraction, self.max_valid,
                                     self.bptt)
        return ImageTask(dataset, device, self.batch_size, self.data_fraction, self.max_valid, seed)

    def arch_grads(self, net: nn.Module, task: SearchTask, weight_batch: Batch, arch_batch: Batch,
                   xi: float) -> list[torch.Tensor]:
        """α's gradient for one step: first order, or through the unrolled weight step (order 2)."""
        alphas = net.arch_parameters()  # type: ignore[operator]
        if self.order == 1:
            grads = first_order_arch_grads(alphas, lambda: task.loss(net, arch_batch))
        else:
            grads = second_order_arch_grads(net.weight_parameters(), alphas,  # type: ignore[operator]
                                            lambda: task.loss(net, weight_batch),
                                            lambda: task.loss(net, arch_batch), xi, buffers=list(net.buffers()))
        if self.table is None:
            return grads
        # λ · E[cost] depends on α only (not on w), so its gradient adds to either order's as it is
        penalty = self.penalty_grads(net)
        return [g + p for g, p in zip(grads, penalty)]

    def penalty_grads(self, net: nn.Module) -> list[torch.Tensor]:
        """∇α of λ · E[cost] (`nasforge.oneshot.resource`)."""
        alphas = net.arch_parameters()  # type: ignore[operator]
        loss = self.resource_penalty * self.table.expected(net)
        grads = torch.autograd.grad(loss, list(alphas), allow_unused=True)
        return [torch.zeros_like(a) if g is None else g for a, g in zip(alphas, grads)]

    def resource_table(self, net: nn.Module, task: SearchTask, spec: Any) -> Any:
        """The per-op cost table when the penalty is on (built on one validation batch's shape), else None."""
        if not self.resource_penalty:
            return None
        if spec.task != CLASSIFICATION or not isinstance(task, ImageTask):
            raise ConfigError("darts: resource_penalty needs an image (CNN) supernet; the recurrent cell's ops "
                              "all cost about the same")
        from nasforge.oneshot.resource import build_table

        return build_table(net, task.valid_x[:2] if len(task.valid_x) else task.arch_x[:2], self.resource)

    # ---- the loop ---------------------------------------------------------------------------
    def search(self, space: Any, dataset: Dataset, *, seed: int, device: torch.device,
               progress: ProgressFn) -> OneShotResult:
        device = torch.device(device)
        torch.manual_seed(seed)
        start = time.perf_counter()
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        hp = self.hparams(dataset.spec.task)
        net: Any = self.build_network(space, dataset).to(device)  # a Supernet or an RNNSupernet
        net.train()
        task = self.make_task(dataset, device, seed)
        self.table = self.resource_table(net, task, dataset.spec)
        weights = net.weight_parameters()
        w_opt = torch.optim.SGD(weights, lr=hp["learning_rate"], momentum=hp["momentum"],
                                weight_decay=hp["weight_decay"])
        a_opt = torch.optim.Adam(net.arch_parameters(), lr=hp["arch_learning_rate"], betas=self.arch_betas,
                                 weight_decay=hp["arch_weight_decay"])
        total = self.epochs * task.steps_per_epoch
        if self.max_steps is not None:
            total = min(total, self.max_steps)
        weight_batches, arch_batches = task.weight_batches(), task.arch_batches()
        step, epoch, row = 0, 0, {}
        while step < total:
            epoch += 1
            loss_sum, seen = 0.0, 0
            for _ in range(task.steps_per_epoch):
                if step >= total:
                    break
                lr = cosine_lr(hp["learning_rate"], hp["learning_rate_min"], step, total)
                for group in w_opt.param_groups:
                    group["lr"] = lr
                weight_batch, arch_batch = next(weight_batches), next(arch_batches)
                self._arch_step(net, task, weight_batch, arch_batch, a_opt, xi=lr)
                loss = self._weight_step(net, task, weight_batch, w_opt, weights, hp["grad_clip"])
                if not math.isfinite(loss):
                    raise FloatingPointError(f"darts: non-finite training loss at step {step}")
                loss_sum, seen, step = loss_sum + loss, seen + 1, step + 1
            row = {"train_loss": loss_sum / max(seen, 1), **task.evaluate(net, None),
                   "alpha_entropy": float(net.alpha_entropy()), "lr": lr, "steps": float(step)}
            if self.table is not None:
                with torch.no_grad():
                    row["expected_resource_cost"] = float(self.table.expected(net))
            progress(epoch, row)
        arch = net.derive()
        derived = task.evaluate(net, arch)
        metrics = {task.metric: derived[task.metric], "valid_loss": derived["valid_loss"],
                   f"supernet_{task.metric}": row[task.metric], "train_loss": row["train_loss"],
                   "alpha_entropy": row["alpha_entropy"], "epochs": float(epoch), "steps": float(step),
                   "search_seconds": time.perf_counter() - start, "peak_memory_mb": peak_memory_mb(device)}
        state = {"alphas": alpha_table(net), "genotype": space.describe(arch), "order": self.order}
        if self.table is not None:
            assert isinstance(task, ImageTask)
            metrics["expected_resource_cost"] = row["expected_resource_cost"]
            metrics["resource_cost"] = self.table.path_cost(net, arch, task.valid_x[:2])
            state["resource"] = {"resource": self.resource, "penalty": self.resource_penalty,
                                 "full": self.table.full}
        return OneShotResult(arch=arch, metrics=metrics, state=state)

    def _arch_step(self, net: nn.Module, task: SearchTask, weight_batch: Batch, arch_batch: Batch,
                   optimizer: torch.optim.Optimizer, xi: float) -> None:
        """One Adam step on α (the α half's batch), then that stream moves on."""
        grads = self.arch_grads(net, task, weight_batch, arch_batch, xi)
        optimizer.zero_grad(set_to_none=True)
        for alpha, grad in zip(net.arch_parameters(), grads):  # type: ignore[operator]
            alpha.grad = grad
        optimizer.step()
        task.advance(arch_batch)

    @staticmethod
    def _weight_step(net: nn.Module, task: SearchTask, batch: Batch, optimizer: torch.optim.Optimizer,
                     weights: list[nn.Parameter], clip: float) -> float:
        optimizer.zero_grad(set_to_none=True)
        loss = task.loss(net, batch)
        loss.backward(inputs=weights)  # α's update comes from the α half only
        if clip:
            nn.utils.clip_grad_norm_(weights, clip)
        optimizer.step()
        task.advance(batch)
        return float(loss.detach())


def cosine_lr(high: float, low: float, step: int, total: int) -> float:
    """Cosine annealing from `high` (step 0) towards `low` (step `total`)."""
    return low + 0.5 * (high - low) * (1.0 + math.cos(math.pi * step / max(total, 1)))


def alpha_table(net: nn.Module) -> JSONDict:
    """α as the mixture uses it, as nested lists (named by the supernet when it names them)."""
    named = getattr(net, "arch_weights", None)
    if callable(named):
        return {name: w.cpu().tolist() for name, w in named().items()}
    return {f"alpha_{i}": torch.softmax(a.detach().float(), dim=-1).cpu().tolist()
            for i, a in enumerate(net.arch_parameters())}  # type: ignore[operator]


def peak_memory_mb(device: torch.device) -> float:
    """Peak CUDA memory allocated on `device`, or the process's peak resident size on the CPU."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # kB on Linux
