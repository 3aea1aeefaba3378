"""Derived seeds, so a study's seed fixes every trial's seed and every strategy draw."""

from __future__ import annotations

import random

import numpy as np


def derive_seed(*parts: int) -> int:
    """A 31-bit seed from a root seed and indices (trial number, restart, ...)."""
    seq = np.random.SeedSequence([int(p) & 0xFFFFFFFF for p in parts])
    return int(seq.generate_state(1)[0] & 0x7FFFFFFF)


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch for one trial inside a worker."""
    import torch

    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def rng_state(rng: np.random.Generator) -> dict:
    """JSON-safe snapshot of a generator, for strategy state_dicts."""
    state = rng.bit_generator.state
    return {"bit_generator": state["bit_generator"], "state": {k: int(v) for k, v in state["state"].items()},
            "has_uint32": int(state["has_uint32"]), "uinteger": int(state["uinteger"])}


def restore_rng(snapshot: dict) -> np.random.Generator:
    rng = np.random.Generator(np.random.PCG64())
    rng.bit_generator.state = {
        "bit_generator": snapshot["bit_generator"],
        "state": dict(snapshot["state"]),
        "has_uint32": snapshot["has_uint32"],
        "uinteger": snapshot["uinteger"],
    }
    return rng
