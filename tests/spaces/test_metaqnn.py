"""MetaQNN: the transition rules hold for every sampled architecture, and networks build."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from nasforge.core.errors import ConfigError
from nasforge.data.base import DataSpec
from nasforge.spaces.metaqnn import GAP, LAYER_STATES, SOFTMAX, MetaQNNSpace

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensors: threads only add overhead


def kind(name: str) -> str:
    return name.split("_")[0]


def kernel(name: str) -> int:
    return int(name.split("_")[1].split("x")[0])


@pytest.mark.parametrize("config", [{}, {"max_layers": 12, "max_fc": 1, "image_size": 28}])
def test_transition_rules_hold_for_1000_samples(config: dict) -> None:
    space = MetaQNNSpace(**config)
    rng = np.random.default_rng(0)
    seen_fc = seen_gap = 0
    for _ in range(1000):
        arch = space.sample(rng)
        layers, terminal = space.layer_states(arch)
        sizes = [space.image_size, *space.sizes(arch)]
        assert terminal in ("gap", "softmax") and 1 <= len(layers) <= space.max_layers
        assert not any(kind(n) in ("gap", "softmax") for n in layers)
        fc = 0
        for i, name in enumerate(layers):
            before = sizes[i]
            prev = kind(layers[i - 1]) if i else "start"
            if kind(name) == "pool":
                assert prev != "pool", "no pool after pool"
                assert kernel(name) <= before
            if kind(name) == "conv":
                assert kernel(name) <= before and prev != "fc"
                assert int(name.split("_")[2]) in space.conv_filters
            if kind(name) == "fc":
                fc += 1
                assert before <= 8, "FC only at small representation sizes"
            if prev == "fc":
                assert kind(name) == "fc", "after FC only FC (or the softmax)"
        assert fc <= space.max_fc
        if terminal == "gap":
            assert layers and kind(layers[-1]) in ("conv", "pool")
        seen_fc += fc > 0
        seen_gap += terminal == "gap"
    assert seen_fc and seen_gap  # the rules restrict, not forbid


def test_walk_ends_after_a_terminal_and_depth_is_capped() -> None:
    space = MetaQNNSpace(max_layers=2, image_size=8)
    conv = LAYER_STATES.index("conv_3x3_64")
    assert SOFTMAX not in space.decision([]).options  # at least one layer
    assert GAP in space.decision([conv]).options
    assert space.decision([conv, conv]).options == (GAP, SOFTMAX)
    assert space.decision([conv, SOFTMAX]) is None
    fc = LAYER_STATES.index("fc_128")
    assert GAP not in space.decision([fc]).options
    pool = LAYER_STATES.index("pool_2_s2")
    assert pool not in space.decision([pool]).options


def test_representation_size_follows_pooling() -> None:
    space = MetaQNNSpace(image_size=32)
    arch = space.from_json({"layers": ["conv_3x3_64", "pool_5_s3", "conv_1x1_64", "pool_2_s2", "fc_128"],
                            "terminal": "softmax"})
    assert space.sizes(arch) == [32, 10, 10, 5, 5]
    with pytest.raises(ValueError):  # FC at size 10 breaks the rules
        space.from_json({"layers": ["conv_3x3_64", "pool_5_s3", "fc_128"], "terminal": "softmax"})


def test_networks_build_and_train_a_step() -> None:
    space = MetaQNNSpace(max_layers=5, image_size=16, conv_filters=[8], fc_units=[32])
    rng = np.random.default_rng(3)
    y = torch.randint(0, 4, (3,))
    for _ in range(15):
        arch = space.sample(rng)
        net = space.build(arch, DataSpec("classification", (3, 16, 16), 4))
        loss = torch.nn.functional.cross_entropy(net(torch.randn(3, 3, 16, 16)), y)
        loss.backward()
    grey = space.build(space.sample(rng), DataSpec("classification", (12, 12), 4))  # smaller than image_size
    assert grey(torch.randn(2, 12, 12)).shape == (2, 4)


def test_config_round_trip_and_vocabulary_checks() -> None:
    space = MetaQNNSpace(conv_filters=[16, 32], fc_units=[64])
    assert MetaQNNSpace(**json.loads(json.dumps(space.config()))).config() == space.config()
    with pytest.raises(ConfigError, match="conv_filters"):
        MetaQNNSpace(conv_filters=[7])
