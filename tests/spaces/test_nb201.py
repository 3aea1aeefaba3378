"""NAS-Bench-201 cell: string form, canonical key, trainable network."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from nasforge.data.base import DataSpec
from nasforge.spaces.nb201 import NB201Space

SPACE = NB201Space(cells_per_stage=1, channels=8)


def test_string_round_trip() -> None:
    text = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"
    arch = SPACE.from_string(text)
    assert SPACE.to_string(arch) == text
    assert SPACE.from_json({"arch_str": text}) == arch
    assert SPACE.from_json(SPACE.to_json(arch)) == arch
    with pytest.raises(ValueError):
        SPACE.from_string("|conv~0|+|")


def key_of(text: str) -> str:
    return SPACE.key(SPACE.from_string(text))


def test_key_removes_dead_edges_and_merges_isomorphic_cells() -> None:
    # node 1 and node 2 swapped: the same computation
    a = "|nor_conv_3x3~0|+|nor_conv_1x1~0|none~1|+|none~0|nor_conv_3x3~1|skip_connect~2|"
    b = "|nor_conv_1x1~0|+|nor_conv_3x3~0|none~1|+|none~0|skip_connect~1|nor_conv_3x3~2|"
    assert key_of(a) == key_of(b)
    # an edge out of a node that never reaches the output is dead: its op does not matter
    c = "|nor_conv_3x3~0|+|none~0|none~1|+|skip_connect~0|none~1|none~2|"
    d = "|avg_pool_3x3~0|+|none~0|none~1|+|skip_connect~0|none~1|none~2|"
    assert key_of(c) == key_of(d)
    # every cell whose output is unreachable computes the same (nothing)
    e = "|nor_conv_3x3~0|+|nor_conv_3x3~0|none~1|+|none~0|none~1|none~2|"
    f = "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"
    assert key_of(e) == key_of(f)
    # ... but different operations stay different
    assert key_of(a) != key_of(c) and key_of(c) != key_of(e)


def test_keys_on_the_real_table(shared_data: Path) -> None:
    table = pd.read_csv(shared_data / "nasbench201" / "nb201_12epoch.csv")
    keys = [key_of(s) for s in table["arch_str"]]
    table["key"] = keys
    distinct = len(set(keys))
    # isomorphism alone leaves 6,466 (the NAS-Bench-201 paper); folding identity paths merges more
    assert 5000 <= distinct <= 6466
    # cells merged into one key were trained separately yet score alike; random pairs do not
    groups = table.groupby("key")["cifar10_valid"]
    within = float(groups.std().dropna().mean())
    rng = np.random.default_rng(0)
    pairs = rng.choice(len(table), size=(2000, 2))
    across = float(np.mean(np.abs(table["cifar10_valid"].to_numpy()[pairs[:, 0]]
                                  - table["cifar10_valid"].to_numpy()[pairs[:, 1]])))
    assert within < across / 3


def test_builds_and_trains_a_step() -> None:
    spec = DataSpec(task="classification", input_shape=(3, 16, 16), num_outputs=10)
    arch = SPACE.from_string("|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|"
                             "skip_connect~2|")
    model = SPACE.build(arch, spec)
    x = torch.randn(2, 3, 16, 16)
    loss = torch.nn.functional.cross_entropy(model(x), torch.tensor([1, 2]))
    loss.backward()
    assert model(x).shape == (2, 10)
