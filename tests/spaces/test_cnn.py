"""Model Search's conv tower: conv blocks before dense ones, `grow`, and the model_search strategy."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from nasforge.core.errors import ConfigError
from nasforge.core.types import Result, TrialState
from nasforge.data.base import DataSpec
from nasforge.models.dense import BLOCKS as DENSE_BLOCKS
from nasforge.models.networks import CONV_BLOCKS, TOWER_DENSE_BLOCKS
from nasforge.spaces.cnn import BLOCK_VOCABULARY, CONV_BLOCK_NAMES, DENSE_BLOCK_NAMES, CNNSpace
from nasforge.strategies.model_search import ModelSearch

SPEC = DataSpec("classification", (3, 16, 16), 10)


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensors: threads only add overhead


def ordered(names: list[str]) -> bool:
    """No conv block after a dense one."""
    kinds = [n in DENSE_BLOCK_NAMES for n in names if n != "identity"]
    return kinds == sorted(kinds)


def test_vocabulary_matches_builder_tables() -> None:
    assert set(CONV_BLOCK_NAMES) == set(CONV_BLOCKS)
    assert set(DENSE_BLOCK_NAMES) == set(TOWER_DENSE_BLOCKS) and set(DENSE_BLOCK_NAMES) <= set(DENSE_BLOCKS)
    assert len(set(BLOCK_VOCABULARY)) == len(BLOCK_VOCABULARY)


def test_samples_keep_conv_before_dense_and_build() -> None:
    space = CNNSpace(max_depth=5)
    rng = np.random.default_rng(0)
    for _ in range(500):
        arch = space.sample(rng)
        assert ordered(space.block_names(arch)) and 1 <= space.depth(arch) <= 5
    y = torch.randint(0, 10, (2,))
    for _ in range(10):
        net = space.build(space.sample(rng), SPEC)
        torch.nn.functional.cross_entropy(net(torch.randn(2, 3, 16, 16)), y).backward()


def test_grow_adds_one_block_in_order_until_max_depth() -> None:
    space = CNNSpace(max_depth=6)
    rng = np.random.default_rng(1)
    for _ in range(50):
        arch = space.sample(rng)
        while (child := space.grow(arch, rng)) is not None:
            assert space.depth(child) == space.depth(arch) + 1
            assert ordered(space.block_names(child))
            before, after = space.block_names(arch), space.block_names(child)
            assert "identity" not in set(after) - set(before)
            arch = child
        assert space.depth(arch) == space.max_depth


def test_key_ignores_identity_and_description_round_trips() -> None:
    space = CNNSpace(max_depth=4)
    a = space.from_json({"blocks": ["conv_3x3_16", "identity", "fc_64"]})
    b = space.from_json({"blocks": ["conv_3x3_16", "fc_64"]})
    assert a != b and space.key(a) == space.key(b)
    assert space.from_json(json.loads(json.dumps(space.to_json(a)))) == a
    with pytest.raises(ValueError):
        space.from_json({"blocks": ["fc_64", "conv_3x3_16"]})
    with pytest.raises(ConfigError):
        CNNSpace(blocks=["conv_9x9"])
    restricted = CNNSpace(blocks=["conv_3x3_16", "fc_64"])
    rng = np.random.default_rng(2)
    assert all(set(restricted.block_names(restricted.sample(rng))) <= {"conv_3x3_16", "fc_64"} for _ in range(50))


def test_model_search_grows_the_tower() -> None:
    space = CNNSpace(max_depth=6)
    strategy = ModelSearch(space, seed=0, unlock_every=2, initial_depth=1, grow_probability=1.0)
    depths = []
    for _ in range(20):
        for proposal in strategy.ask(1):
            depth = space.depth(proposal.arch)
            depths.append(depth)
            strategy.tell(proposal, Result(TrialState.COMPLETE, score=float(depth)))
    assert max(depths[-5:]) > max(depths[:3])
