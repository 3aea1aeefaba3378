"""`nasforge bench`: every strategy, every seed, through the real runner and store, on a benchmark table.

Each (strategy, seed) is an ordinary study in `DIR/bench.db`, so a benchmark interrupted half-way
resumes where it stopped, and any run can be inspected with `nasforge trials`. A query is a distinct
architecture evaluated (a duplicate is answered from the store and costs nothing), and the curve
records, after each query, the test accuracy of the best-by-validation architecture found so far.
"""

from __future__ import annotations

import csv
import logging
import multiprocessing
import os
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from nasforge.core import registry
from nasforge.core.errors import ConfigError

CHECKPOINTS = (25, 50, 100, 200, 300)


@dataclass(frozen=True)
class BenchJob:
    strategy: str
    seed: int
    table: str
    dataset: str
    queries: int
    storage: str
    space: str = "nb201"
    proxies: str | None = None  # a proxy CSV, for strategies that take `proxies`
    valid_column: str | None = None  # default: <dataset>_valid
    test_column: str | None = None  # default: <dataset>_test


def takes_proxies(strategy: str) -> bool:
    import inspect

    factory = registry.resolve("strategy", strategy)
    # a subclass may pass `proxies` on through **options (npenas does), so its bases' signatures count too
    classes = factory.__mro__ if isinstance(factory, type) else (factory,)
    return any("proxies" in inspect.signature(c).parameters for c in classes if c is not object)


def study_name(job: BenchJob) -> str:
    proxied = "-proxies" if job.proxies else ""
    return f"bench-{job.dataset}-{job.strategy}{proxied}-q{job.queries}-s{job.seed}"


def run_job(job: BenchJob) -> tuple[str, int, list[tuple[float, float]]]:
    """One search; returns (strategy, seed, [(valid, test) per trial in order])."""
    from nasforge.execution.local import InProcessBackend
    from nasforge.launch import build_config
    from nasforge.runner import Runner
    from nasforge.storage.sql import Store

    logging.getLogger("nasforge").setLevel(logging.WARNING)
    columns = {k: v for k, v in (("valid_column", job.valid_column), ("test_column", job.test_column)) if v}
    config = build_config(space=job.space, strategy=job.strategy, evaluator="table", table=job.table,
                          dataset=job.dataset, trials=job.queries, workers=1, study=study_name(job),
                          storage=job.storage, seed=job.seed, progress=False,
                          strategy_options={"proxies": job.proxies} if job.proxies else None,
                          evaluator_options=columns or None)
    store = Store(job.storage)
    Runner(config, store, InProcessBackend()).run()
    study = store.require_study(config.study)
    points = [(t.metrics.get("valid_accuracy", float("nan")), t.metrics.get("test_accuracy", float("nan")))
              for t in store.trials(study.id)]
    store.dispose()
    return job.strategy, job.seed, points


def best_so_far(points: Sequence[tuple[float, float]], queries: int) -> np.ndarray:
    """Per query: test accuracy of the best-valid architecture so far (first found wins ties)."""
    out = np.full(queries, np.nan)
    best_valid, best_test = -np.inf, np.nan
    for i, (valid, test) in enumerate(points[:queries]):
        if valid > best_valid:
            best_valid, best_test = valid, test
        out[i] = best_test
    if len(points) < queries and len(points):
        out[len(points):] = best_test
    return out


def best_valid_so_far(points: Sequence[tuple[float, float]], queries: int) -> np.ndarray:
    out = np.full(queries, np.nan)
    best = -np.inf
    for i, (valid, _) in enumerate(points[:queries]):
        best = max(best, valid)
        out[i] = best
    if len(points) < queries and len(points):
        out[len(points):] = best
    return out


def run_bench(table: str, dataset: str, strategies: Sequence[str], queries: int, seeds: int, out: str,
              jobs: int | None = None, seed_offset: int = 0, proxies: str | None = None,
              valid_column: str | None = None, test_column: str | None = None) -> list[dict[str, Any]]:
    """`valid_column`/`test_column` read a table laid out otherwise (NAS-Bench-201's 200-epoch
    `valid-accuracy`/`test-accuracy`); `dataset` then only names the runs."""
    if queries < 1 or seeds < 1:
        raise ConfigError(f"--queries and --seeds must be positive (got {queries}, {seeds})")
    for name in strategies:
        registry.resolve("strategy", name)
    from nasforge.evaluators.table import TableEvaluator

    # a bad table, dataset or column fails here, in one line
    TableEvaluator(table=table, dataset=dataset, valid_column=valid_column, test_column=test_column)
    proxy_cost = 0.0
    if proxies:
        from nasforge.proxies.table import ProxyTable

        proxy_table = ProxyTable(proxies)  # a bad proxy CSV fails here too
        proxies, proxy_cost = str(Path(proxies).resolve()), proxy_table.seconds
    folder = Path(out)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"--out {out}: cannot create the folder: {exc.strerror}") from exc
    storage = f"sqlite:///{(folder / 'bench.db').resolve()}"
    table = str(Path(table).resolve())
    work = [BenchJob(s, seed_offset + k, table, dataset, queries, storage,
                     proxies=proxies if proxies and takes_proxies(s) else None,
                     valid_column=valid_column, test_column=test_column)
            for s in strategies for k in range(seeds)]
    uses_proxies = {j.strategy for j in work if j.proxies}
    jobs = max(1, jobs or os.cpu_count() or 1)
    start = time.perf_counter()
    if jobs == 1:
        results = [run_job(j) for j in work]
    else:
        with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
            results = list(pool.map(run_job, work, chunksize=max(1, len(work) // (jobs * 8))))
    elapsed = time.perf_counter() - start

    curves: dict[str, list[np.ndarray]] = {s: [] for s in strategies}
    valids: dict[str, list[np.ndarray]] = {s: [] for s in strategies}
    for strategy, _seed, points in results:
        curves[strategy].append(best_so_far(points, queries))
        valids[strategy].append(best_valid_so_far(points, queries))
    summary = []
    for s in strategies:
        test = np.vstack(curves[s])
        valid = np.vstack(valids[s])
        for q in [c for c in CHECKPOINTS if c <= queries] or [queries]:
            summary.append({"strategy": s, "queries": q, "mean_test": float(np.nanmean(test[:, q - 1])),
                            "std_test": float(np.nanstd(test[:, q - 1])),
                            "mean_valid": float(np.nanmean(valid[:, q - 1])), "seeds": int(test.shape[0]),
                            **({"proxy_s": proxy_cost if s in uses_proxies else 0.0} if proxies else {})})
    _write_csv(folder / "summary.csv", summary)
    curve_rows = []
    for s in strategies:
        test = np.vstack(curves[s])
        for q in range(queries):
            curve_rows.append({"strategy": s, "queries": q + 1, "mean_test": float(np.nanmean(test[:, q])),
                               "std_test": float(np.nanstd(test[:, q])), "seeds": int(test.shape[0])})
    _write_csv(folder / "curves.csv", curve_rows)
    _plot(folder / "curves.png", curves, dataset, Path(table).name)
    (folder / "run.txt").write_text(
        f"table={table}\ndataset={dataset}\nvalid_column={valid_column or ''}\ntest_column={test_column or ''}\n"
        f"strategies={','.join(strategies)}\nqueries={queries}\n"
        f"seeds={seeds}\ntrials={sum(len(p) for _, _, p in results)}\nelapsed_s={elapsed:.1f}\njobs={jobs}\n"
        f"proxies={proxies or ''}\nproxy_s={proxy_cost:.1f}\n")
    return summary


def _write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def _plot(path: Path, curves: dict[str, list[np.ndarray]], dataset: str, table: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    for name, runs in curves.items():
        data = np.vstack(runs)
        mean = np.nanmean(data, axis=0)
        std = np.nanstd(data, axis=0)
        x = np.arange(1, data.shape[1] + 1)
        ax.plot(x, mean, label=name, lw=1.6)
        ax.fill_between(x, mean - std, mean + std, alpha=0.15)
    ax.set_xlabel("queries (distinct architectures evaluated)")
    ax.set_ylabel("test accuracy of best-valid architecture (%)")
    ax.set_title(f"{table}, {dataset}: mean ± std over {len(next(iter(curves.values())))} seeds")
    lows = [np.nanmean(np.vstack(r), axis=0)[min(9, np.vstack(r).shape[1] - 1)] for r in curves.values()]
    top = max(np.nanmax(np.nanmean(np.vstack(r), axis=0)) for r in curves.values())
    ax.set_ylim(min(lows) - 0.5, top + 0.3)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def format_summary(rows: list[dict[str, Any]]) -> str:
    proxied = bool(rows) and "proxy_s" in rows[0]
    head = (f"{'strategy':14} {'queries':>7} {'mean_test':>10} {'std_test':>9} {'mean_valid':>10} {'seeds':>6}"
            + (f" {'proxy_s':>8}" if proxied else ""))
    lines = [head]
    for r in rows:
        lines.append(f"{r['strategy']:14} {r['queries']:>7} {r['mean_test']:>10.3f} {r['std_test']:>9.3f} "
                     f"{r['mean_valid']:>10.3f} {r['seeds']:>6}" + (f" {r['proxy_s']:>8.0f}" if proxied else ""))
    return "\n".join(lines)
