"""Zero-cost proxies: scores of an untrained network from one minibatch, to rank architectures cheaply.

Each function takes a freshly initialised model and returns one float (higher should mean better).
`gradient_measures` shares one pass per half-batch between grad-norm, snip and ZiCo, and
`activation_measures` shares one forward between NASWOT and jacov, since a network's passes are
the whole cost of a proxy. Definitions follow the papers:

- NASWOT (Mellor et al., 2021): log |det K|, K_ij the number of ReLUs on which samples i and j agree
  (both active or both inactive).
- jacov (Mellor et al., 2020, v1): the eigenvalues of the correlation matrix of the per-sample input
  Jacobians of the summed output; -sum(log(λ + k) + 1/(λ + k)).
- grad-norm (Abdelfattah et al., 2021): the sum over weight layers of the gradient's L2 norm.
- snip (Lee et al., 2019): sum of |θ · ∂L/∂θ| over weight layers.
- synflow (Tanaka et al., 2020): with |θ| weights in float64, input all ones, R = sum(output):
  sum of θ · ∂R/∂θ; data-free, so BN uses its (initial) running statistics.
- ZiCo (Li et al., 2023): per weight layer, log of sum over its weights of mean|g| / std(g) across
  minibatches, summed over layers.

A degenerate network (its output ignores the input, or two samples share every activation) scores -inf
on NASWOT and jacov: the lowest rank, not a missing value.
"""

from __future__ import annotations

import copy
import math
from typing import Any

import numpy as np
import torch
from torch import nn

WEIGHTED = (nn.Conv1d, nn.Conv2d, nn.Linear)
ACTIVATIONS = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.GELU, nn.SiLU, nn.ELU)
NAMES = ("naswot", "jacov", "grad_norm", "snip", "synflow", "zico")


def _weights(model: nn.Module) -> list[torch.Tensor]:
    """The weight tensor of every conv and linear layer (biases and norms are left out, as in the papers)."""
    return [m.weight for m in model.modules() if isinstance(m, WEIGHTED)]


def _loss(output: torch.Tensor, y: torch.Tensor, task: str) -> torch.Tensor:
    if task == "regression":
        return nn.functional.mse_loss(output.reshape(y.shape).float(), y.float())
    return nn.functional.cross_entropy(output, y)


def activation_measures(model: nn.Module, x: torch.Tensor) -> dict[str, float]:
    """NASWOT and jacov from one forward (activation codes) and one backward to the input."""
    n = x.shape[0]
    kernel = torch.zeros((n, n), dtype=torch.float64)
    seen = 0

    def record(module: nn.Module, inputs: tuple[Any, ...]) -> None:
        # agreements = c c^T + (1 - c)(1 - c)^T = 2 c c^T - s_i - s_j + width: one float32 matmul
        # (exact: counts stay far below 2^24 per layer), accumulated so no code matrix is kept
        nonlocal seen
        act = inputs[0].detach()
        if act.shape[0] != n:  # members stacked along the batch (TabM-style): each sample's rows together
            if act.shape[0] % n:
                return
            act = act.reshape(n, -1)
        c = (act > 0).flatten(1).to(torch.float32)
        s = c.sum(1, dtype=torch.float64)
        kernel.add_(2.0 * (c @ c.T).to(torch.float64) - s[:, None] - s[None, :] + c.shape[1])
        seen += 1

    handles = [m.register_forward_pre_hook(record) for m in model.modules() if isinstance(m, ACTIVATIONS)]
    x = x.clone().requires_grad_(True)
    try:
        output = model(x)
    finally:
        for h in handles:
            h.remove()
    (jacobian,) = torch.autograd.grad(output.sum(), x)
    naswot = float(torch.linalg.slogdet(kernel)[1]) if seen else math.nan
    return {"naswot": naswot, "jacov": jacov_score(jacobian.flatten(1).to(torch.float64))}


def jacov_score(jacobian: torch.Tensor, k: float = 1e-5) -> float:
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = np.corrcoef(jacobian.numpy())
    if not np.all(np.isfinite(corr)):
        return -math.inf  # some sample's output ignores its input: the worst a network can be
    eig = np.linalg.eigvalsh(corr)
    return float(-np.sum(np.log(eig + k) + 1.0 / (eig + k)))


def gradient_measures(model: nn.Module, x: torch.Tensor, y: torch.Tensor, task: str,
                      splits: int = 2) -> dict[str, float]:
    """grad-norm and snip on the whole batch, ZiCo across its `splits` parts, from one backward per part."""
    weights = _weights(model)
    per_split: list[list[torch.Tensor]] = []
    for xs, ys in zip(torch.chunk(x, splits), torch.chunk(y, splits)):
        model.zero_grad(set_to_none=True)
        _loss(model(xs), ys, task).backward()
        per_split.append([torch.zeros_like(w) if w.grad is None else w.grad.detach().clone() for w in weights])
    model.zero_grad(set_to_none=True)
    grad_norm = snip = zico = 0.0
    for i, weight in enumerate(weights):
        grads = torch.stack([g[i] for g in per_split]).to(torch.float64)
        mean_grad = grads.mean(0)  # the whole batch's gradient (equal-sized parts)
        grad_norm += float(mean_grad.norm())
        snip += float((weight.detach().to(torch.float64) * mean_grad).abs().sum())
        std = grads.std(0, unbiased=False)
        ratio = grads.abs().mean(0)[std > 0] / std[std > 0]
        total = float(ratio.sum())
        if total > 0:
            zico += math.log(total)
    return {"grad_norm": grad_norm, "snip": snip, "zico": zico}


def synflow(model: nn.Module, input_shape: tuple[int, ...]) -> float:
    """Data-free: a float64 copy with |θ| weights, fed ones; BN in eval mode (its initial statistics)."""
    net = copy.deepcopy(model).double().eval()
    with torch.no_grad():
        for p in net.parameters():
            p.abs_()
    net.zero_grad(set_to_none=True)
    net(torch.ones((1, *input_shape), dtype=torch.float64)).sum().backward()
    total = 0.0
    for w in _weights(net):
        if w.grad is not None:
            total += float((w.detach() * w.grad).sum())
    return total
