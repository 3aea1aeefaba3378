"""NAS-Bench-201 cell: string form, canonical key, trainable network."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from nasforge.data.base import DataSpec
from nasforge.spaces.base import InvalidArchitecture, TokenSpace
from nasforge.spaces.nb201 import DEAD_KEY, NB201Space, path_encoding

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


# ---- more cases ------------------------------------------------------------------------

EQUIVALENT = [
    # swapping intermediate nodes 1 and 2 (no edge between them)
    ("|nor_conv_3x3~0|+|nor_conv_1x1~0|none~1|+|skip_connect~0|avg_pool_3x3~1|nor_conv_3x3~2|",
     "|nor_conv_1x1~0|+|nor_conv_3x3~0|none~1|+|skip_connect~0|nor_conv_3x3~1|avg_pool_3x3~2|"),
    # edges out of a node with no input are dead
    ("|none~0|+|nor_conv_3x3~0|nor_conv_1x1~1|+|skip_connect~0|avg_pool_3x3~1|nor_conv_3x3~2|",
     "|none~0|+|nor_conv_3x3~0|none~1|+|skip_connect~0|none~1|nor_conv_3x3~2|"),
    # edges into a node that never reaches the output are dead
    ("|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|nor_conv_1x1~0|nor_conv_3x3~1|none~2|",
     "|nor_conv_3x3~0|+|none~0|none~1|+|nor_conv_1x1~0|nor_conv_3x3~1|none~2|"),
    # a skip edge is the identity: conv(x) through node 1 or straight into the output
    ("|skip_connect~0|+|none~0|none~1|+|none~0|nor_conv_3x3~1|none~2|",
     "|none~0|+|none~0|none~1|+|nor_conv_3x3~0|none~1|none~2|"),
    # chains of identities around one conv
    ("|nor_conv_1x1~0|+|none~0|skip_connect~1|+|none~0|none~1|skip_connect~2|",
     "|none~0|+|none~0|none~1|+|nor_conv_1x1~0|none~1|none~2|"),
]

DIFFERENT = [
    ("|none~0|+|none~0|none~1|+|nor_conv_3x3~0|none~1|none~2|",
     "|none~0|+|none~0|none~1|+|nor_conv_1x1~0|none~1|none~2|"),
    # x versus x + x
    ("|none~0|+|none~0|none~1|+|skip_connect~0|none~1|none~2|",
     "|skip_connect~0|+|none~0|none~1|+|skip_connect~0|skip_connect~1|none~2|"),
    # one conv used twice (shared weights) versus two convs
    ("|nor_conv_3x3~0|+|none~0|skip_connect~1|+|none~0|skip_connect~1|skip_connect~2|",
     "|none~0|+|nor_conv_3x3~0|none~1|+|nor_conv_3x3~0|none~1|skip_connect~2|"),
    # the order of ops along a path matters
    ("|nor_conv_3x3~0|+|none~0|none~1|+|none~0|avg_pool_3x3~1|none~2|",
     "|avg_pool_3x3~0|+|none~0|none~1|+|none~0|nor_conv_3x3~1|none~2|"),
]


@pytest.mark.parametrize(("a", "b"), EQUIVALENT)
def test_key_merges_equivalent_cells(a: str, b: str) -> None:
    assert key_of(a) == key_of(b)


@pytest.mark.parametrize(("a", "b"), DIFFERENT)
def test_key_separates_different_cells(a: str, b: str) -> None:
    assert key_of(a) != key_of(b)


def test_dead_cells_share_the_zero_key() -> None:
    assert SPACE.key(SPACE.assemble([3, 3, 3, 0, 0, 0])) == DEAD_KEY
    assert SPACE.key(SPACE.assemble([0, 3, 0, 0, 3, 0])) == DEAD_KEY  # node 1 never gets the input


def test_key_is_invariant_under_node_swap() -> None:
    """Relabelling nodes 1 and 2 (a valid cell only without the 1->2 edge) never changes the key."""
    rng = random.Random(0)
    for _ in range(500):
        t = [rng.randrange(5) for _ in range(6)]
        t[2] = 0
        swapped = [t[1], t[0], 0, t[3], t[5], t[4]]
        assert SPACE.key(SPACE.assemble(t)) == SPACE.key(SPACE.assemble(swapped))


def test_exact_distinct_count_on_the_real_table(shared_data: Path) -> None:
    """Our canonical form (dead edges, identities, isomorphism, shared vs separate weights): 5,425."""
    table = pd.read_csv(shared_data / "nasbench201" / "nb201_12epoch.csv")
    assert len({key_of(s) for s in table["arch_str"]}) == 5425


def test_string_forms_round_trip_on_samples() -> None:
    rng = np.random.default_rng(0)
    for _ in range(300):
        arch = SPACE.sample(rng)
        text = SPACE.to_string(arch)
        assert SPACE.from_string(text) == arch
        assert SPACE.summary(arch) == text and SPACE.describe(arch) == {"arch_str": text}
        assert SPACE.from_json(json.loads(json.dumps(SPACE.to_json(arch)))) == arch
    assert SPACE.from_json({"space": "nb201", "tokens": [3, 3, 4, 1, 3, 1]}).tokens == (3, 3, 4, 1, 3, 1)
    with pytest.raises(InvalidArchitecture):
        SPACE.from_json({"space": "dnn", "tokens": [0]})
    with pytest.raises(InvalidArchitecture):
        SPACE.from_json({"layers": 3})


@pytest.mark.parametrize("text", [
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|+|none~0|none~1|none~2|",  # node 2 has one input
    "|none~1|+|none~0|none~1|+|none~0|none~1|none~2|",  # wrong source
    "nonsense",
])
def test_bad_strings_are_rejected(text: str) -> None:
    with pytest.raises(InvalidArchitecture):
        SPACE.from_string(text)
    with pytest.raises(InvalidArchitecture):
        SPACE.assemble([0, 1, 2, 3, 4, 5])


def test_fast_neighbours_walk_and_mutate_match_the_generic_ones() -> None:
    rng = np.random.default_rng(3)
    for _ in range(100):
        arch = SPACE.sample(rng)
        assert [SPACE.key(a) for a in SPACE.neighbours(arch)] == [
            SPACE.key(a) for a in TokenSpace.neighbours(SPACE, arch)]
        assert list(SPACE.walk(arch.tokens)) == list(TokenSpace.walk(SPACE, arch.tokens))
        assert SPACE.key(SPACE.mutate(arch, rng)) != SPACE.key(arch)


def test_path_encoding() -> None:
    assert len(path_encoding((0,) * 6)) == 100
    assert sum(path_encoding((0,) * 6)) == 0
    assert sum(path_encoding((3,) * 6)) == 4  # all four input-to-output paths


def test_builder_on_a_32px_batch_and_cell_count() -> None:
    spec32 = DataSpec(task="classification", input_shape=(3, 32, 32), num_outputs=10)
    for tokens in ([3, 3, 4, 1, 3, 1], [0] * 6, [1] * 6):
        out = SPACE.build(SPACE.assemble(tokens), spec32)(torch.randn(2, 3, 32, 32))
        assert out.shape == (2, 10)
        out.sum().backward()
    arch = SPACE.assemble([3] * 6)
    bigger = NB201Space(cells_per_stage=2, channels=8).build(arch, spec32)
    assert sum(p.numel() for p in bigger.parameters()) > sum(p.numel() for p in SPACE.build(arch, spec32).parameters())
    assert NB201Space(**SPACE.config()).config() == {"cells_per_stage": 1, "channels": 8}


def test_enumerate_lists_one_architecture_per_distinct_cell() -> None:
    space = NB201Space()
    assert space.size() == 5**6
    every = space.enumerate(limit=5**6)
    assert every is not None and len(every) == 5425
    assert len({space.key(a) for a in every}) == 5425
    assert space.enumerate(limit=5**6 - 1) is None  # too many sequences: not enumerated
