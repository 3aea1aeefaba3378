"""`Moons`: data from code, not from a file: two interleaving half circles with noise.

A provider returns raw `(X, y)` from `train()`; nasforge splits off validation rows and fits the
preprocessing. `config()` returns the options that rebuild it, so worker processes and resume regenerate
the same data by import path instead of reading a copy.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from nasforge.data.provider import Provider


class Moons(Provider):
    task = "classification"

    def __init__(self, samples: int = 300, noise: float = 0.15, seed: int = 0) -> None:
        if int(samples) < 20:
            raise ValueError(f"samples must be at least 20, got {samples}")
        self.samples = int(samples)
        self.noise = float(noise)
        self.seed = int(seed)

    def train(self) -> tuple[np.ndarray, np.ndarray]:
        rng = np.random.default_rng(self.seed)
        angle = rng.uniform(0, np.pi, self.samples)
        label = rng.integers(0, 2, self.samples)
        x = np.where(label == 0, np.cos(angle), 1 - np.cos(angle))
        y = np.where(label == 0, np.sin(angle), 0.5 - np.sin(angle))
        points = np.stack([x, y], axis=1) + rng.normal(0, self.noise, (self.samples, 2))
        return points.astype(np.float32), np.where(label == 0, "upper", "lower")

    def config(self) -> dict[str, Any]:
        return {"samples": self.samples, "noise": self.noise, "seed": self.seed}
