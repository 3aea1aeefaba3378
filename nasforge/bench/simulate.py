"""A store-free copy of the runner's loop over a benchmark table, for quick strategy comparisons.

It keeps the runner's semantics that matter to a strategy: proposals whose key already has a
result are answered at once from it (and do not count as queries), a key in flight makes later
proposals of it wait for its result, and with `parallel > 1` results come back out of order.
"""

from __future__ import annotations

import argparse
import math
import time
from typing import Any

import numpy as np

from nasforge.core import registry
from nasforge.core.types import Proposal, Result, TrialState
from nasforge.evaluators.table import load_table

MAX_DUPLICATES_IN_A_ROW = 2000  # as the runner: a strategy stuck on known keys ends the run


def simulate(strategy_name: str, table_path: str, dataset: str, queries: int, seed: int, *,
             parallel: int = 1, space_name: str = "nb201", **options: Any) -> list[tuple[float, float]]:
    """Best-so-far (valid, test) accuracy of the best-valid architecture after each distinct query."""
    space = registry.create("space", space_name)
    rows = load_table(table_path, dataset)
    strategy = registry.create("strategy", strategy_name, space=space, seed=seed, max_trials=queries,
                               **options)
    order_rng = np.random.default_rng(seed + 7_919)
    done: dict[str, Result] = {}
    test_of: dict[str, float] = {}
    inflight: list[tuple[Proposal, Result]] = []
    waiting: dict[str, list[Proposal]] = {}
    curve: list[tuple[float, float]] = []
    best_valid, best_test = -math.inf, math.nan
    dups = 0
    while len(curve) < queries:
        room = queries - len(curve) - len(inflight)
        slots = parallel - len(inflight)
        proposals: list[Proposal] = []
        fresh = 0
        if room > 0 and slots > 0 and not strategy.is_finished():
            proposals = strategy.ask(min(room, slots))
            for p in proposals:
                if p.key in done:
                    strategy.tell(p, done[p.key])
                    dups += 1
                elif any(q.key == p.key for q, _ in inflight):
                    waiting.setdefault(p.key, []).append(p)
                    dups += 1
                else:
                    valid, test, _ = rows[space.to_string(p.arch)]
                    test_of[p.key] = test
                    inflight.append((p, Result(TrialState.COMPLETE, metrics={"valid_accuracy": valid,
                                                                             "test_accuracy": test},
                                               score=valid)))
                    fresh += 1
                    dups = 0
            if dups >= MAX_DUPLICATES_IN_A_ROW:
                break
            if fresh or (proposals and not inflight):
                continue
        if not inflight:
            break  # the strategy proposes nothing and nothing is running
        i = 0 if parallel == 1 else int(order_rng.integers(len(inflight)))
        p, result = inflight.pop(i)
        done[p.key] = result
        assert result.score is not None
        if result.score > best_valid:
            best_valid, best_test = result.score, test_of[p.key]
        curve.append((best_valid, best_test))
        strategy.tell(p, result)
        for dup in waiting.pop(p.key, []):
            strategy.tell(dup, result)
    return curve


def _one(args: tuple[str, str, str, int, int, dict[str, Any]]) -> tuple[float, float, int, float]:
    name, table, dataset, queries, seed, options = args
    start = time.perf_counter()
    curve = simulate(name, table, dataset, queries, seed, **options)
    valid, test = curve[-1] if curve else (math.nan, math.nan)
    return valid, test, len(curve), time.perf_counter() - start


def benchmark(strategy_name: str, table_path: str, dataset: str, queries: int, seeds: range | list[int],
              processes: int = 1, **options: Any) -> dict[str, float]:
    """Mean final (valid, test) over seeds, plus the mean seconds per run."""
    jobs = [(strategy_name, table_path, dataset, queries, s, options) for s in seeds]
    if processes > 1:
        from multiprocessing import get_context

        with get_context("fork").Pool(processes) as pool:
            out = pool.map(_one, jobs)
    else:
        out = [_one(j) for j in jobs]
    arr = np.array(out, dtype=float)
    return {"valid": float(arr[:, 0].mean()), "test": float(arr[:, 1].mean()),
            "test_sem": float(arr[:, 1].std(ddof=1) / math.sqrt(len(arr))) if len(arr) > 1 else 0.0,
            "queries": float(arr[:, 2].mean()), "seconds": float(arr[:, 3].mean()), "runs": float(len(arr))}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Strategies on a NAS-Bench-201 table, without the store.")
    parser.add_argument("table")
    parser.add_argument("--strategies", default="random,evolution,local,reinforce,qlearning,bananas")
    parser.add_argument("--datasets", default="cifar10,cifar100")
    parser.add_argument("--queries", default="100")
    parser.add_argument("--seeds", type=int, default=50)
    parser.add_argument("--processes", type=int, default=1)
    args = parser.parse_args(argv)
    print("| strategy | dataset | queries | mean test | ± sem | mean valid | s/run |")
    print("|---|---|---|---|---|---|---|")
    for name in args.strategies.split(","):
        for dataset in args.datasets.split(","):
            for q in (int(x) for x in args.queries.split(",")):
                r = benchmark(name, args.table, dataset, q, range(args.seeds), processes=args.processes)
                print(f"| {name} | {dataset} | {q} | {r['test']:.2f} | {r['test_sem']:.2f} | {r['valid']:.2f} "
                      f"| {r['seconds']:.2f} |", flush=True)


if __name__ == "__main__":
    main()
