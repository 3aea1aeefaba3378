"""`nasforge proxies`: proxies of a sample of a space, ranked against a benchmark table or a study's results.

The architectures are either a seeded random sample of the space (scored against the table's test
accuracy) or a study's complete trials (scored against their stored objective); either way every
proxy's Spearman and Kendall correlation with the accuracy is written, with the time proxies took.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from nasforge.core.errors import ConfigError, DataError
from nasforge.core.types import Architecture
from nasforge.proxies.compute import COLUMNS, ProxyComputer
from nasforge.proxies.table import ProxyTable, append_rows, arch_text


@dataclass
class ProxyRun:
    archs: list[Architecture]
    values: list[dict[str, float]]
    targets: list[float]
    correlations: list[dict[str, Any]]
    seconds: float


def correlations(values: list[dict[str, float]], targets: list[float]) -> list[dict[str, Any]]:
    """Spearman and Kendall of each proxy with the targets, over the architectures where both are finite."""
    from scipy.stats import kendalltau, spearmanr

    out = []
    y = np.asarray(targets, dtype=np.float64)
    for name in COLUMNS:
        x = np.array([v.get(name, math.nan) for v in values], dtype=np.float64)
        ok = ~np.isnan(x) & np.isfinite(y)  # -inf is a proxy's lowest score, so it is ranked
        rho = tau = math.nan
        if ok.sum() >= 3 and np.ptp(x[ok]) > 0 and np.ptp(y[ok]) > 0:
            rho = float(spearmanr(x[ok], y[ok])[0])
            tau = float(kendalltau(x[ok], y[ok])[0])
        out.append({"proxy": name, "spearman": rho, "kendall": tau, "n": int(ok.sum())})
    return out


def sample_archs(space: Any, count: int, seed: int) -> list[Architecture]:
    """`count` architectures of distinct keys (fewer if the space runs out within 50 draws each)."""
    rng = np.random.default_rng(seed)
    seen: set[str] = set()
    out: list[Architecture] = []
    misses = 0
    while len(out) < count and misses < 50 * count:
        arch = space.sample(rng)
        key = space.key(arch)
        if key in seen:
            misses += 1
            continue
        seen.add(key)
        out.append(arch)
    return out


def table_targets(space: Any, archs: list[Architecture], table: str, dataset: str) -> list[float]:
    from nasforge.evaluators.table import load_table

    if not callable(getattr(space, "to_string", None)):
        raise ConfigError(f"space {space.name!r} has no architecture strings, so it cannot be looked up in --table")
    rows = load_table(table, dataset)
    return [rows[s][1] if (s := space.to_string(a)) in rows else math.nan for a in archs]


def run(space: Any, dataset: Any, archs: list[Architecture], targets: list[float], *, batch_size: int = 64,
        seed: int = 0, out: str | None = None) -> ProxyRun:
    computer = ProxyComputer(space, dataset, batch_size=batch_size, seed=seed)
    start = time.perf_counter()
    values = computer.many(archs)
    seconds = time.perf_counter() - start
    if out:
        path = Path(out)
        try:
            if path.exists():
                path.unlink()
            append_rows(path, ({"arch": arch_text(space, a), "key": space.key(a), **v} for a, v in zip(archs, values)))
        except OSError as exc:
            raise DataError(f"--out {out}: cannot write: {exc.strerror}") from exc
    return ProxyRun(archs, values, targets, correlations(values, targets), seconds)


def format_correlations(rows: list[dict[str, Any]]) -> str:
    lines = [f"{'proxy':10} {'spearman':>9} {'kendall':>8} {'n':>6}"]
    lines += [f"{r['proxy']:10} {r['spearman']:>9.3f} {r['kendall']:>8.3f} {r['n']:>6}" for r in rows]
    return "\n".join(lines)


def table_correlations(proxies: ProxyTable, table: str, dataset: str, valid_column: str | None = None,
                       test_column: str | None = None) -> list[dict[str, Any]]:
    """Each proxy's Spearman and Kendall with a table's test accuracy, over the cells both hold."""
    from nasforge.evaluators.table import load_table

    rows = load_table(table, dataset, valid_column=valid_column, test_column=test_column)
    covered = [a for a in proxies.by_arch if a in rows]
    return correlations([proxies.by_arch[a] for a in covered], [rows[a][1] for a in covered])
