"""The issue-15 protocol on one shared table: a time-budgeted `dnn` search vs HistGBM and sklearn's MLP.

Usage (one table per invocation, ~budget + 1 min; run it under /work/tools/cpu-quiet on a quiet machine):

    python bench/tabular.py --dataset magic            # --time-budget 300 --workers 2 by default

Each run appends one row per method to bench/results/tabular_budget.csv (re-running a table replaces its
rows) and rewrites bench/results/tabular_budget.md from the CSV. The split is the search's own: 20%
stratified test (seed 0) the search never sees, then 20% of the rest for validation; HistGBM (defaults) and
MLP (defaults) are fitted on the same training rows the networks train on and scored on the same test rows.
Reported: test accuracy (classification) or test RMSE and R² (regression), validation metric, wall seconds
(the search's includes its own baseline fit, final ensemble and start-up), searched trials and trials/min.
"""

from __future__ import annotations

import argparse
import csv
import datetime
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data" / "tabular"
OUT = ROOT / "bench" / "results"
CSV = OUT / "tabular_budget.csv"
MD = OUT / "tabular_budget.md"
FIELDS = ["dataset", "task", "method", "test_accuracy", "test_rmse", "test_r2", "valid_metric", "wall_s",
          "budget_s", "trials", "trials_per_min", "final", "date", "machine", "command"]


def machine() -> str:
    import os

    import torch

    return (f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python "
            f"{platform.python_version()}, torch {torch.__version__}")


def _scores(task: str, y: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    if task == "classification":
        return {"test_accuracy": float(np.mean(pred.reshape(-1) == y.reshape(-1)))}
    err = pred.reshape(-1) - y.reshape(-1).astype(float)
    total = float(np.sum((y.reshape(-1) - y.mean()) ** 2))
    return {"test_rmse": float(np.sqrt(np.mean(err ** 2))), "test_r2": 1.0 - float(np.sum(err ** 2)) / total}


def run_search(path: Path, name: str, budget: float, workers: int, seed: int, workdir: Path) -> dict[str, Any]:
    import nasforge
    from nasforge.core.types import TrialState

    start = time.perf_counter()
    study = nasforge.search(str(path), space="dnn", time_budget=budget, workers=workers, study=f"bench-{name}",
                            storage=f"sqlite:///{workdir / 'bench.db'}", root=str(workdir), label="target",
                            test_fraction=0.2, seed=seed)
    wall = time.perf_counter() - start
    best = study.best_trial
    assert best is not None, f"{name}: no complete trial within {budget}s"
    searched = [t for t in study.trials if t.state == TrialState.COMPLETE
                and str((t.info or {}).get("kind") or "search") == "search"]
    kind = str((best.info or {}).get("kind") or "search")
    metrics = best.metrics
    valid = metrics.get("valid_accuracy", metrics.get("valid_rmse"))
    return {"method": f"nasforge dnn (--time-budget {budget:g}, {workers} workers)",
            **{k: metrics[k] for k in ("test_accuracy", "test_rmse", "test_r2") if k in metrics},
            "valid_metric": valid, "wall_s": wall, "trials": len(searched),
            "trials_per_min": 60.0 * len(searched) / wall, "final": f"trial {best.number} ({kind})"}


def run_sklearn(dataset: Any, seed: int) -> list[dict[str, Any]]:
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
    from sklearn.neural_network import MLPClassifier, MLPRegressor

    classify = dataset.spec.task == "classification"
    models: list[tuple[str, Any]] = [
        ("sklearn HistGradientBoosting (defaults)",
         HistGradientBoostingClassifier(random_state=seed) if classify else HistGradientBoostingRegressor(
             random_state=seed)),
        ("sklearn MLP (defaults)", MLPClassifier(random_state=seed) if classify else MLPRegressor(random_state=seed)),
    ]
    y_train = np.asarray(dataset.train.y)
    y_train = y_train.reshape(-1) if not classify or y_train.ndim > 1 else y_train
    rows = []
    for label, model in models:
        t0 = time.perf_counter()
        model.fit(np.asarray(dataset.train.x), y_train)
        wall = time.perf_counter() - t0
        test = _scores(dataset.spec.task, np.asarray(dataset.test.y), model.predict(np.asarray(dataset.test.x)))
        valid = _scores(dataset.spec.task, np.asarray(dataset.valid.y), model.predict(np.asarray(dataset.valid.x)))
        rows.append({"method": label, **test, "wall_s": wall,
                     "valid_metric": valid.get("test_accuracy", valid.get("test_rmse"))})
    return rows


def read_rows() -> list[dict[str, str]]:
    if not CSV.is_file():
        return []
    with open(CSV, newline="") as f:
        return list(csv.DictReader(f))


def _num(value: str, digits: int = 4) -> str:
    return "-" if value in ("", None) else f"{float(value):.{digits}f}"


def write_markdown(rows: list[dict[str, str]]) -> None:
    lines = [
        "# Tabular search vs HistGBM and MLP within a time budget (issue 15 protocol)",
        "",
        "One table per invocation (each appends its rows to `tabular_budget.csv`, replacing that table's old rows,",
        "and rewrites this file). Run each table on a quiet machine:",
        "",
        "    /work/tools/cpu-quiet python bench/tabular.py --dataset NAME",
        "",
        "with NAME one of: " + ", ".join(sorted(p.name.split(".")[0] for p in SHARED.glob("*.tsv.gz"))) + ".",
        "Defaults: `--time-budget 300 --workers 2 --seed 0`; 20% stratified test split never seen by the search,",
        "20% of the rest for validation; HistGBM and MLP fitted on the same training rows. The nasforge row is",
        "the study's final model (best trial by validation, or the final ensemble when it wins on validation);",
        "its wall time is the whole `search` call (start-up, baseline fit, trials, final ensemble).",
        "",
        "| dataset | method | test acc | test RMSE | test R² | valid | wall s | trials | trials/min | final | date |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(f"| {r['dataset']} | {r['method']} | {_num(r['test_accuracy'])} | {_num(r['test_rmse'])} | "
                     f"{_num(r['test_r2'])} | {_num(r['valid_metric'])} | {_num(r['wall_s'], 1)} | "
                     f"{r['trials'] or '-'} | {_num(r['trials_per_min'], 2)} | {r['final'] or '-'} | {r['date']} |")
    machines = sorted({r["machine"] for r in rows})
    commands = sorted({r["command"] for r in rows})
    lines += ["", "Machines: " + "; ".join(machines), "", "Commands: " + "; ".join(f"`{c}`" for c in commands)]
    MD.write_text("\n".join(lines) + "\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", required=True, help="a table in ../shared/data/tabular (name without .tsv.gz)")
    parser.add_argument("--time-budget", type=float, default=300.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    path = SHARED / f"{args.dataset}.tsv.gz"
    if not path.is_file():
        print(f"no table {path}", file=sys.stderr)
        return 2
    from nasforge.data.loader import data_config, load_dataset

    dataset = load_dataset(data_config(str(path), label="target", test_fraction=0.2, seed=args.seed))
    assert dataset.test is not None
    with tempfile.TemporaryDirectory() as tmp:
        rows = [run_search(path, args.dataset, args.time_budget, args.workers, args.seed, Path(tmp))]
    rows += run_sklearn(dataset, args.seed)
    stamp = {"dataset": args.dataset, "task": dataset.spec.task, "budget_s": args.time_budget,
             "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
             "machine": machine(), "command": "python bench/tabular.py " + " ".join(sys.argv[1:])}
    new = [{k: ("" if (v := {**stamp, **r}.get(k)) is None else str(v)) for k in FIELDS} for r in rows]
    kept = [r for r in read_rows() if r["dataset"] != args.dataset]
    OUT.mkdir(parents=True, exist_ok=True)
    with open(CSV, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=FIELDS)
        writer.writeheader()
        writer.writerows(kept + new)
    write_markdown(kept + new)
    for r in new:
        print(r)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
