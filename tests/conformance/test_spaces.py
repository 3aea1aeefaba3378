"""Every registered space: sampling, mutation, canonical keys, JSON, and a trainable module (the checks live in
nasforge.testing, so a plugin author runs the same ones on their own space)."""

from __future__ import annotations

import pytest

from nasforge.core import registry
from nasforge.data.base import DataSpec
from nasforge.testing import spaces

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
    spaces.sample_is_valid_and_seeded(make(name))


@pytest.mark.parametrize("name", SPACES)
def test_json_round_trip(name: str) -> None:
    spaces.json_round_trip(make(name))


@pytest.mark.parametrize("name", SPACES)
def test_mutate_changes_key_and_stays_valid(name: str) -> None:
    spaces.mutate_changes_key_and_stays_valid(make(name))


@pytest.mark.parametrize("name", SPACES)
def test_neighbours_are_one_step(name: str) -> None:
    spaces.neighbours_are_one_step(make(name))


@pytest.mark.parametrize("name", [n for n in SPACES if n in DATA_SPECS])
def test_build_forward_backward(name: str) -> None:
    spaces.build_forward_backward(make(name), DATA_SPECS[name])
