from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from nasforge.core import registry
from nasforge.core.errors import ConfigError
from nasforge.core.types import Architecture
from nasforge.data.base import DataSpec
from nasforge.models.dense import BLOCKS
from nasforge.spaces.base import InvalidArchitecture
from nasforge.spaces.dnn import BLOCK_VOCABULARY, N_HP, DNNSpace

CLS = DataSpec("classification", (8, 8), 10)
REG = DataSpec("regression", (5,), 1)


def test_vocabulary_matches_builder_table() -> None:
    assert set(BLOCK_VOCABULARY) == set(BLOCKS)
    assert len(set(BLOCK_VOCABULARY)) == len(BLOCK_VOCABULARY)


def test_registry_and_config_round_trip() -> None:
    space = registry.create("space", "dnn", min_depth=2, max_depth=4, blocks=["fc_64", "res_fc_64"])
    assert isinstance(space, DNNSpace)
    config = json.loads(json.dumps(space.config()))
    again = DNNSpace(**config)
    assert again.config() == space.config()


def test_sampled_archs_build_and_train_step() -> None:
    space = DNNSpace()
    rng = np.random.default_rng(0)
    x = torch.randn(4, 8, 8)
    y = torch.randint(0, 10, (4,))
    for _ in range(200):
        arch = space.sample(rng)
        assert space.min_depth <= space.depth(arch) <= space.max_depth
        model = space.build(arch, CLS)
        out = model(x)
        assert out.shape == (4, 10)
        torch.nn.functional.cross_entropy(out, y).backward()
        assert all(p.grad is not None for p in model.parameters() if p.requires_grad)


def test_regression_head_has_one_output() -> None:
    space = DNNSpace()
    arch = space.sample(np.random.default_rng(1))
    assert space.build(arch, REG)(torch.randn(3, 5)).shape == (3, 1)


def test_json_round_trip_tokens_and_description() -> None:
    space = DNNSpace()
    rng = np.random.default_rng(2)
    for _ in range(50):
        arch = space.sample(rng)
        data = json.loads(json.dumps(space.to_json(arch)))
        assert space.from_json(data) == arch
        assert space.from_json({"space": "dnn", "description": data["description"]}) == arch
        assert space.from_json(space.describe(arch)) == arch
        assert Architecture.from_json(arch.to_json()) == arch


def test_description_defaults_and_errors() -> None:
    space = DNNSpace()
    arch = space.from_json({"blocks": ["fc_256", "res_fc_256", "fc_128"], "learning_rate": 0.003,
                            "normalization": "batch", "dropout": 0.1})
    assert space.summary(arch) == "relu|bn|d0.1 adam lr3e-3: fc_256 > res_fc_256 > fc_128"
    assert space.block_names(arch) == ["fc_256", "res_fc_256", "fc_128"]
    with pytest.raises(InvalidArchitecture, match="block"):
        space.from_json({"blocks": ["fc_7"]})
    with pytest.raises(InvalidArchitecture, match="depth"):
        space.from_json({"blocks": ["fc_64"] * 7})
    with pytest.raises(InvalidArchitecture, match="learning_rate"):
        space.from_json({"blocks": ["fc_64"], "learning_rate": 0.5})


def test_fixed_and_restricted_spaces_mask_choices() -> None:
    space = DNNSpace(max_depth=3, blocks=["fc_64", "fc_128"], fixed={"optimizer": "sgd", "learning_rate": 0.01})
    rng = np.random.default_rng(3)
    for _ in range(30):
        arch = space.mutate(space.sample(rng), rng)
        hp = space.hyperparameters(arch)
        assert hp["optimizer"] == "sgd" and hp["learning_rate"] == 0.01
        assert set(space.block_names(arch)) <= {"fc_64", "fc_128"}
    # the vocabulary is the full one (one controller head), only `allowed` shrinks
    block_decision = space.decision(space.sample(rng).tokens[: N_HP + 1])
    assert block_decision is not None and block_decision.name == "block"
    assert len(block_decision.choices) == len(BLOCK_VOCABULARY) and len(block_decision.options) == 2
    with pytest.raises(ConfigError):
        DNNSpace(fixed={"optimizer": "lbfgs"})
    with pytest.raises(ConfigError):
        DNNSpace(min_depth=3, max_depth=2)


def test_grow_adds_one_block_and_respects_max_depth() -> None:
    space = DNNSpace(max_depth=4)
    rng = np.random.default_rng(4)
    arch = space.from_json({"blocks": ["fc_64"]})
    for depth in range(2, 5):
        grown = space.grow(arch, rng)
        assert grown is not None and space.depth(grown) == depth
        old, new = space.block_names(arch), space.block_names(grown)
        # exactly one block inserted: removing some position of `new` gives `old`
        assert any(new[:i] + new[i + 1:] == old for i in range(len(new)))
        assert space.hyperparameters(grown) == space.hyperparameters(arch)
        arch = grown
    assert space.grow(arch, rng) is None


def test_mutate_changes_key_and_one_thing() -> None:
    space = DNNSpace()
    rng = np.random.default_rng(5)
    for _ in range(200):
        arch = space.sample(rng)
        child = space.mutate(arch, rng)
        assert space.key(child) != space.key(arch)
        space.assemble(child.tokens)  # valid
        hp_changes = sum(a != b for a, b in zip(arch.tokens[:N_HP], child.tokens[:N_HP]))
        if hp_changes:
            assert hp_changes == 1 and space.block_names(child) == space.block_names(arch)
        else:
            assert abs(space.depth(child) - space.depth(arch)) <= 1


def test_key_ignores_identity_blocks() -> None:
    space = DNNSpace()
    a = space.from_json({"blocks": ["fc_64", "identity"]})
    b = space.from_json({"blocks": ["identity", "fc_64"]})
    c = space.from_json({"blocks": ["fc_64"]})
    assert space.key(a) == space.key(b) == space.key(c)
    assert space.key(c) != space.key(space.from_json({"blocks": ["fc_128"]}))
