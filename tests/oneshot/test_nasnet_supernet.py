"""The nasnet supernet: one path runs only its ops and its loose ends, the mixture reaches every α and op,
derive takes the argmaxes, and DARTS and ENAS search the space end to end (issue 22 item 4)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from nasforge.data.base import Dataset, DataSpec
from nasforge.data.loader import data_config, load_dataset
from nasforge.oneshot.darts import DARTS
from nasforge.oneshot.enas import ENAS
from nasforge.oneshot.nasnet_supernet import NASNetSearchCell, NASNetSupernet
from nasforge.oneshot.supernet import MixedOp, build_supernet
from nasforge.spaces.nasnet import CELLS, COMBINE, NASNetSpace

SPEC = DataSpec("classification", (1, 8, 8), 10)
CPU = torch.device("cpu")
pytestmark = pytest.mark.usefixtures("one_thread")


def small(**space: object) -> tuple[NASNetSpace, NASNetSupernet]:
    torch.manual_seed(0)
    nasnet = NASNetSpace(num_blocks=3, **space)  # type: ignore[arg-type]
    net = build_supernet(nasnet, SPEC, channels=4)
    assert isinstance(net, NASNetSupernet)
    return nasnet, net


def images(n: int = 8) -> torch.Tensor:
    return torch.randn(n, 1, 8, 8, generator=torch.Generator().manual_seed(1))


@pytest.fixture(scope="module")
def digits() -> Dataset:
    return load_dataset(data_config("builtin:digits", as_images=True))


def test_mixture_reaches_every_alpha_op_and_concat_projection() -> None:
    _, net = small()
    logits = net(images())
    assert logits.shape == (8, 10)
    logits.logsumexp(dim=1).mean().backward()
    assert len(net.arch_parameters()) == 3 * len(CELLS)
    for alpha in net.arch_parameters():
        assert alpha.grad is not None and float(alpha.grad.abs().sum()) > 0
    inputs = net.arch_parameters()[0]
    assert inputs.grad is not None
    for slot in range(inputs.shape[0]):  # states a slot may not read get no weight and no gradient
        assert not inputs.grad[slot, slot // 2 + 2:].any()
        assert inputs.grad[slot, :slot // 2 + 2].abs().sum() > 0
    for module in net.modules():
        if isinstance(module, MixedOp | NASNetSearchCell):
            for name, p in module.named_parameters():
                assert p.grad is not None, f"{name} got no gradient from the mixture"


def test_one_path_runs_only_its_ops_and_reads_only_its_loose_ends() -> None:
    space, net = small()
    # normal cell: block 0 reads state 1 twice, block 1 reads block 0 (so state 2 is not a loose end) and
    # concatenates, block 2 adds; reduce cell: every block reads the cell inputs, all three are loose ends
    normal = [[1, 1, 9, 10, 0], [2, 0, 5, 0, 1], [0, 1, 4, 11, 0]]
    reduce = [[0, 1, 9, 9, 0], [1, 0, 4, 5, 1], [0, 0, 10, 0, 0]]
    arch = space.assemble([t for block in normal + reduce for t in block])
    assert space.concat(arch, "normal") == [3, 4] and space.concat(arch, "reduce") == [2, 3, 4]
    logits = net(images(), arch)
    assert logits.shape == (8, 10)
    logits.sum().backward()
    assert all(a.grad is None for a in net.arch_parameters()), "one path does not read α"
    columns = net.op_columns()
    for cell in net.cells:
        assert isinstance(cell, NASNetSearchCell)
        blocks = normal if not cell.reduction else reduce
        for b, (_, _, op_a, op_b, concat) in enumerate(blocks):
            for side, op in ((0, op_a), (1, op_b)):
                mixed = cell.slots[2 * b + side]
                assert isinstance(mixed, MixedOp)
                for col, candidate in enumerate(mixed.candidates):
                    chosen = col == columns[space.ops_vocabulary[op]]
                    for p in candidate.parameters():
                        assert (p.grad is not None) == chosen, (b, side, mixed.names[col])
            for p in cell.concat_proj[b].parameters():
                assert (p.grad is not None) == bool(concat)
        grad = cell.out_weight.grad
        assert grad is not None
        per_block = grad.reshape(cell.channels, cell.num_blocks, cell.channels).abs().sum(dim=(0, 2))
        loose = {b - 2 for b in space.concat(arch, "reduce" if cell.reduction else "normal")}
        assert [bool(per_block[b] > 0) for b in range(cell.num_blocks)] == [b in loose for b in range(3)]


def test_any_sampled_cell_runs_on_the_supernet_and_in_its_own_network() -> None:
    space, net = small()
    rng = np.random.default_rng(0)
    for _ in range(4):
        arch = space.sample(rng)
        assert net(images(2), arch).shape == (2, 10)
        assert space.build(arch, SPEC)(images(2)).shape == (2, 10)


def test_derive_takes_readable_argmax_inputs_ops_and_combinations() -> None:
    space, net = small(ops=["identity", "conv_3x3", "max_pool_3x3", "sep_conv_3x3"])
    assert net.names == ("identity", "max_pool_3x3", "conv_3x3", "sep_conv_3x3")  # the space's order
    inputs, ops, combine = net.arch_parameters()[:3]
    with torch.no_grad():
        for alpha in net.arch_parameters():
            alpha.zero_()
        inputs[:, 3] = 9.0  # block 2's state: only slots of blocks >= 2 may read it
        inputs[:2, 1] = 1.0
        inputs[2:4, 0] = 1.0
        ops[:, 2] = 1.0
        ops[5, 3] = 2.0
        combine[1, COMBINE.index("concat")] = 1.0
    normal = space.describe(net.derive())["normal"]
    assert [block["inputs"] for block in normal] == [[1, 1], [0, 0], [3, 3]]
    assert [block["ops"] for block in normal] == [["conv_3x3"] * 2, ["conv_3x3"] * 2, ["conv_3x3", "sep_conv_3x3"]]
    assert [block["combine"] for block in normal] == ["add", "concat", "add"]
    again = net.derive()
    assert space.from_json(json.loads(json.dumps(space.to_json(again)))) == again


def test_alpha_entropy_ignores_the_states_a_slot_cannot_read() -> None:
    space, net = small()
    with torch.no_grad():
        for alpha in net.arch_parameters():
            alpha.zero_()
    rows = [math.log(s // 2 + 2) for s in range(6)] + [math.log(len(space.ops_vocabulary))] * 6 + [math.log(2)] * 3
    assert net.alpha_entropy() == pytest.approx(sum(rows) / len(rows))


def test_darts_searches_the_nasnet_space(digits: Dataset) -> None:
    space = NASNetSpace(num_blocks=2, ops=["identity", "conv_3x3", "max_pool_3x3"])
    method = DARTS(epochs=1, batch_size=32, data_fraction=0.1, max_valid=64,
                   supernet={"cells_per_stage": 1, "channels": 4})
    result = method.search(space, digits, seed=0, device=CPU, progress=lambda e, m: None)
    assert space.assemble(result.arch.tokens) == result.arch
    assert space.build(result.arch, digits.spec)(torch.zeros(2, 1, 8, 8)).shape == (2, 10)
    assert 0.0 <= result.metrics["valid_accuracy"] <= 1.0
    table = torch.tensor(result.state["alphas"]["normal_ops"])
    assert table.shape == (4, 3) and torch.allclose(table.sum(dim=1), torch.ones(4))
    json.dumps(result.state)


def test_enas_searches_the_nasnet_space(digits: Dataset) -> None:
    space = NASNetSpace(num_blocks=2, ops=["identity", "conv_3x3", "max_pool_3x3"])
    method = ENAS(epochs=1, train_steps=2, controller_steps=3, derive_samples=2, derive_batches=1, batch_size=16,
                  supernet={"cells_per_stage": 1, "channels": 4})
    result = method.search(space, digits, seed=0, device=CPU, progress=lambda e, m: None)
    assert space.assemble(result.arch.tokens) == result.arch
    assert 0.0 <= result.metrics["valid_accuracy"] <= 1.0
    assert space.build(result.arch, digits.spec)(torch.zeros(2, 1, 8, 8)).shape == (2, 10)
