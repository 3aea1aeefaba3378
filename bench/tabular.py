"""nasforge's dnn search vs scikit-learn on real tables: test accuracy and wall time.

Usage: python bench/tabular.py [--datasets adult,letter,magic] [--trials 20] [--workers 2]
Writes bench/results/tabular.csv and bench/results/tabular.md. Every method is scored on the
same held-out test split (20%, stratified, seed 0) that the search never sees; the sklearn
models are trained on the same training split the searched networks are trained on.
"""

from __future__ import annotations

import argparse
import csv
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data" / "tabular"
OUT = ROOT / "bench" / "results"


def machine() -> str:
    import os

    import torch

    return (f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python "
            f"{platform.python_version()}, torch {torch.__version__}")


def run_one(name: str, trials: int, workers: int, seed: int, workdir: Path) -> list[dict[str, object]]:
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.neural_network import MLPClassifier

    import nasforge
    from nasforge.data.loader import data_config, load_dataset

    path = SHARED / f"{name}.tsv.gz"
    common = {"label": "target", "test_fraction": 0.2, "seed": seed}
    dataset = load_dataset(data_config(str(path), **common))
    assert dataset.test is not None
    rows: list[dict[str, object]] = []

    start = time.perf_counter()
    study = nasforge.search(str(path), space="dnn", strategy="model_search", trials=trials, workers=workers,
                            study=f"bench-{name}", storage=f"sqlite:///{workdir / 'bench.db'}",
                            root=str(workdir), **common)
    wall = time.perf_counter() - start
    best = study.best_trial
    assert best is not None
    rows.append({"dataset": name, "method": f"nasforge dnn+model_search ({trials} trials, {workers} workers)",
                 "test_accuracy": best.metrics["test_accuracy"], "valid_accuracy": best.metrics["valid_accuracy"],
                 "wall_s": wall, "params": best.params})

    for label, model in (("sklearn MLPClassifier (defaults)", MLPClassifier(random_state=seed)),
                         ("sklearn HistGradientBoostingClassifier (defaults)",
                          HistGradientBoostingClassifier(random_state=seed))):
        t0 = time.perf_counter()
        model.fit(dataset.train.x, dataset.train.y)
        test = float(np.mean(model.predict(dataset.test.x) == dataset.test.y))
        valid = float(np.mean(model.predict(dataset.valid.x) == dataset.valid.y))
        rows.append({"dataset": name, "method": label, "test_accuracy": test, "valid_accuracy": valid,
                     "wall_s": time.perf_counter() - t0, "params": None})
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--datasets", default="adult,letter,magic")
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if not SHARED.is_dir():
        print(f"shared data not found at {SHARED}", file=sys.stderr)
        return 2
    rows: list[dict[str, object]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.datasets.split(","):
            rows.extend(run_one(name, args.trials, args.workers, args.seed, Path(tmp)))
            print(rows[-3:], flush=True)
    OUT.mkdir(parents=True, exist_ok=True)
    with open(OUT / "tabular.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    command = "python bench/tabular.py " + " ".join(sys.argv[1:])
    lines = [
        "# Tabular search vs scikit-learn",
        "",
        f"Command: `{command.strip()}`  ",
        f"Machine: {machine()}  ",
        "Split: 20% stratified test (never seen by the search), 20% of the rest for validation, seed "
        f"{args.seed}. The searched network is the best trial by validation accuracy.",
        "",
        "| dataset | method | test accuracy | valid accuracy | wall s |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(f"| {r['dataset']} | {r['method']} | {float(r['test_accuracy']):.4f} | "  # type: ignore[arg-type]
                     f"{float(r['valid_accuracy']):.4f} | {float(r['wall_s']):.1f} |")  # type: ignore[arg-type]
    (OUT / "tabular.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
