"""Every registered space: sampling, mutation, canonical keys, JSON, and a trainable module."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from nasforge.core import registry
from nasforge.data.base import DataSpec

SPACES = registry.available("space")
# A small input per space's builder: what it was designed for (images or flat features).
DATA_SPECS = {
    "dnn": DataSpec(task="classification", input_shape=(13,), num_outputs=3),
    "nb201": DataSpec(task="classification", input_shape=(3, 16, 16), num_outputs=10),
    "chain_cnn": DataSpec(task="classification", input_shape=(3, 16, 16), num_outputs=10),
    "metaqnn": DataSpec(task="classification", input_shape=(3, 16, 16), num_outputs=10),
    "nasnet": DataSpec(task="classification", input_shape=(3, 16, 16), num_outputs=10),
    "darts": DataSpec(task="classification", input_shape=(3, 16, 16), num_outputs=10),
    "enas_macro": DataSpec(task="classification", input_shape=(3, 16, 16), num_outputs=10),
    "cnn": DataSpec(task="classification", input_shape=(3, 16, 16), num_outputs=10),
    "rnn_cell": DataSpec(task="language_model", input_shape=(6,), num_outputs=50),
    "sequence": DataSpec(task="classification", input_shape=(9, 3), num_outputs=4),  # 2 channels + the mask
}
SMALL_CONFIG = {
    "nb201": {"cells_per_stage": 1, "channels": 8},
    "chain_cnn": {"num_layers": 4, "search_stride": True, "filters": [24], "min_layers": 2},
    "metaqnn": {"max_layers": 5, "image_size": 16, "conv_filters": [8, 16], "fc_units": [32]},
    "nasnet": {"num_blocks": 2, "cells_per_stage": 1, "channels": 4},
    "darts": {"num_nodes": 3, "layers": 3, "channels": 4},
    "enas_macro": {"num_layers": 5, "channels": 4},
    "rnn_cell": {"num_nodes": 4, "embedding_size": 8, "hidden_size": 8},
    "cnn": {"max_depth": 4},
    "sequence": {"max_depth": 3},
}


def make(name: str):
    return registry.create("space", name, **SMALL_CONFIG.get(name, {}))


@pytest.mark.parametrize("name", SPACES)
def test_sample_is_valid_and_seeded(name: str) -> None:
    space = make(name)
    a = [space.sample(np.random.default_rng(7)) for _ in range(3)]
    assert len({space.key(x) for x in a}) == 1, "same seed must give the same architecture"
    rng = np.random.default_rng(0)
    keys = set()
    for _ in range(200):
        arch = space.sample(rng)
        assert space.assemble(arch.tokens) == arch
        keys.add(space.key(arch))
    assert len(keys) > 20, "200 samples should not collapse to a handful of architectures"


@pytest.mark.parametrize("name", SPACES)
def test_json_round_trip(name: str) -> None:
    space = make(name)
    rng = np.random.default_rng(1)
    for _ in range(200):
        arch = space.sample(rng)
        data = json.loads(json.dumps(space.to_json(arch)))
        back = space.from_json(data)
        assert space.key(back) == space.key(arch)
        assert isinstance(space.summary(arch), str) and space.summary(arch)


@pytest.mark.parametrize("name", SPACES)
def test_mutate_changes_key_and_stays_valid(name: str) -> None:
    space = make(name)
    rng = np.random.default_rng(2)
    changed = 0
    for _ in range(100):
        arch = space.sample(rng)
        child = space.mutate(arch, rng)
        space.assemble(child.tokens)
        changed += space.key(child) != space.key(arch)
    assert changed >= 95


@pytest.mark.parametrize("name", SPACES)
def test_neighbours_are_one_step(name: str) -> None:
    space = make(name)
    arch = space.sample(np.random.default_rng(3))
    neighbours = space.neighbours(arch)
    assert neighbours
    keys = [space.key(n) for n in neighbours]
    assert len(keys) == len(set(keys)) and space.key(arch) not in keys


@pytest.mark.parametrize("name", [n for n in SPACES if n in DATA_SPECS])
def test_build_forward_backward(name: str) -> None:
    space = make(name)
    spec = DATA_SPECS[name]
    rng = np.random.default_rng(4)
    torch.manual_seed(0)
    for _ in range(200):
        arch = space.sample(rng)
        model = space.build(arch, spec)
        if spec.task == "language_model":  # token ids in, next-token logits out
            x = torch.randint(0, spec.num_outputs, (4, *spec.input_shape))
            out = model(x)
            assert out.shape == (4, *spec.input_shape, spec.num_outputs)
        else:
            x = torch.randn(4, *spec.input_shape)
            out = model(x)
            assert out.shape == (4, spec.num_outputs)
        out.sum().backward()
        assert sum(p.numel() for p in model.parameters()) > 0
