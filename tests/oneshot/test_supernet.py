"""CNN supernets: shapes, one path touches only its ops, the mixture touches all, derive rules."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from nasforge.core.errors import ConfigError
from nasforge.data.base import DataSpec
from nasforge.oneshot.supernet import (
    DARTSSearchCell,
    DARTSSupernet,
    ENASMacroSupernet,
    MixedOp,
    NB201SearchCell,
    NB201Supernet,
    Supernet,
    build_supernet,
)
from nasforge.spaces.darts import DARTS_OPS, DARTSSpace
from nasforge.spaces.enas_macro import ENAS_OPS, ENASMacroSpace
from nasforge.spaces.metaqnn import MetaQNNSpace
from nasforge.spaces.nb201 import OPS as NB201_OPS
from nasforge.spaces.nb201 import NB201Space

SPEC = DataSpec("classification", (1, 8, 8), 10)


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensors: threads only add overhead


def small(space_name: str) -> tuple[Any, Supernet]:
    torch.manual_seed(0)
    if space_name == "darts":
        space: Any = DARTSSpace()
        return space, build_supernet(space, SPEC, layers=3, channels=4)
    if space_name == "nb201":
        space = NB201Space()
        return space, build_supernet(space, SPEC, channels=4)
    space = ENASMacroSpace(num_layers=6)
    return space, build_supernet(space, SPEC, channels=4)


def images(n: int = 8) -> torch.Tensor:
    return torch.randn(n, 1, 8, 8, generator=torch.Generator().manual_seed(1))


def grads_of(module: nn.Module) -> list[torch.Tensor | None]:
    return [p.grad for p in module.parameters()]


@pytest.mark.parametrize("space_name", ["darts", "nb201", "enas_macro"])
def test_mixture_forward_backward_reaches_every_alpha_and_op(space_name: str) -> None:
    _, net = small(space_name)
    logits = net(images())
    assert logits.shape == (8, 10)
    logits.logsumexp(dim=1).mean().backward()
    for alpha in net.arch_parameters():
        assert alpha.grad is not None and float(alpha.grad.abs().sum()) > 0
    mixed = [m for m in net.modules() if isinstance(m, MixedOp)]
    assert mixed
    for op in mixed:
        for name, candidate in zip(op.names, op.candidates):
            for p in candidate.parameters():
                assert p.grad is not None, f"{name} got no gradient from the mixture"


@pytest.mark.parametrize("space_name", ["darts", "nb201", "enas_macro"])
def test_single_path_runs_only_the_chosen_ops(space_name: str) -> None:
    space, net = small(space_name)
    # nb201: a fixed cell with both convs, a pool, a skip and a `none`; the others: a sample
    arch = space.assemble([3, 2, 1, 4, 0, 3]) if space_name == "nb201" else space.sample(np.random.default_rng(3))
    logits = net(images(), arch)
    assert logits.shape == (8, 10)
    logits.sum().backward()
    assert all(a.grad is None for a in net.arch_parameters()), "one path does not read α"
    chosen = chosen_candidates(space, net, arch)
    touched = 0
    for key, candidate in candidates(net):
        grads = grads_of(candidate)
        if key in chosen:
            assert all(g is not None for g in grads), f"chosen op {key} got no gradient"
            touched += len(grads)
        else:
            assert all(g is None for g in grads), f"op {key} is not on the path but got a gradient"
    assert touched > 0


def candidates(net: Supernet) -> Iterator[tuple[tuple[int, int, int], nn.Module]]:
    """((container index, edge, column), module) for every candidate op, in module order."""
    containers = [m for m in net.modules() if isinstance(m, DARTSSearchCell | NB201SearchCell)]
    if isinstance(net, ENASMacroSupernet):
        for layer, mixed in enumerate(net.layer_ops):
            assert isinstance(mixed, MixedOp)
            for col, candidate in enumerate(mixed.candidates):
                yield (0, layer, col), candidate
        return
    for c, container in enumerate(containers):
        for e, mixed in enumerate(container.edges):
            assert isinstance(mixed, MixedOp)
            for col, candidate in enumerate(mixed.candidates):
                yield (c, e, col), candidate


def chosen_candidates(space: Any, net: Supernet, arch: Any) -> set[tuple[int, int, int]]:
    columns = net.op_columns()
    if isinstance(net, NB201Supernet):
        cells = [m for m in net.modules() if isinstance(m, NB201SearchCell)]
        return {(c, e, t) for c in range(len(cells)) for e, t in enumerate(arch.tokens)}
    if isinstance(net, ENASMacroSupernet):
        return {(0, k, columns[layer["op"]]) for k, layer in enumerate(space.layers(arch))}
    assert isinstance(net, DARTSSupernet)
    out = set()
    for c, cell in enumerate(net.cells):
        blocks = space.blocks(arch, "reduce" if cell.reduction else "normal")
        offset = 0
        for i, (a, op_a, b, op_b, _) in enumerate(blocks):
            out |= {(c, offset + a, columns[op_a]), (c, offset + b, columns[op_b])}
            offset += i + 2
    return out


@pytest.mark.parametrize("space_name", ["darts", "nb201", "enas_macro"])
def test_derive_gives_a_valid_buildable_architecture(space_name: str) -> None:
    space, net = small(space_name)
    arch = net.derive()
    assert arch.space == space.name
    again = space.from_json(json.loads(json.dumps(space.to_json(arch))))
    assert again == arch
    model = space.build(arch, SPEC)
    assert model(images(4)).shape == (4, 10)
    assert net(images(4), arch).shape == (4, 10), "the supernet runs its own derived path"


def test_weight_and_arch_parameters_partition_the_parameters() -> None:
    for name in ("darts", "nb201", "enas_macro"):
        _, net = small(name)
        arch = {id(p) for p in net.arch_parameters()}
        weights = {id(p) for p in net.weight_parameters()}
        assert arch and weights and not arch & weights
        assert arch | weights == {id(p) for p in net.parameters()}


def test_darts_derive_follows_the_papers_rule() -> None:
    """Per node the two edges whose strongest non-`none` weight is largest; `none` counts in the softmax only."""
    space = DARTSSpace()
    net = build_supernet(space, SPEC, layers=3, channels=2)
    col = {name: k for k, name in enumerate(DARTS_OPS)}
    logits = torch.zeros(14, len(DARTS_OPS))
    # node 0 reads states 0, 1 (edges 0-1): both kept, the stronger first
    logits[0, col["none"]], logits[0, col["sep_conv_3x3"]] = 10.0, 2.0
    logits[1, col["skip_connect"]] = 1.0
    # node 1 reads states 0, 1, 2 (edges 2-4): edge 2 is mostly `none`, so it drops out although its
    # `none` weight is the largest of the node
    logits[2, col["none"]], logits[2, col["dil_conv_5x5"]] = 10.0, 3.0
    logits[3, col["avg_pool_3x3"]] = 2.0
    logits[4, col["sep_conv_5x5"]] = 2.5
    # node 2 (edges 5-8, states 0-3), node 3 (edges 9-13, states 0-4)
    logits[8, col["max_pool_3x3"]], logits[6, col["dil_conv_3x3"]] = 4.0, 3.0
    logits[9, col["sep_conv_3x3"]], logits[13, col["skip_connect"]] = 3.0, 4.0
    with torch.no_grad():
        net.arch_parameters()[0].copy_(logits)
        net.arch_parameters()[1].copy_(logits)
    genotype = space.describe(net.derive())
    expected = [["skip_connect", 1], ["sep_conv_3x3", 0], ["sep_conv_5x5", 2], ["avg_pool_3x3", 1],
                ["max_pool_3x3", 3], ["dil_conv_3x3", 1], ["skip_connect", 4], ["sep_conv_3x3", 0]]
    assert genotype["normal"] == expected
    assert genotype["reduce"] == expected


def test_darts_supernet_keeps_to_the_spaces_op_subset() -> None:
    space = DARTSSpace(ops=["skip_connect", "sep_conv_3x3"])
    net = build_supernet(space, SPEC, layers=3, channels=2)
    assert isinstance(net, DARTSSupernet)
    assert net.names == ("none", "skip_connect", "sep_conv_3x3")
    assert all(a.shape == (14, 3) for a in net.arch_parameters())
    with torch.no_grad():
        net.arch_parameters()[0][:, 0] = 5.0  # `none` everywhere strongest: still never derived
    ops = {op for cell in ("normal", "reduce") for op, _ in space.describe(net.derive())[cell]}
    assert ops <= {"skip_connect", "sep_conv_3x3"}


def test_nb201_derive_takes_each_edges_argmax() -> None:
    space = NB201Space()
    net = build_supernet(space, SPEC, channels=2)
    wanted = [0, 3, 1, 2, 4, 3]
    logits = torch.zeros(6, len(NB201_OPS))
    for edge, op in enumerate(wanted):
        logits[edge, op] = 1.0
    with torch.no_grad():
        net.arch_parameters()[0].copy_(logits)
    assert list(net.derive().tokens) == wanted


def test_enas_macro_derive_takes_argmax_ops_and_strong_skips() -> None:
    space = ENASMacroSpace(num_layers=3)
    net = build_supernet(space, SPEC, channels=2)
    ops, skips = net.arch_parameters()
    with torch.no_grad():
        ops.zero_()
        ops[0, ENAS_OPS.index("sep_conv_5x5")] = 1.0
        ops[1, ENAS_OPS.index("max_pool_3x3")] = 1.0
        ops[2, ENAS_OPS.index("conv_3x3")] = 1.0
        skips.fill_(-1.0)
        skips[2, 0] = 1.0
    assert space.describe(net.derive()) == {"layers": [{"op": "sep_conv_5x5", "skips": []},
                                                       {"op": "max_pool_3x3", "skips": []},
                                                       {"op": "conv_3x3", "skips": [0]}]}


def test_alpha_entropy_is_maximal_for_uniform_alpha_and_falls_when_peaked() -> None:
    _, net = small("darts")
    with torch.no_grad():
        for a in net.arch_parameters():
            a.zero_()
    assert net.alpha_entropy() == pytest.approx(math.log(len(DARTS_OPS)))
    with torch.no_grad():
        net.arch_parameters()[0][:, 4] = 5.0
    assert net.alpha_entropy() < math.log(len(DARTS_OPS)) - 0.5


def test_build_supernet_refuses_bad_input() -> None:
    with pytest.raises(ConfigError, match="no supernet for space 'metaqnn'"):
        build_supernet(MetaQNNSpace(), SPEC)
    with pytest.raises(ConfigError, match="bad options"):
        build_supernet(NB201Space(), SPEC, layers=3)
    with pytest.raises(ConfigError, match="num_layers"):
        build_supernet(ENASMacroSpace(num_layers=6), SPEC, layers=4)
