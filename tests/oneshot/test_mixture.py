"""The fast mixture (`nasforge.oneshot.mixture`) computes exactly what the literal `sum_k w_k op_k(x)` does."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import torch
from torch import nn

from nasforge.data.base import DataSpec
from nasforge.oneshot.mixture import SourceCache, scaled_batch_norm
from nasforge.oneshot.supernet import MixedOp, Supernet, build_supernet
from nasforge.spaces.darts import DARTSSpace
from nasforge.spaces.enas_macro import ENASMacroSpace
from nasforge.spaces.nb201 import NB201Space

SPEC = DataSpec("classification", (3, 8, 8), 10)

pytestmark = pytest.mark.usefixtures("one_thread")


def literal_forward(self: MixedOp, x: torch.Tensor, weights: torch.Tensor, cache: Any = None) -> torch.Tensor:
    """The definition: every non-`none` op run as its own module, multiplied by its weight, summed."""
    terms = [weights[k] * op(x) for k, op in enumerate(self.candidates) if self.names[k] != "none"]
    return torch.stack(terms).sum(dim=0)


def supernet(space_name: str, channels_last: bool) -> Supernet:
    torch.manual_seed(0)
    space: Any = {"darts": DARTSSpace(), "nb201": NB201Space(), "enas_macro": ENASMacroSpace(num_layers=6)}[space_name]
    options = {"layers": 3} if space_name == "darts" else {}
    # affine batch norm, so α folded into a BN's own scale and shift is covered too
    net = build_supernet(space, SPEC, channels=4, affine=True, channels_last=channels_last, **options).double()
    with torch.no_grad():  # away from the near-uniform start, so each op's weight matters
        for alpha in net.arch_parameters():
            alpha.normal_(0.0, 1.0)
    return net


def run(net: Supernet, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor], dict[str, torch.Tensor]]:
    logits = net(x)
    (logits.logsumexp(dim=1) * torch.arange(1, len(x) + 1, dtype=x.dtype)).sum().backward()
    grads = [torch.zeros_like(p) if p.grad is None else p.grad.clone() for p in net.parameters()]
    return logits.detach(), grads, {k: b.clone() for k, b in net.named_buffers()}


@pytest.mark.parametrize("channels_last", [True, False])
@pytest.mark.parametrize("space_name", ["darts", "nb201", "enas_macro"])
def test_fast_mixture_matches_the_literal_sum(space_name: str, channels_last: bool,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    fast = supernet(space_name, channels_last)
    literal = copy.deepcopy(fast)
    x = torch.randn(6, 3, 8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    fast_out, fast_grads, fast_buffers = run(fast, x)
    monkeypatch.setattr(MixedOp, "forward", literal_forward)
    ref_out, ref_grads, ref_buffers = run(literal, x)
    torch.testing.assert_close(fast_out, ref_out, rtol=1e-9, atol=1e-10)
    names = [n for n, _ in fast.named_parameters()]
    for name, g, r in zip(names, fast_grads, ref_grads):
        torch.testing.assert_close(g, r, rtol=1e-8, atol=1e-10, msg=lambda m, name=name: f"{name}: {m}")
    assert fast_buffers.keys() == ref_buffers.keys()
    for name in fast_buffers:  # running statistics and batch counts move identically
        torch.testing.assert_close(fast_buffers[name], ref_buffers[name], rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("affine", [True, False])
@pytest.mark.parametrize("momentum", [0.1, None])
@pytest.mark.parametrize("training", [True, False])
def test_scaled_batch_norm_is_scale_times_batch_norm(affine: bool, momentum: float | None, training: bool,
                                                    channels_last: bool) -> None:
    torch.manual_seed(0)
    bn = nn.BatchNorm2d(4, affine=affine, momentum=momentum).double()
    if affine:
        with torch.no_grad():
            bn.weight.uniform_(0.5, 1.5)
            bn.bias.uniform_(-1.0, 1.0)
    bn.train(training)
    twin = copy.deepcopy(bn)
    x = torch.randn(8, 4, 8, 8, dtype=torch.float64)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    x.requires_grad_()
    alpha = torch.tensor([0.1, 0.3, -0.2], dtype=torch.float64, requires_grad=True)
    scale = torch.softmax(alpha, dim=0)[1]  # as in a mixture: a view into a row of weights, not its start
    for _ in range(2):  # twice, so momentum=None's cumulative average is exercised
        got = scaled_batch_norm(bn, x, scale)
        want = scale * twin(x)
    torch.testing.assert_close(got, want)
    upstream = torch.randn(got.shape, dtype=torch.float64).contiguous(memory_format=torch.channels_last)
    g_got = torch.autograd.grad(got, [x, alpha], upstream, retain_graph=True)  # `scale` is shared
    g_want = torch.autograd.grad(want, [x, alpha], upstream)
    for a, b in zip(g_got, g_want):
        torch.testing.assert_close(a, b)
    for (name, b), t in zip(bn.named_buffers(), twin.buffers()):
        torch.testing.assert_close(b, t, msg=name)


def test_source_cache_computes_once_per_tensor_and_never_confuses_tensors() -> None:
    cache = SourceCache()
    calls: list[int] = []

    def make(t: torch.Tensor) -> torch.Tensor:
        calls.append(1)
        return t * 2

    a = torch.ones(3)
    assert cache.get(a, "double", make) is cache.get(a, "double", make)
    assert len(calls) == 1
    b = torch.full((3,), 5.0)
    assert torch.equal(cache.get(b, "double", make), torch.full((3,), 10.0))
    assert len(calls) == 2
    relu = cache.apply(nn.ReLU(), a)
    assert cache.apply(nn.ReLU(), a) is relu  # another ReLU module: the same function, shared
    assert cache.apply(nn.Softplus(), a) is not relu  # a different activation is never confused with it
    image = torch.randn(1, 1, 4, 4)
    with_pad = cache.apply(nn.AvgPool2d(3, 1, 1, count_include_pad=True), image)
    without = cache.apply(nn.AvgPool2d(3, 1, 1, count_include_pad=False), image)  # same repr, other function
    assert not torch.equal(with_pad, without)


def test_channels_last_supernet_keeps_its_layout_and_can_be_turned_off() -> None:
    net = supernet("nb201", channels_last=True)
    conv = next(m for m in net.modules() if isinstance(m, nn.Conv2d))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    assert net.images(torch.randn(2, 3, 8, 8)).is_contiguous(memory_format=torch.channels_last)
    plain = supernet("nb201", channels_last=False)
    assert not plain.channels_last and plain.images(torch.randn(2, 3, 8, 8)).is_contiguous()
