"""The torch modules an export traces: input preprocessing, the trained model(s), and the output head.

Tabular input is one float64 column per raw feature column, in training order: numbers as they are
(NaN, inf or beyond float32's range for missing), text columns as their category index
(`runtime.encode_rows` makes these; an index outside the vocabulary means an unseen value, NaN a missing
one). The graph then does what
`TabularPreprocessor.transform` does: median imputation, missing indicators, standardisation (in
float64, as training did), one-hot slots. Images go in as raw pixels (N, C, H, W) and are scaled and
normalised per channel like `ImagePreprocessor.normalise`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from nasforge.core.errors import ConfigError
from nasforge.data.base import CLASSIFICATION, REGRESSION

PROBABILITIES = "probabilities"
LOGITS = "logits"
COMBINES = (PROBABILITIES, LOGITS)
FEATURE_LIMIT = 3.4028234663852886e38  # float32's largest value, nasforge.data.tabular.FEATURE_LIMIT


class TabularInput(nn.Module):
    """Raw encoded columns (rows, columns) float64 -> the model's float32 features, in the preprocessor's order."""

    numeric: torch.Tensor
    indicated: torch.Tensor
    median: torch.Tensor
    mean: torch.Tensor
    std: torch.Tensor
    categorical: torch.Tensor
    other: torch.Tensor
    missing_code: torch.Tensor
    offsets: torch.Tensor
    slots: torch.Tensor
    order: torch.Tensor

    def __init__(self, columns: Sequence[Mapping[str, Any]]) -> None:
        super().__init__()
        numeric = [i for i, spec in enumerate(columns) if spec["kind"] == "numeric"]
        categorical = [i for i, spec in enumerate(columns) if spec["kind"] != "numeric"]
        indicated = [k for k, i in enumerate(numeric) if columns[i]["indicator"]]
        sizes = [len(columns[i]["categories"]) for i in categorical]
        slots = [size + 1 + int(bool(columns[i]["missing"])) for size, i in zip(sizes, categorical)]
        offsets = [sum(slots[:j]) for j in range(len(slots))]
        # where each output feature sits in the block [scaled numbers | indicators | one-hot slots]
        order: list[int] = []
        n_num, n_ind = len(numeric), len(indicated)
        for i, spec in enumerate(columns):
            if spec["kind"] == "numeric":
                k = numeric.index(i)
                order.append(k)
                if spec["indicator"]:
                    order.append(n_num + indicated.index(k))
            else:
                j = categorical.index(i)
                order.extend(n_num + n_ind + offsets[j] + s for s in range(slots[j]))
        self.width = len(columns)
        self.has_numeric, self.has_indicators, self.has_categorical = bool(numeric), bool(indicated), bool(sizes)
        dbl = torch.float64
        self.register_buffer("numeric", torch.tensor(numeric, dtype=torch.long))
        self.register_buffer("indicated", torch.tensor(indicated, dtype=torch.long))
        self.register_buffer("median", torch.tensor([columns[i]["median"] for i in numeric], dtype=dbl))
        self.register_buffer("mean", torch.tensor([columns[i]["mean"] for i in numeric], dtype=dbl))
        self.register_buffer("std", torch.tensor([columns[i]["std"] for i in numeric], dtype=dbl))
        self.register_buffer("categorical", torch.tensor(categorical, dtype=torch.long))
        self.register_buffer("other", torch.tensor(sizes, dtype=dbl))
        self.register_buffer("missing_code", torch.tensor(
            [size + (1 if columns[i]["missing"] else 0) for size, i in zip(sizes, categorical)], dtype=dbl))
        self.register_buffer("offsets", torch.tensor(offsets, dtype=dbl))
        self.register_buffer("slots", torch.arange(sum(slots), dtype=dbl).reshape(1, 1, -1))
        self.register_buffer("order", torch.tensor(order, dtype=torch.long))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(torch.float64)
        parts: list[torch.Tensor] = []
        if self.has_numeric:
            values = x.index_select(1, self.numeric)
            missing = ~(values.abs() <= FEATURE_LIMIT)  # NaN, inf and beyond float32: missing, as in training
            filled = torch.where(missing, self.median.expand_as(values), values)
            parts.append((filled - self.mean) / self.std)
            if self.has_indicators:
                parts.append(missing.index_select(1, self.indicated).to(torch.float64))
        if self.has_categorical:
            codes = x.index_select(1, self.categorical)
            other = self.other.expand_as(codes)
            known = (codes >= 0) & (codes <= other) & (codes == torch.floor(codes))
            absent = torch.isnan(codes)
            codes = torch.where(known, codes, other)
            codes = torch.where(absent, self.missing_code.expand_as(codes), codes)
            positions = (codes + self.offsets).unsqueeze(2)
            parts.append((positions == self.slots).to(torch.float64).sum(dim=1))
        block = torch.cat(parts, dim=1) if len(parts) > 1 else parts[0]
        return block.index_select(1, self.order).to(torch.float32)


class ImageInput(nn.Module):
    """Raw pixels (N, C, H, W) -> (x / scale - mean) / std per channel, as at training time."""

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, mean: Sequence[float], std: Sequence[float], scale: float) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(list(mean), dtype=torch.float32).reshape(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(list(std), dtype=torch.float32).reshape(1, -1, 1, 1))
        self.scale = float(scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x.to(torch.float32) / self.scale - self.mean) / self.std


class SequenceInput(nn.Module):
    """Raw padded cases (N, steps, channels + mask) -> each channel (x - mean) / std on real steps, 0 on
    padding, the mask kept last: what the sequence preprocessor gives the model at training time."""

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(list(mean), dtype=torch.float32).reshape(1, 1, -1))
        self.register_buffer("std", torch.tensor(list(std), dtype=torch.float32).reshape(1, 1, -1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(torch.float32)
        mask = x[..., -1:]
        return torch.cat([(x[..., :-1] - self.mean) / self.std * mask, mask], dim=-1)


def normalised_weights(weights: Sequence[float]) -> list[float]:
    """Ensemble weights summing to one (the ensemble builder's convention)."""
    w = [float(v) for v in weights]
    if not w or any(v < 0 or v != v or v == float("inf") for v in w) or sum(w) <= 0:
        raise ConfigError(f"ensemble weights must be non-negative and not all zero, got {w}")
    total = sum(w)
    return [v / total for v in w]


class ExportedModel(nn.Module):
    """Preprocessing, then one model or a weighted ensemble, then probabilities or values.

    Classification returns class probabilities: one member's softmax, or the weighted sum of members'
    probabilities (`combine="probabilities"`) or the softmax of their weighted logits (`"logits"`).
    Regression returns the weighted sum of values (rows, outputs).
    """

    weights: torch.Tensor

    def __init__(self, preprocess: nn.Module, members: Sequence[nn.Module], task: str,
                 weights: Sequence[float] | None = None, combine: str = PROBABILITIES) -> None:
        super().__init__()
        if task not in (CLASSIFICATION, REGRESSION):
            raise ConfigError(f"export supports classification and regression models, not {task!r}")
        if combine not in COMBINES:
            raise ConfigError(f"ensemble combine must be one of {', '.join(COMBINES)}, got {combine!r}")
        if not members:
            raise ConfigError("an export needs at least one model")
        self.preprocess = preprocess
        self.members = nn.ModuleList(members)
        self.classify = task == CLASSIFICATION
        self.by_probabilities = combine == PROBABILITIES
        self.single = len(members) == 1
        w = normalised_weights(weights if weights is not None else [1.0] * len(members))
        self.register_buffer("weights", torch.tensor(w, dtype=torch.float32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.preprocess(x)
        if self.single:
            out = self.members[0](features).float()
            return torch.softmax(out, dim=1) if self.classify else out
        total = torch.zeros(())
        for i, member in enumerate(self.members):
            out = member(features).float()
            if self.classify and self.by_probabilities:
                out = torch.softmax(out, dim=1)
            total = total + self.weights[i] * out
        return torch.softmax(total, dim=1) if self.classify and not self.by_probabilities else total
