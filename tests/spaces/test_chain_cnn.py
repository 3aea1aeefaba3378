"""NAS-RL's chain CNN: anchor decisions and the three "compilation failure" rules."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from nasforge.core.errors import ConfigError
from nasforge.core.types import Architecture
from nasforge.data.base import DataSpec
from nasforge.models.networks import ChainNetwork, pad_concat
from nasforge.spaces.chain_cnn import FILTER_COUNTS, ChainCNNSpace

SPEC = DataSpec("classification", (3, 16, 16), 5)


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensors: threads only add overhead


def arch_from_layers(space: ChainCNNSpace, layers: list[dict]) -> Architecture:
    return space.from_json({"space": "chain_cnn", "description": {"layers": layers}})


def layer(inputs: list[int], filters: int = 24, stride: int = 1, size: int = 3) -> dict:
    return {"height": size, "width": size, "filters": filters, "stride": stride, "inputs": inputs}


def test_anchor_decisions_one_per_earlier_layer() -> None:
    space = ChainCNNSpace(num_layers=5)
    arch = space.sample(np.random.default_rng(0))
    anchors = [dec for dec, _ in space.walk(arch.tokens) if dec.kind == "anchor"]
    assert len(anchors) == 0 + 1 + 2 + 3 + 4
    assert {(d.layer, d.source) for d in anchors} == {(i, j) for i in range(5) for j in range(i)}
    assert all(d.name == "anchor" and d.choices == (False, True) for d in anchors)
    # per layer: anchors first, then filter height, width, count (no stride unless asked)
    names = [dec.name for dec, _ in space.walk(arch.tokens) if dec.layer == 2]
    assert names == ["anchor", "anchor", "filter_height", "filter_width", "filters"]
    assert "stride" in {d.name for d, _ in ChainCNNSpace(3, search_stride=True).walk(
        ChainCNNSpace(3, search_stride=True).sample(np.random.default_rng(0)).tokens)}


def test_layer_reading_nothing_reads_the_image() -> None:
    space = ChainCNNSpace(num_layers=3)
    arch = arch_from_layers(space, [layer([]), layer([]), layer([0])])
    net = space.build(arch, SPEC)
    assert isinstance(net, ChainNetwork)
    assert net.convs[1][0].in_channels == 3  # layer 1 has no input: the image
    assert net.convs[2][0].in_channels == 24


def test_unread_layers_all_feed_the_classifier() -> None:
    space = ChainCNNSpace(num_layers=4, filters=[24, 36, 48, 64])
    arch = arch_from_layers(space, [layer([], 24), layer([0], 36), layer([], 48), layer([1], 64)])
    net = space.build(arch, SPEC)
    assert net.outputs == (2, 3)  # 0 and 1 are read by later layers
    assert net.classifier.linear.in_features == 48 + 64
    assert net(torch.randn(2, 3, 16, 16)).shape == (2, 5)


def test_inputs_of_different_sizes_are_zero_padded_and_concatenated() -> None:
    space = ChainCNNSpace(num_layers=3, search_stride=True)
    arch = arch_from_layers(space, [layer([], stride=2), layer([]), layer([0, 1], filters=36)])
    net = space.build(arch, SPEC)
    assert net.convs[2][0].in_channels == 48  # channels concatenated
    out = net(torch.randn(2, 3, 15, 15))  # 8x8 and 15x15 maps meet in layer 2
    assert out.shape == (2, 5)
    small, big = torch.ones(1, 2, 3, 3), torch.ones(1, 1, 6, 5)
    joined = pad_concat([small, big])
    assert joined.shape == (1, 3, 6, 5)
    assert joined[:, :2].sum() == 18  # the small map kept, only zeros added


def test_description_round_trip_and_config() -> None:
    space = ChainCNNSpace(num_layers=4, search_stride=True)
    rng = np.random.default_rng(1)
    for _ in range(50):
        arch = space.sample(rng)
        desc = json.loads(json.dumps(space.describe(arch)))
        assert space.from_json(desc) == arch
    again = ChainCNNSpace(**json.loads(json.dumps(space.config())))
    assert again.config() == space.config()
    with pytest.raises(ConfigError):
        ChainCNNSpace(filters=[25])


def test_sampled_networks_train_a_step() -> None:
    space = ChainCNNSpace(num_layers=4, search_stride=True, filters=[24])
    rng = np.random.default_rng(2)
    y = torch.randint(0, 5, (2,))
    for _ in range(10):
        net = space.build(space.sample(rng), SPEC)
        loss = torch.nn.functional.cross_entropy(net(torch.randn(2, 3, 16, 16)), y)
        loss.backward()
        assert all(p.grad is not None for p in net.parameters())
    assert FILTER_COUNTS == (24, 36, 48, 64)
