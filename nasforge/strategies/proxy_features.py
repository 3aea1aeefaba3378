"""Zero-cost proxies for strategies: a warm-start ranking and proxy features next to the token encoding.

Proxies come from a CSV made by `nasforge proxies --out` or bench/nb201_proxies.py (read once, when the
strategy is made, like a table evaluator's table), so a strategy still never trains. Each proxy becomes
its percentile among the table's rows, which puts proxies of very different scales (synflow spans 30
orders of magnitude) on one footing for a predictor and for the warm start's vote.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from nasforge.core.errors import ConfigError
from nasforge.core.types import Architecture
from nasforge.proxies.table import ProxyTable, arch_from_text, arch_text
from nasforge.strategies.common import TokenEncoder

DEFAULT_FEATURES = ("naswot", "jacov", "grad_norm", "snip", "synflow", "zico", "params", "flops")
DEFAULT_VOTE = ("naswot", "synflow", "zico", "jacov")


def _names(value: str | list[str] | tuple[str, ...], what: str, have: list[str]) -> tuple[str, ...]:
    names = tuple(n.strip() for n in (value.split(",") if isinstance(value, str) else value) if n.strip())
    bad = [n for n in names if n not in have]
    if bad or not names:
        raise ConfigError(f"{what}: unknown proxies {', '.join(bad) or '(none given)'}; "
                          f"the table has: {', '.join(have)}")
    return names


class ProxyFeatures:
    """Percentile features of the architectures a proxy table covers, and their warm-start order."""

    def __init__(self, space: Any, path: str, features: str | tuple[str, ...] = DEFAULT_FEATURES,
                 vote: str | tuple[str, ...] = DEFAULT_VOTE) -> None:
        self.space = space
        table = ProxyTable(path)
        self.features = _names(features, "proxy_features", table.columns)
        self.vote = _names(vote, "proxy_vote", table.columns)
        archs: list[Architecture] = []
        rows: list[dict[str, float]] = []
        keys: set[str] = set()
        for text, values in table.by_arch.items():
            arch = arch_from_text(space, text)
            key = space.key(arch)
            if key not in keys:  # one row per network: isomorphic strings share their values
                keys.add(key)
                archs.append(arch)
                rows.append(values)
        names = sorted(set(self.features) | set(self.vote))
        raw = {n: np.array([r[n] for r in rows], dtype=np.float64) for n in names}
        self.percentile = {n: _percentiles(v) for n, v in raw.items()}
        self.archs = archs
        self.index = {space.key(a): i for i, a in enumerate(archs)}

    def covers(self, arch: Architecture) -> bool:
        return self.space.key(arch) in self.index

    def matrix(self, archs: list[Architecture]) -> np.ndarray:
        """(len(archs), features) percentiles in [0, 1]; an architecture the table lacks gets 0.5."""
        out = np.full((len(archs), len(self.features)), 0.5)
        for i, arch in enumerate(archs):
            j = self.index.get(self.space.key(arch))
            if j is not None:
                out[i] = [self.percentile[n][j] for n in self.features]
        return out

    def ranked(self) -> list[Architecture]:
        """The covered architectures, best mean vote percentile first (ties: table order)."""
        vote = np.mean([self.percentile[n] for n in self.vote], axis=0)
        return [self.archs[i] for i in np.argsort(-vote, kind="stable")]

    def describe(self, arch: Architecture) -> str:
        return arch_text(self.space, arch)


def _percentiles(values: np.ndarray) -> np.ndarray:
    from scipy.stats import rankdata

    ok = ~np.isnan(values)  # -inf (a degenerate network) ranks lowest
    out = np.full(len(values), 0.5)
    if ok.sum() > 1:
        out[ok] = (rankdata(values[ok]) - 1) / (ok.sum() - 1)
    return out


class ProxyEncoder(TokenEncoder):
    """The token encoding with `weight`-scaled proxy percentiles appended (the NAS-Bench-Suite-Zero recipe)."""

    def __init__(self, space: Any, proxies: ProxyFeatures, weight: float = 1.0,
                 use_space_encoding: bool = True) -> None:
        super().__init__(space, use_space_encoding=use_space_encoding)
        self.proxies, self.weight = proxies, float(weight)

    def encode(self, archs: list[Architecture]) -> np.ndarray:
        return np.hstack([super().encode(archs), self.weight * self.proxies.matrix(archs)])
