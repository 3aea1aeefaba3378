"""The softmax(α)-weighted mixture of an edge's candidate ops, computed with less work than op by op.

A DARTS mixture `sum_k w_k op_k(x)` evaluated literally runs every op as its own module, then multiplies
and adds full-size tensors. Three rewrites give the same result (to float rounding, tested in
`tests/oneshot/test_mixture.py`) for less time and memory:

- **α inside the batch norm.** Most ops end in batch norm, and `w * (γ n + β) = (w γ) n + w β`, so the
  weight is passed to `F.batch_norm` as a per-channel scale and bias: the separate full-size multiply,
  its saved input and its backward disappear.
- **Work shared between edges that leave the same tensor.** In a cell, each state feeds several edges,
  and every conv op of every such edge starts with the same ReLU; parameter-free ops (pooling, identity)
  give the same output on every edge. A `SourceCache` computes each of these once per state and forward
  pass (keyed by the module's description, so a replaced activation is honoured).
- **Parameter-free terms added in one kernel** (`torch.addcmul`): the weighted pool or identity output is
  accumulated without a temporary product.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from nasforge.models.ops import FactorizedReduce, Pool


class SourceCache:
    """Outputs computed once per source tensor within one forward pass (its ReLU, its pools).

    Keys hold the tensor itself as well as its id, so a freed tensor's reused id never hits.
    """

    def __init__(self) -> None:
        self._memo: dict[tuple[int, Any], tuple[torch.Tensor, torch.Tensor]] = {}

    def get(self, x: torch.Tensor, key: Any, make: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
        hit = self._memo.get((id(x), key))
        if hit is None or hit[0] is not x:
            hit = (x, make(x))
            self._memo[(id(x), key)] = hit
        return hit[1]

    def apply(self, module: nn.Module, x: torch.Tensor) -> torch.Tensor:
        """`module(x)` for a stateless module, shared with every module of equal description."""
        return self.get(x, _description(module), module)


def _description(module: nn.Module) -> tuple[str, tuple[tuple[str, str], ...]]:
    """Type and every public attribute (kernel, stride, padding, count_include_pad, ...): equal for
    stateless modules that compute the same function (a repr can leave attributes out)."""
    public = tuple(sorted((k, repr(v)) for k, v in vars(module).items() if not k.startswith("_")))
    return type(module).__qualname__, public


def _stateless(module: nn.Module) -> bool:
    """No parameters, buffers or randomness: equal descriptions mean equal outputs (ReLU, pooling)."""
    return (next(module.parameters(), None) is None and next(module.buffers(), None) is None
            and not isinstance(module, nn.modules.dropout._DropoutNd))


def scaled_batch_norm(bn: nn.BatchNorm2d, x: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """`scale * bn(x)` in one batch-norm call (scale: a 0-d tensor); running statistics move exactly as
    `bn(x)` would move them (the logic of `torch.nn.modules.batchnorm._BatchNorm.forward`)."""
    factor = 0.0 if bn.momentum is None else bn.momentum
    if bn.training and bn.track_running_stats and bn.num_batches_tracked is not None:
        bn.num_batches_tracked.add_(1)
        if bn.momentum is None:
            factor = 1.0 / float(bn.num_batches_tracked)
    batch_stats = bn.training or (bn.running_mean is None and bn.running_var is None)
    keep = not bn.training or bn.track_running_stats
    # materialised: torch 2.13's CPU channels-last batch norm ignores the strides of its weight, so a
    # stride-0 view of one α element would be read as the elements after it (regression-tested)
    weight = scale.expand(bn.num_features).contiguous() if bn.weight is None else bn.weight * scale
    bias = None if bn.bias is None else bn.bias * scale
    return F.batch_norm(x, bn.running_mean if keep else None, bn.running_var if keep else None, weight, bias,
                        batch_stats, factor, bn.eps)


def _activation_chain(op: nn.Module) -> bool:
    """A stateless activation first, batch norm last (ReLUConvBN, SepConv, DilConv, FactorizedConv)."""
    return (isinstance(op, nn.Sequential) and len(op) >= 3 and _stateless(op[0])
            and isinstance(op[-1], nn.BatchNorm2d))


def _shared_output(op: nn.Module, x: torch.Tensor, cache: SourceCache) -> torch.Tensor | None:
    """The op's output from the cache when the op has no parameters (pooling, identity), else None."""
    if isinstance(op, nn.Identity):
        return x
    if isinstance(op, Pool) and isinstance(op.project, nn.Identity):
        return cache.apply(op.pool, x)
    return None


def weighted_term(op: nn.Module, x: torch.Tensor, weight: torch.Tensor, cache: SourceCache,
                  total: torch.Tensor | None) -> torch.Tensor:
    """`total + weight * op(x)` (or `weight * op(x)` when total is None), by the cheapest exact route."""
    if isinstance(op, nn.Sequential) and _activation_chain(op):
        modules = list(op)
        h = cache.apply(modules[0], x)
        for module in modules[1:-1]:
            h = module(h)
        term = scaled_batch_norm(modules[-1], h, weight)  # type: ignore[arg-type]
    elif isinstance(op, FactorizedReduce) and _stateless(op.relu):
        h = cache.apply(op.relu, x)
        shifted = F.pad(h, (0, 1, 0, 1))[:, :, 1:, 1:]
        term = scaled_batch_norm(op.bn, torch.cat([op.conv_a(h), op.conv_b(shifted)], dim=1), weight)
    else:
        shared = _shared_output(op, x, cache)
        if shared is not None:
            return shared * weight if total is None else torch.addcmul(total, shared, weight)
        term = weight * op(x)
    return term if total is None else total + term
