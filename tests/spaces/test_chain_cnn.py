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
    strided = ChainCNNSpace(3, search_stride=True)
    names = [d.name for d, _ in strided.walk(strided.sample(np.random.default_rng(0)).tokens) if d.layer == 2]
    assert names[-2:] == ["stride_height", "stride_width"]  # the paper's two stride tokens


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


def test_stride_height_and_width_are_separate_tokens() -> None:
    space = ChainCNNSpace(num_layers=2, search_stride=True)
    arch = arch_from_layers(space, [{"height": 3, "width": 3, "filters": 24, "stride": [1, 2], "inputs": []},
                                    layer([0], stride=2)])
    assert space.layers(arch)[0]["stride"] == [1, 2] and space.layers(arch)[1]["stride"] == 2
    assert "/s1x2" in space.summary(arch)
    net = space.build(arch, SPEC)
    assert net.convs[0][0].stride == (1, 2) and net.convs[1][0].stride == (2, 2)
    assert net(torch.randn(2, 3, 16, 16)).shape == (2, 5)


def test_architectures_stored_with_one_stride_token_read_back_as_square_strides() -> None:
    space = ChainCNNSpace(num_layers=3, search_stride=True)
    # the old layout, per layer: anchors, height, width, filters, one stride token
    old = [1, 1, 0, 1,  0, 2, 2, 1, 0,  1, 0, 0, 0, 3, 1]
    arch = space.assemble(old)
    assert [lay["stride"] for lay in space.layers(arch)] == [2, 1, 2]
    assert len(arch.tokens) == len(old) + 3


def test_min_layers_adds_a_depth_token_and_networks_of_each_depth() -> None:
    space = ChainCNNSpace(num_layers=5, min_layers=2, search_stride=True)
    first = space.decision([])
    assert first is not None and first.name == "depth" and [first.choices[i] for i in first.options] == [2, 3, 4, 5]
    rng = np.random.default_rng(0)
    seen = set()
    for _ in range(40):
        arch = space.sample(rng)
        depth = space.depth(arch)
        seen.add(depth)
        assert len(space.layers(arch)) == depth
        again = space.from_json(json.loads(json.dumps(space.to_json(arch))))
        assert again == arch
    assert seen == {2, 3, 4, 5}
    net = space.build(arch_from_layers(space, [layer([]), layer([0])]), SPEC)
    assert len(net.convs) == 2
    with pytest.raises(ConfigError, match="min_layers"):
        ChainCNNSpace(num_layers=3, min_layers=4)
