"""The conformance checks every space passes (tests/conformance runs them on each built-in space).

Each check takes a space instance and raises AssertionError saying what broke; `check_space` runs them all.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import numpy as np

from nasforge.data.base import DataSpec


def sample_is_valid_and_seeded(space: Any, samples: int = 200) -> None:
    a = [space.sample(np.random.default_rng(7)) for _ in range(3)]
    assert len({space.key(x) for x in a}) == 1, "same seed must give the same architecture"
    rng = np.random.default_rng(0)
    keys = set()
    for _ in range(samples):
        arch = space.sample(rng)
        assert space.assemble(arch.tokens) == arch, f"assemble(sample().tokens) differs from the sample {arch}"
        keys.add(space.key(arch))
    assert len(keys) > samples // 10, f"{samples} samples should not collapse to a handful of architectures"


def json_round_trip(space: Any, samples: int = 200) -> None:
    rng = np.random.default_rng(1)
    for _ in range(samples):
        arch = space.sample(rng)
        data = json.loads(json.dumps(space.to_json(arch)))
        back = space.from_json(data)
        assert space.key(back) == space.key(arch), f"from_json(to_json()) changed the key of {arch}"
        assert isinstance(space.summary(arch), str) and space.summary(arch), "summary() must be a non-empty str"


def mutate_changes_key_and_stays_valid(space: Any, samples: int = 100) -> None:
    rng = np.random.default_rng(2)
    changed = 0
    for _ in range(samples):
        arch = space.sample(rng)
        child = space.mutate(arch, rng)
        space.assemble(child.tokens)
        changed += space.key(child) != space.key(arch)
    assert changed >= 0.95 * samples, f"mutate() changed the key of only {changed} of {samples} architectures"


def neighbours_are_one_step(space: Any) -> None:
    arch = space.sample(np.random.default_rng(3))
    neighbours = space.neighbours(arch)
    assert neighbours, "neighbours() is empty"
    keys = [space.key(n) for n in neighbours]
    assert len(keys) == len(set(keys)), "neighbours() repeats an architecture"
    assert space.key(arch) not in keys, "neighbours() contains the architecture itself"


def build_forward_backward(space: Any, data: DataSpec, samples: int = 200) -> None:
    """Sampled networks take a batch of `data`'s shape, give one output row per example, and backpropagate."""
    import torch

    rng = np.random.default_rng(4)
    torch.manual_seed(0)
    for _ in range(samples):
        arch = space.sample(rng)
        model = space.build(arch, data)
        if data.task == "language_model":  # token ids in, next-token logits out
            x = torch.randint(0, data.num_outputs, (4, *data.input_shape))
            out = model(x)
            assert out.shape == (4, *data.input_shape, data.num_outputs), f"output shape {tuple(out.shape)}"
        else:
            x = torch.randn(4, *data.input_shape)
            out = model(x)
            assert out.shape == (4, data.num_outputs), f"output shape {tuple(out.shape)} for {arch}"
        out.sum().backward()
        assert sum(p.numel() for p in model.parameters()) > 0, f"{arch} builds a network without parameters"


SPACE_CHECKS: dict[str, Callable[..., None]] = {
    "sample_is_valid_and_seeded": sample_is_valid_and_seeded,
    "json_round_trip": json_round_trip,
    "mutate_changes_key_and_stays_valid": mutate_changes_key_and_stays_valid,
    "neighbours_are_one_step": neighbours_are_one_step,
}


def check_space(space: Any, data: DataSpec | None = None, samples: int = 200) -> list[str]:
    """Every space check on `space` (the build check too when `data` is given); returns the checks run."""
    run = []
    for name, check in SPACE_CHECKS.items():
        if name == "neighbours_are_one_step":
            check(space)
        else:
            check(space, samples=samples if name != "mutate_changes_key_and_stays_valid" else max(1, samples // 2))
        run.append(name)
    if data is not None:
        build_forward_backward(space, data, samples=samples)
        run.append("build_forward_backward")
    return run
