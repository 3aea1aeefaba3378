"""A proxy-aware predictor search: BANANAS with zero-cost proxies as surrogate features and a proxy warm start.

With `proxies` (a proxy CSV), the first `initial` trials are the table's best architectures by the
vote of `proxy_vote` proxies (rank a large sample by proxy, train the top ones first), the predictor
sees each architecture's proxy percentiles next to its encoding, and with `candidates="covered"` (the
default) the candidates are the architectures the table covers, whose proxies are known; with
`candidates="space"` they are bananas' own (every architecture of a small space), an uncovered one's
proxies counting as median. Without `proxies` it is `bananas`.
"""

from __future__ import annotations

from typing import Any

from nasforge.core.types import Architecture
from nasforge.strategies.bananas import Bananas
from nasforge.strategies.proxy_features import DEFAULT_FEATURES, DEFAULT_VOTE, ProxyEncoder, ProxyFeatures


class ProxyBananas(Bananas):
    """Options as `bananas`, plus `proxies` (CSV path), `proxy_features`, `proxy_vote` (comma lists),
    `proxy_weight` (1.0: the features' scale against the encoding), `warm_start` (true) and
    `candidates` ("covered" or "space")."""

    def __init__(self, space: Any, *, seed: int = 0, max_trials: int | None = None, proxies: str | None = None,
                 proxy_features: str = ",".join(DEFAULT_FEATURES), proxy_vote: str = ",".join(DEFAULT_VOTE),
                 proxy_weight: float = 1.0, warm_start: bool = True, candidates: str = "covered",
                 **options: Any) -> None:
        super().__init__(space, seed=seed, max_trials=max_trials, **options)
        if candidates not in ("covered", "space"):
            raise ValueError(f"candidates must be 'covered' or 'space', not {candidates!r}")
        self.candidate_set = candidates
        self.proxy_source = str(proxies) if proxies else None
        self.proxies = ProxyFeatures(space, proxies, proxy_features, proxy_vote) if proxies else None
        self.warm_start = bool(warm_start)
        self._warm: list[Architecture] = []
        if self.proxies is not None:
            self.encoder = ProxyEncoder(space, self.proxies, proxy_weight,
                                        use_space_encoding=options.get("space_encoding", True))
            self._warm = self.proxies.ranked() if self.warm_start else []

    def fresh_sample(self, tries: int = 50) -> Architecture:
        """The next best-by-proxy architecture not proposed yet during the warm start, else a random one."""
        if self._warm and len(self.proposed) < self.initial:
            for arch in self._warm:
                if self.space.key(arch) not in self.proposed:
                    return arch
        return super().fresh_sample(tries)

    def _use_pool(self) -> bool:
        if self.proxies is None or self.candidate_set == "space":
            return super()._use_pool()
        if self._pool is None:
            self._pool = list(self.proxies.archs)
            self._pool_keys = [self.space.key(a) for a in self._pool]
        return True
