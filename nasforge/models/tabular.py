"""Tabular front ends and in-network ensembles for the dnn space's stronger choices.

- Numeric feature embeddings (Gorishniy et al. 2022, "On embeddings for numerical features in tabular
  deep learning"): `PiecewiseLinear` encodes each standardised number by quantile bins of the training
  rows (PLE-Q), `Periodic` by learned sin/cos frequencies (PLR); both then map each feature through its
  own linear layer and a ReLU.
- Category embeddings: each categorical column's one-hot slots (as the preprocessor writes them) times
  a table of its own. A one-hot row times a table is exactly an embedding lookup, so the preprocessing,
  `predict` and exported files stay as they are.
- Members (TabM-mini, Gorishniy et al. 2024): `k` members share every block; each scales the features
  by its own ±1-initialised adapter and has its own head. The network returns the members' mean
  probabilities (as log-probabilities, so a softmax gives them back) or mean values; in training it also
  keeps every member's output (batch, k, outputs) in `training_members`, so that the trainer trains each
  member on its own loss, as TabM does.

Everything is elementwise ops, `index_select` and (batched) matrix products, so TorchScript and ONNX
exports take these networks as they are.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from nasforge.data.base import CLASSIFICATION, DataSpec
from nasforge.models.dense import LayerStyle, chain_blocks

NUMERIC = "numeric"
INDICATOR = "indicator"
CATEGORY = "category:"
EMBEDDED_WIDTH = 1024  # numeric embeddings of all features together stay about this wide
MAX_FEATURE_WIDTH = 16
FREQUENCIES = 16
QUANTILE_ROWS = 1 << 16


def per_feature(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """(batch, features, k) times one (k, d) matrix per feature: (batch, features, d)."""
    out = torch.bmm(x.transpose(0, 1), weight).transpose(0, 1)
    return out if bias is None else out + bias


def feature_width(features: int) -> int:
    """Embedding width per feature: 16, less when many features would make the first layer very wide."""
    return max(2, min(MAX_FEATURE_WIDTH, EMBEDDED_WIDTH // max(1, features)))


class PiecewiseLinear(nn.Module):
    """PLE-Q: bin t of feature j is 0 below its lower edge, 1 above its upper edge, linear in between (the
    first bin unbounded below, the last above); edges are quantiles of the training rows (`fit_data`)."""

    edges: torch.Tensor

    def __init__(self, features: int, bins: int, width: int) -> None:
        super().__init__()
        self.features, self.bins, self.width = features, bins, width
        self.register_buffer("edges", torch.linspace(-2.0, 2.0, bins + 1).repeat(features, 1))
        bound = 1.0 / math.sqrt(bins)
        self.weight = nn.Parameter(torch.empty(features, bins, width).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(features, width).uniform_(-bound, bound))

    @property
    def out_features(self) -> int:
        return self.features * self.width

    @torch.no_grad()
    def fit_data(self, x: torch.Tensor) -> None:
        """Quantile edges from the training rows (an evenly spaced sample of at most 65,536)."""
        rows = min(len(x), QUANTILE_ROWS, (1 << 24) // max(1, self.features))
        sample = x[torch.linspace(0, len(x) - 1, rows).long()].float() if rows < len(x) else x.float()
        q = torch.linspace(0.0, 1.0, self.bins + 1, device=x.device)
        self.edges.copy_(torch.quantile(sample, q, dim=0).T)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        low = self.edges[:, :-1]
        span = (self.edges[:, 1:] - low).clamp_min(1e-6)  # a repeated edge (few distinct values) is a step
        t = (x.unsqueeze(-1) - low) / span
        if self.bins == 1:
            return t
        return torch.cat([t[..., :1].clamp(max=1.0), t[..., 1:-1].clamp(0.0, 1.0), t[..., -1:].clamp(min=0.0)], -1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(per_feature(self.encode(x), self.weight, self.bias)).flatten(1)


class Periodic(nn.Module):
    """PLR: cos and sin of 2π·c·x for learned frequencies c ~ N(0, sigma) per feature, then linear and ReLU."""

    def __init__(self, features: int, width: int, sigma: float, frequencies: int = FREQUENCIES) -> None:
        super().__init__()
        self.features, self.width = features, width
        self.frequency = nn.Parameter(torch.randn(features, frequencies) * sigma)
        bound = 1.0 / math.sqrt(2 * frequencies)
        self.weight = nn.Parameter(torch.empty(features, 2 * frequencies, width).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(features, width).uniform_(-bound, bound))

    @property
    def out_features(self) -> int:
        return self.features * self.width

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = 2 * math.pi * x.unsqueeze(-1) * self.frequency
        return torch.relu(per_feature(torch.cat([torch.cos(z), torch.sin(z)], -1), self.weight, self.bias)).flatten(1)


class CategoryEmbedding(nn.Module):
    """Each categorical column's one-hot slots times its own (slots, width) table: its embedding."""

    index: torch.Tensor

    def __init__(self, sizes: Sequence[int], width: int) -> None:
        super().__init__()
        total, most = sum(sizes), max(sizes)
        rows, start = [], 0
        for size in sizes:  # padded to the widest column with a zero column at position `total`
            rows.append(list(range(start, start + size)) + [total] * (most - size))
            start += size
        self.groups, self.slots, self.width = len(sizes), most, width
        self.register_buffer("index", torch.tensor(rows, dtype=torch.long).reshape(-1))
        self.weight = nn.Parameter(torch.randn(len(sizes), most, width) / math.sqrt(width))

    @property
    def out_features(self) -> int:
        return self.groups * self.width

    def forward(self, onehot: torch.Tensor) -> torch.Tensor:
        padded = torch.cat([onehot, torch.zeros_like(onehot[:, :1])], 1)
        slots = padded.index_select(1, self.index).reshape(-1, self.groups, self.slots)
        return per_feature(slots, self.weight, None).flatten(1)


def numeric_embedding(name: str, features: int) -> PiecewiseLinear | Periodic | None:
    """"none", "ple_<bins>" or "periodic_<sigma>" for `features` numeric inputs."""
    if name == "none" or features == 0:
        return None
    kind, _, value = name.partition("_")
    width = feature_width(features)
    if kind == "ple":
        return PiecewiseLinear(features, int(value), width)
    if kind == "periodic":
        return Periodic(features, width, float(value))
    raise ValueError(f"unknown numeric embedding {name!r}")


class FeatureFront(nn.Module):
    """Splits the preprocessed features by kind and embeds numbers and categories as chosen; indicators
    (and anything not embedded) pass through. Output: [numbers | indicators | categories]."""

    numeric_index: torch.Tensor
    indicator_index: torch.Tensor
    category_index: torch.Tensor

    def __init__(self, kinds: Sequence[str], features: int, numeric: str = "none",
                 categorical: str = "onehot") -> None:
        super().__init__()
        kinds = list(kinds) if kinds else [NUMERIC] * features
        if len(kinds) != features:
            raise ValueError(f"{len(kinds)} feature kinds for {features} features")
        numbers = [i for i, k in enumerate(kinds) if k == NUMERIC]
        indicators = [i for i, k in enumerate(kinds) if k == INDICATOR]
        categories = [i for i, k in enumerate(kinds) if k.startswith(CATEGORY)]
        sizes: list[int] = []
        for i in categories:  # consecutive slots of one column form its group
            if sizes and kinds[i] == kinds[i - 1]:
                sizes[-1] += 1
            else:
                sizes.append(1)
        for name, index in (("numeric_index", numbers), ("indicator_index", indicators),
                            ("category_index", categories)):
            self.register_buffer(name, torch.tensor(index, dtype=torch.long))
        self.has_numbers, self.has_indicators, self.has_categories = bool(numbers), bool(indicators), bool(categories)
        self.numbers = numeric_embedding(numeric, len(numbers))
        self.categories: CategoryEmbedding | None = None
        if categorical != "onehot" and sizes:
            self.categories = CategoryEmbedding(sizes, int(categorical.removeprefix("embed_")))
        self.out_features = ((self.numbers.out_features if self.numbers is not None else len(numbers))
                             + len(indicators)
                             + (self.categories.out_features if self.categories is not None else len(categories)))

    def fit_data(self, x: torch.Tensor) -> None:
        """Data-dependent set-up (quantile bins) from the training features."""
        if isinstance(self.numbers, PiecewiseLinear):
            self.numbers.fit_data(x.flatten(1).index_select(1, self.numeric_index))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        parts: list[torch.Tensor] = []
        if self.has_numbers:
            numbers = x.index_select(1, self.numeric_index)
            parts.append(self.numbers(numbers) if self.numbers is not None else numbers)
        if self.has_indicators:
            parts.append(x.index_select(1, self.indicator_index))
        if self.has_categories:
            onehot = x.index_select(1, self.category_index)
            parts.append(self.categories(onehot) if self.categories is not None else onehot)
        return torch.cat(parts, 1) if len(parts) > 1 else parts[0]


class TabularNetwork(nn.Module):
    """front (embeddings) -> [member adapters] -> the dense blocks -> one head per member."""

    def __init__(self, data: DataSpec, blocks: Sequence[str], num_outputs: int, style: LayerStyle,
                 numeric: str = "none", categorical: str = "onehot", members: int = 1) -> None:
        super().__init__()
        features = math.prod(data.input_shape)
        self.front = FeatureFront(data.feature_kinds, features, numeric, categorical)
        width = self.front.out_features
        self.members = int(members)
        self.training_members: torch.Tensor | None = None
        self.classify = data.task == CLASSIFICATION
        # TabM-mini's first adapter: random signs, so members differ from the first step on
        self.adapter = nn.Parameter(torch.randint(0, 2, (self.members, width)).float() * 2 - 1) \
            if self.members > 1 else None
        self.blocks, width = chain_blocks(width, blocks, style)
        self.head_weight = nn.Parameter(torch.empty(self.members, width, num_outputs))
        self.head_bias = nn.Parameter(torch.empty(self.members, 1, num_outputs))
        bound = 1.0 / math.sqrt(width)
        nn.init.uniform_(self.head_weight, -bound, bound)
        nn.init.uniform_(self.head_bias, -bound, bound)

    def fit_data(self, x: torch.Tensor) -> None:
        self.front.fit_data(x.flatten(1))

    def member_outputs(self, x: torch.Tensor) -> torch.Tensor:
        """(batch, members, outputs)."""
        h = self.front(x.flatten(1))
        batch = h.shape[0]
        if self.adapter is not None:
            h = (h.unsqueeze(1) * self.adapter).reshape(batch * self.members, -1)
        h = self.blocks(h).reshape(batch, self.members, -1)
        return torch.baddbmm(self.head_bias, h.transpose(0, 1), self.head_weight).transpose(0, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.member_outputs(x)
        # in training, the trainer takes each member's own loss from here (nasforge.evaluators.train.task_loss)
        self.training_members = out if self.training and self.members > 1 else None
        if self.members == 1:
            return out[:, 0]
        if self.classify:
            return torch.log(torch.softmax(out, dim=-1).mean(dim=1).clamp_min(1e-12))
        return out.mean(dim=1)
