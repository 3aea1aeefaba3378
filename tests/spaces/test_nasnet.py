"""NASNet cells: 13 ops, add/concat, stride 2 on a reduction cell's inputs, unused blocks as output."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from nasforge.data.base import DataSpec
from nasforge.models.cells import BlockSpec, Cell, unused_states
from nasforge.spaces.nasnet import COMBINE, NASNET_OPS, NASNetSpace

SPEC = DataSpec("classification", (3, 16, 16), 10)


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensors: threads only add overhead


def test_block_decisions_follow_the_paper() -> None:
    space = NASNetSpace()
    arch = space.sample(np.random.default_rng(0))
    decisions = [dec for dec, _ in space.walk(arch.tokens)]
    assert len(decisions) == 2 * 5 * 5  # two cells, five blocks, five steps per block
    assert [d.name for d in decisions[:5]] == ["input", "input", "op", "op", "combine"]
    assert decisions[2].choices == NASNET_OPS and len(NASNET_OPS) == 13
    assert decisions[4].choices == COMBINE
    # block b reads h_{i-2}, h_{i-1} or an earlier block of the cell
    assert [decisions[5 * b].options for b in range(5)] == [tuple(range(b + 2)) for b in range(5)]


def test_reduction_cells_halve_and_normal_cells_keep_the_resolution() -> None:
    space = NASNetSpace(num_blocks=3, cells_per_stage=1, channels=4)
    assert space.plan() == [False, True, False, True, False]
    rng = np.random.default_rng(1)
    for _ in range(3):
        net = space.build(space.sample(rng), SPEC)
        sizes: list[int] = []
        for cell in net.cells:
            cell.register_forward_hook(lambda m, i, o, sizes=sizes: sizes.append(o.shape[-1]))
        net(torch.randn(2, 3, 16, 16)).sum().backward()
        assert sizes == [16, 8, 8, 4, 4]
    cell = Cell([BlockSpec(0, "identity", 1, "max_pool_5x5"), BlockSpec(2, "conv_3x3", 1, "sep_conv_7x7")],
                [3], 6, 6, 4, reduction=True, reduction_prev=False)
    strides = [m.stride for m in cell.ops[0].modules() if isinstance(m, torch.nn.Conv2d)]
    assert strides and all(s == (2, 2) for s in strides)  # identity on an input becomes a stride-2 reduce
    assert cell.ops[1].pool.stride == 2  # max_pool_5x5 on h_{i-1}
    assert cell.ops[3][1].stride == (2, 2)  # sep_conv_7x7 on h_{i-1}: its first (depthwise) conv
    assert cell.ops[2][1].stride == (1, 1)  # ops on block outputs are already reduced
    out = cell(torch.randn(1, 6, 8, 8), torch.randn(1, 6, 8, 8))
    assert out.shape == (1, 4, 4, 4)


def test_cell_output_concatenates_unused_blocks() -> None:
    blocks = [BlockSpec(0, "identity", 1, "identity", "concat"), BlockSpec(1, "conv_1x1", 0, "avg_pool_3x3"),
              BlockSpec(2, "conv_3x3", 0, "identity")]
    assert unused_states(blocks) == [3, 4]
    cell = Cell(blocks, unused_states(blocks), 5, 5, 4, reduction=False, reduction_prev=False)
    assert cell.out_channels == 8
    space = NASNetSpace(num_blocks=3)
    arch = space.parse({"normal": [{"inputs": [0, 1], "ops": ["identity", "identity"], "combine": "concat"},
                                   {"inputs": [1, 0], "ops": ["conv_1x1", "avg_pool_3x3"]},
                                   {"inputs": [2, 0], "ops": ["conv_3x3", "identity"]}],
                        "reduce": [{"inputs": [0, 1], "ops": ["conv_1x1", "conv_1x1"]}] * 3})
    assert space.concat(arch, "normal") == [3, 4] and space.concat(arch, "reduce") == [2, 3, 4]


def test_key_sorts_the_two_inputs_of_a_block_and_json_round_trips() -> None:
    space = NASNetSpace(num_blocks=3)
    rng = np.random.default_rng(2)
    for _ in range(30):
        arch = space.sample(rng)
        t = list(arch.tokens)
        t[0], t[1], t[2], t[3] = t[1], t[0], t[3], t[2]
        assert space.key(space.assemble(t)) == space.key(arch)
        assert space.from_json(json.loads(json.dumps({"description": space.describe(arch)}))) == arch
    assert NASNetSpace(**json.loads(json.dumps(space.config()))).config() == space.config()
