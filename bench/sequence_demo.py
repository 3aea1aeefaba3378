"""The one-line sequence demo on the generated builtin set, timed: does it run in a minute on 2 CPU cores?

Usage: python bench/sequence_demo.py [--trials 10] [--epochs 20] [--batch-size 32]
Runs `nasforge.search("builtin:cbf", space="sequence", ...)` (what `nasforge search --data builtin:cbf --space
sequence ...` runs) in a fresh store and writes bench/results/sequence_demo.{md,csv}: wall seconds (import
and data generation included), trials, and the best trial's validation and test accuracy.
"""

from __future__ import annotations

import argparse
import csv
import datetime
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "bench" / "results"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args()
    start = time.perf_counter()
    import torch

    import nasforge

    with tempfile.TemporaryDirectory() as tmp:
        study = nasforge.search("builtin:cbf", space="sequence", trials=args.trials, epochs=args.epochs,
                                batch_size=args.batch_size, test_fraction=0.25, storage=f"sqlite:///{tmp}/db",
                                root=tmp, progress=False)
        wall = time.perf_counter() - start
        best = study.best_trial
        assert best is not None
        row = {"trials": sum(t.state.value == "complete" for t in study.trials), "wall_s": round(wall, 1),
               "valid_accuracy": best.metrics.get("valid_accuracy"), "test_accuracy": best.metrics.get("test_accuracy"),
               "best": study.leaderboard()[0]["architecture"],
               "machine": f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}",
               "command": "python bench/sequence_demo.py " + " ".join(sys.argv[1:]),
               "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}
    OUT.mkdir(parents=True, exist_ok=True)
    with open(OUT / "sequence_demo.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(row))
        writer.writeheader()
        writer.writerow(row)
    (OUT / "sequence_demo.md").write_text(
        "# The one-line sequence demo (`builtin:cbf`, generated Cylinder-Bell-Funnel)\n\n"
        f"`nasforge.search(\"builtin:cbf\", space=\"sequence\", trials={args.trials}, epochs={args.epochs}, "
        f"batch_size={args.batch_size}, test_fraction=0.25)`, under /work/tools/cpu-quiet; wall includes "
        "importing torch and generating the set.\n\n"
        "| trials | wall s | best valid acc | its test acc | best architecture |\n|---|---|---|---|---|\n"
        f"| {row['trials']} | {row['wall_s']} | {float(row['valid_accuracy']):.3f} | "
        f"{float(row['test_accuracy']):.3f} | {row['best']} |\n\n"
        f"Run: {row['date']}, {row['machine']}: `{row['command']}`\n")
    print(row)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
