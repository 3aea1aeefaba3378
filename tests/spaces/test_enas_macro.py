"""ENAS macro space: an op and anchor skips per layer; reductions after 1/3 and 2/3 of the layers."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from nasforge.data.base import DataSpec
from nasforge.models.networks import ENASMacroNetwork, enas_reduction_layers
from nasforge.spaces.enas_macro import ENAS_OPS, ENASMacroSpace

SPEC = DataSpec("classification", (3, 16, 16), 10)


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensors: threads only add overhead


def test_each_layer_has_an_op_and_an_anchor_per_earlier_layer() -> None:
    space = ENASMacroSpace()
    arch = space.sample(np.random.default_rng(0))
    decisions = [dec for dec, _ in space.walk(arch.tokens)]
    assert len(decisions) == 12 + 12 * 11 // 2
    assert next(d for d in decisions if d.name == "op").choices == ENAS_OPS
    anchors = [d for d in decisions if d.kind == "anchor"]
    assert {(d.layer, d.source) for d in anchors} == {(k, j) for k in range(12) for j in range(k)}


def test_reductions_after_one_and_two_thirds() -> None:
    assert enas_reduction_layers(12) == (3, 7)
    assert enas_reduction_layers(6) == (1, 3)
    assert enas_reduction_layers(2) == ()
    space = ENASMacroSpace(num_layers=6, channels=4)
    # every layer skips from every earlier one, across both reductions
    arch = space.from_json({"layers": [{"op": ENAS_OPS[k % 6], "skips": list(range(k))} for k in range(6)]})
    net = space.build(arch, SPEC)
    assert isinstance(net, ENASMacroNetwork)
    sizes = []
    for layer in net.layers:
        layer.register_forward_hook(lambda m, i, o: sizes.append(tuple(o.shape[1:])))
    net(torch.randn(2, 3, 16, 16)).sum().backward()
    assert sizes == [(4, 16, 16), (4, 16, 16), (8, 8, 8), (8, 8, 8), (16, 4, 4), (16, 4, 4)]


def test_only_outputs_read_later_are_reduced() -> None:
    space = ENASMacroSpace(num_layers=6, channels=4)
    arch = space.from_json({"layers": [{"op": "conv_3x3", "skips": [0] if k == 5 else []} for k in range(6)]})
    net = space.build(arch, SPEC)
    assert sorted(net.reduce.keys()) == ["1_0", "1_1", "3_0", "3_3"]
    net(torch.randn(2, 3, 16, 16)).sum().backward()
    assert all(p.grad is not None for p in net.parameters())


def test_json_round_trip_and_training_step() -> None:
    space = ENASMacroSpace(num_layers=4, channels=4)
    rng = np.random.default_rng(1)
    y = torch.randint(0, 10, (2,))
    for _ in range(5):
        arch = space.sample(rng)
        assert space.from_json(json.loads(json.dumps({"description": space.describe(arch)}))) == arch
        net = space.build(arch, SPEC)
        torch.nn.functional.cross_entropy(net(torch.randn(2, 3, 16, 16)), y).backward()
    assert ENASMacroSpace(**space.config()).config() == space.config()
