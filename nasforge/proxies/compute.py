"""Proxies of architectures of any space, on a fixed minibatch of a dataset, cached by architecture key.

The minibatch (a stratified draw from the training split) and every network's initial weights come
from the seed, so the same seed gives the same values on the same machine; the weights are seeded
from the architecture's key too, so a value does not depend on which other architectures were scored.
"""

from __future__ import annotations

import math
import time
import zlib
from collections.abc import Iterable
from typing import Any

import numpy as np
import torch

from nasforge.core.errors import DataError
from nasforge.core.seeding import derive_seed
from nasforge.core.types import Architecture
from nasforge.data.base import CLASSIFICATION, REGRESSION, Dataset, stratified_subset
from nasforge.models.flops import count_flops, count_params
from nasforge.proxies import measures

COLUMNS = (*measures.NAMES, "params", "flops")


def _key_seed(seed: int, key: str) -> int:
    return derive_seed(seed, zlib.crc32(key.encode()))


class ProxyComputer:
    """`values(arch)` -> {proxy: float} for `COLUMNS`; `seconds` is the time spent computing so far."""

    def __init__(self, space: Any, dataset: Dataset, *, batch_size: int = 64, seed: int = 0) -> None:
        if dataset.spec.task not in (CLASSIFICATION, REGRESSION):
            raise DataError(f"proxies need a classification or regression dataset, not {dataset.spec.task!r}")
        if batch_size < 4:
            raise DataError(f"proxies need a batch of at least 4 examples (got {batch_size})")
        self.space, self.spec, self.seed = space, dataset.spec, int(seed)
        train = dataset.train
        rows = stratified_subset(train.y if self.spec.task == CLASSIFICATION else None, len(train),
                                 batch_size, derive_seed(self.seed, 1))
        rows = np.random.default_rng(derive_seed(self.seed, 2)).permutation(rows)  # mix classes across halves
        self.x = torch.from_numpy(np.ascontiguousarray(train.x[rows]))
        self.y = torch.from_numpy(np.ascontiguousarray(train.y[rows]))
        self.train_x = train.x  # for a network's data-dependent set-up (fit_data), as training does
        self.cache: dict[str, dict[str, float]] = {}
        self.seconds = 0.0

    def values(self, arch: Architecture) -> dict[str, float]:
        key = str(self.space.key(arch))
        cached = self.cache.get(key)
        if cached is None:
            start = time.perf_counter()
            cached = self.cache[key] = self._compute(arch, key)
            self.seconds += time.perf_counter() - start
        return dict(cached)

    def many(self, archs: Iterable[Architecture]) -> list[dict[str, float]]:
        return [self.values(a) for a in archs]

    def _model(self, arch: Architecture, key: str) -> torch.nn.Module:
        torch.manual_seed(_key_seed(self.seed, key))
        model: torch.nn.Module = self.space.build(arch, self.spec)
        fit_data = getattr(model, "fit_data", None)
        if callable(fit_data):  # e.g. the quantile bins of numeric embeddings
            fit_data(torch.from_numpy(np.ascontiguousarray(self.train_x)))
        return model.train()

    def _compute(self, arch: Architecture, key: str) -> dict[str, float]:
        shape = tuple(self.spec.input_shape)
        out: dict[str, float] = {}
        out.update(measures.activation_measures(self._model(arch, key), self.x))
        out.update(measures.gradient_measures(self._model(arch, key), self.x, self.y, self.spec.task))
        model = self._model(arch, key)
        out["synflow"] = measures.synflow(model, shape)
        out["params"] = float(count_params(model))
        out["flops"] = float(count_flops(model, shape))
        return {k: (math.nan if math.isnan(v) or v == math.inf else v) for k, v in out.items()}
