"""DARTS genotypes: `none` never chosen, distinct inputs, the paper's network and its size."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from nasforge.core.errors import ConfigError
from nasforge.data.base import DataSpec
from nasforge.models.flops import count_params
from nasforge.spaces.darts import DARTS_OPS, DARTSSpace
from nasforge.spaces.nasnet import CELLS

# DARTS (second order) cells as published in the paper.
DARTS_V2 = {
    "normal": [["sep_conv_3x3", 0], ["sep_conv_3x3", 1], ["sep_conv_3x3", 0], ["sep_conv_3x3", 1],
               ["sep_conv_3x3", 1], ["skip_connect", 0], ["skip_connect", 0], ["dil_conv_3x3", 2]],
    "reduce": [["max_pool_3x3", 0], ["max_pool_3x3", 1], ["skip_connect", 2], ["max_pool_3x3", 1],
               ["max_pool_3x3", 0], ["skip_connect", 2], ["skip_connect", 2], ["max_pool_3x3", 1]],
}


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensors: threads only add overhead


def test_none_is_in_the_vocabulary_but_never_chosen() -> None:
    space = DARTSSpace()
    assert DARTS_OPS[0] == "none" and len(DARTS_OPS) == 8
    rng = np.random.default_rng(0)
    for _ in range(1000):
        arch = space.sample(rng)
        for cell in CELLS:
            for a, op_a, b, op_b, combine in space.blocks(arch, cell):
                assert "none" not in (op_a, op_b)
                assert a != b, "a node's two inputs come from different states"
                assert combine == "add"
        for dec, _ in space.walk(arch.tokens):
            if dec.name == "op":
                assert dec.choices == DARTS_OPS and 0 not in dec.options
    with pytest.raises(ConfigError, match="none"):
        DARTSSpace(ops=["none", "skip_connect"])


def test_genotype_round_trip_and_paper_network_size() -> None:
    space = DARTSSpace(layers=20, channels=36)
    arch = space.from_json(DARTS_V2)
    desc = space.describe(arch)
    assert desc["normal"] == DARTS_V2["normal"] and desc["normal_concat"] == [2, 3, 4, 5]
    assert space.from_json(json.loads(json.dumps(space.to_json(arch)))) == arch
    net = space.build(arch, DataSpec("classification", (3, 32, 32), 10))
    assert count_params(net) == 3_349_342  # the DARTS paper's 3.3M (its code prints 3.349342 MB)


def test_reductions_at_one_and_two_thirds() -> None:
    assert [i for i, r in enumerate(DARTSSpace(layers=8).plan()) if r] == [2, 5]
    assert [i for i, r in enumerate(DARTSSpace(layers=20).plan()) if r] == [6, 13]
    space = DARTSSpace(layers=3, channels=4)
    net = space.build(space.from_json(DARTS_V2), DataSpec("classification", (3, 16, 16), 10))
    shapes = []
    for cell in net.cells:
        cell.register_forward_hook(lambda m, i, o: shapes.append(tuple(o.shape[1:])))
    assert net(torch.randn(2, 3, 16, 16)).shape == (2, 10)
    assert shapes == [(16, 16, 16), (32, 8, 8), (64, 4, 4)]  # 4 nodes x width, width doubles per reduction


def test_key_merges_swapped_edges_of_a_node() -> None:
    space = DARTSSpace()
    arch = space.sample(np.random.default_rng(5))
    tokens = list(arch.tokens)
    tokens[0], tokens[1], tokens[2], tokens[3] = tokens[1], tokens[0], tokens[3], tokens[2]
    swapped = space.assemble(tokens)
    assert swapped != arch and space.key(swapped) == space.key(arch)


def test_sampled_cells_train_a_step() -> None:
    space = DARTSSpace(layers=3, channels=4)
    rng = np.random.default_rng(1)
    y = torch.randint(0, 10, (2,))
    for _ in range(3):
        net = space.build(space.sample(rng), DataSpec("classification", (3, 16, 16), 10))
        torch.nn.functional.cross_entropy(net(torch.randn(2, 3, 16, 16)), y).backward()
