"""Accuracy-cost fronts on NAS-Bench-201: nsga2 against random search and a scalarised single objective.

    python bench/nb201_pareto.py --costs             # params and FLOPs of every cell -> bench/results/nb201_costs.csv
    python bench/nb201_pareto.py --search --cost params --queries 100 --seeds 20   # appends to nb201_pareto.csv

Costs: each of the 15,625 cells is built with the space's own builder as the table trained it (cifar10:
3x32x32 input, 10 classes, 5 cells per stage, 16 channels), params counted and FLOPs (multiply-adds per
image) from nasforge's own counter, the same functions the worker's constraint check uses. The CSV is
resumable and read back as the table evaluator's cost table (`costs=`), so searches look costs up.

Search: every (strategy, seed) is an ordinary study run by the real runner on the table evaluator (no
training), objectives valid_accuracy (max) and the cost (min). The found front of a run is the
non-dominated set of every architecture it evaluated; it is scored by its hypervolume (normalised, see
`normalise`) and its IGD to the table's true front of the same two objectives.
"""

from __future__ import annotations

import argparse
import csv
import math
import multiprocessing
import platform
import sys
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
OUT = ROOT / "bench" / "results"
TABLE = DATA / "nasbench201" / "nb201_12epoch.csv"
COSTS = OUT / "nb201_costs.csv"
RESULTS = OUT / "nb201_pareto.csv"
DATASET = "cifar10"
# (label, strategy, extra build_config options): the scalarised one is evolution on MnasNet's soft
# trade-off score = valid_accuracy * cost ** -0.07 (docs/objectives.md)
STRATEGIES: tuple[tuple[str, str, dict[str, Any]], ...] = (
    ("nsga2", "nsga2", {}), ("random", "random", {}), ("evolution-scalarised", "evolution", {"scalarize": 0.07}))


# ---- costs -------------------------------------------------------------------------------------
def _cell_costs(texts: list[str]) -> list[dict[str, Any]]:
    import torch

    from nasforge.data.base import DataSpec
    from nasforge.evaluators.metrics import model_flops
    from nasforge.evaluators.table import DATASET_INPUTS
    from nasforge.spaces.nb201 import NB201Space

    torch.set_num_threads(1)
    space = NB201Space()
    shape, classes = DATASET_INPUTS[DATASET]
    data_spec = DataSpec(task="classification", input_shape=shape, num_outputs=classes)
    rows = []
    for text in texts:
        model = space.build(space.from_string(text), data_spec)
        rows.append({"arch_str": text, "params": sum(p.numel() for p in model.parameters()),
                     "flops": model_flops(model, "classification", shape)})
    return rows


def compute_costs(processes: int) -> None:
    with open(TABLE, newline="") as f:
        texts = [line["arch_str"] for line in csv.DictReader(f)]
    done: set[str] = set()
    if COSTS.exists():
        with open(COSTS, newline="") as f:
            done = {line["arch_str"] for line in csv.DictReader(f)}
    todo = [t for t in texts if t not in done]
    chunks = [todo[i:i + 100] for i in range(0, len(todo), 100)]
    start = time.perf_counter()
    new = not COSTS.exists()
    with open(COSTS, "a", newline="") as f, \
            ProcessPoolExecutor(processes, mp_context=multiprocessing.get_context("spawn")) as pool:
        writer = csv.DictWriter(f, fieldnames=["arch_str", "params", "flops"])
        if new:
            writer.writeheader()
        for rows in pool.map(_cell_costs, chunks):
            writer.writerows(rows)
            f.flush()
    print(f"{len(todo)} cells built in {time.perf_counter() - start:.0f} s with {processes} processes "
          f"({len(done) + len(todo)} in {COSTS.name}); {platform.processor() or platform.machine()}", file=sys.stderr)


# ---- fronts ------------------------------------------------------------------------------------
def table_points(cost: str) -> tuple[dict[str, tuple[float, float]], list[float], list[float]]:
    """arch string -> (valid accuracy, cost) over the whole table, and each objective's (min, max)."""
    from nasforge.evaluators.table import load_table

    rows = load_table(TABLE, DATASET)
    with open(COSTS, newline="") as f:
        costs = {line["arch_str"]: float(line[cost]) for line in csv.DictReader(f)}
    points = {a: (rows[a][0], costs[a]) for a in rows}
    accs = [p[0] for p in points.values()]
    vals = [p[1] for p in points.values()]
    return points, [min(accs), max(accs)], [min(vals), max(vals)]


def normalise(point: tuple[float, float], acc: Sequence[float], cost: Sequence[float]) -> tuple[float, float]:
    """Both objectives to [0, 1] over the table, oriented to be maximised: (accuracy, 1 - cost); the
    reference point of every hypervolume is (0, 0), i.e. the table's worst accuracy and largest cost."""
    return ((point[0] - acc[0]) / (acc[1] - acc[0]), 1.0 - (point[1] - cost[0]) / (cost[1] - cost[0]))


def run_one(job: tuple[str, str, dict[str, Any], int, int, str, str]) -> dict[str, Any]:
    """One search through the runner and a SQLite store; its front's hypervolume and IGD."""
    import logging

    from nasforge.execution.local import InProcessBackend
    from nasforge.launch import build_config
    from nasforge.objectives.pareto import front_of, hypervolume, igd
    from nasforge.runner import Runner
    from nasforge.storage.sql import Store

    label, strategy, extra, queries, seed, cost, folder = job
    logging.getLogger("nasforge").setLevel(logging.WARNING)
    storage = f"sqlite:///{folder}/{label}-{cost}-q{queries}-s{seed}.db"
    config = build_config(space="nb201", strategy=strategy, evaluator="table", table=str(TABLE), dataset=DATASET,
                          trials=queries, workers=1, study="pareto", storage=storage, seed=seed, progress=False,
                          evaluator_options={"costs": str(COSTS)}, objectives=f"valid_accuracy,{cost}",
                          **extra)
    store = Store(storage)
    start = time.perf_counter()
    Runner(config, store, InProcessBackend()).run()
    seconds = time.perf_counter() - start
    study = store.require_study(config.study)
    trials = [t for t in store.trials(study.id) if t.state.value == "complete"]
    store.dispose()
    points, acc, span = table_points(cost)
    found = [normalise((t.metrics["valid_accuracy"], t.metrics[cost]), acc, span) for t in trials]
    true = [normalise(p, acc, span) for p in points.values()]
    true_front = [true[i] for i in front_of(true)]
    found_front = [found[i] for i in front_of(found)]
    hv_true = hypervolume(true_front, (0.0, 0.0))
    hv = hypervolume(found_front, (0.0, 0.0))
    return {"strategy": label, "cost": cost, "queries": queries, "seed": seed, "evaluated": len(trials),
            "front_size": len(found_front), "hypervolume": hv, "hv_ratio": hv / hv_true,
            "igd": igd(found_front, true_front), "true_front_size": len(true_front), "seconds": seconds}


def search(cost: str, queries: int, seeds: int, processes: int) -> None:
    fields = ["strategy", "cost", "queries", "seed", "evaluated", "front_size", "hypervolume", "hv_ratio", "igd",
              "true_front_size", "seconds"]
    done: set[tuple[str, str, int, int]] = set()
    if RESULTS.exists():
        with open(RESULTS, newline="") as f:
            done = {(r["strategy"], r["cost"], int(r["queries"]), int(r["seed"])) for r in csv.DictReader(f)}
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="nb201-pareto-") as folder:
        jobs = [(label, strategy, extra, queries, seed, cost, folder) for label, strategy, extra in STRATEGIES
                for seed in range(seeds) if (label, cost, queries, seed) not in done]
        new = not RESULTS.exists()
        with open(RESULTS, "a", newline="") as f, \
                ProcessPoolExecutor(processes, mp_context=multiprocessing.get_context("spawn")) as pool:
            writer = csv.DictWriter(f, fieldnames=fields)
            if new:
                writer.writeheader()
            for row in pool.map(run_one, jobs):
                writer.writerow(row)
                f.flush()
    print(f"{len(jobs)} searches in {time.perf_counter() - start:.0f} s ({processes} processes)", file=sys.stderr)


def report() -> None:
    """Mean ± sd per (cost, queries, strategy), as a markdown table on stdout."""
    import statistics

    with open(RESULTS, newline="") as f:
        rows = list(csv.DictReader(f))
    groups: dict[tuple[str, int, str], list[dict[str, str]]] = {}
    for r in rows:
        groups.setdefault((r["cost"], int(r["queries"]), r["strategy"]), []).append(r)
    print("| cost | queries | strategy | seeds | hypervolume | HV / true front's | IGD | front size | s/run |")
    print("|---|---|---|---|---|---|---|---|---|")
    for (cost, q, s), rs in sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][1],
                                                                    [x[0] for x in STRATEGIES].index(kv[0][2]))):
        def ms(key: str, digits: int = 4, rs: list[dict[str, str]] = rs) -> str:
            xs = [float(r[key]) for r in rs]
            sd = statistics.stdev(xs) if len(xs) > 1 else math.nan
            return f"{statistics.fmean(xs):.{digits}f} ± {sd:.{digits}f}"
        print(f"| {cost} | {q} | {s} | {len(rs)} | {ms('hypervolume')} | {ms('hv_ratio')} | {ms('igd')} | "
              f"{ms('front_size', 1)} | {statistics.fmean(float(r['seconds']) for r in rs):.2f} |")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--costs", action="store_true", help="compute the cost CSV (resumable)")
    parser.add_argument("--search", action="store_true", help="run the searches, appending to nb201_pareto.csv")
    parser.add_argument("--report", action="store_true", help="print mean ± sd of nb201_pareto.csv")
    parser.add_argument("--cost", default="params", choices=("params", "flops"))
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--processes", type=int, default=2)
    args = parser.parse_args(argv)
    if args.costs:
        compute_costs(args.processes)
    if args.search:
        search(args.cost, args.queries, args.seeds, args.processes)
    if args.report:
        report()


if __name__ == "__main__":
    main()
