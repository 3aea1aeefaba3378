"""Per-trial overhead of the Ray backend against the local process pool, on no-op trials.

Usage: python bench/ray_overhead.py [--trials 300] [--workers 2] [--address HOST:PORT]
Writes bench/results/ray_overhead.md and .csv. Every backend runs the same search (synthetic evaluator,
no sleep: a trial is a few microseconds of arithmetic) through the full runner and a SQLite store,
after its workers are warm (started, torch imported, evaluator built), so what is measured is
submitting a trial, running it remotely and getting its result back. Overhead = ms per trial minus the
in-process backend's ms per trial (the runner and store's own cost).
"""

from __future__ import annotations

import argparse
import csv
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "results"


def warm(backend: Any, config: Any, n: int) -> None:
    """Run n trials outside the timing so every worker has started and built its evaluator."""
    from nasforge.core.types import TrialSpec

    space_arch = {"space": "nb201", "tokens": [0, 0, 0, 0, 0, 0]}
    specs = [TrialSpec(study="warm", number=i, arch=space_arch, seed=i, space=config.space, space_config={},
                       evaluator=config.evaluator, evaluator_config=config.evaluator_config, budget={},
                       objective=config.objective, direction=config.direction, workdir=None, threads=1)
             for i in range(n)]
    for future in [backend.submit(s) for s in specs]:
        future.result(timeout=300)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--trials", type=int, default=300)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--address", help="an existing Ray cluster (default: a local Ray instance)")
    args = parser.parse_args()

    from nasforge.execution.local import InProcessBackend, ProcessPoolBackend
    from nasforge.execution.ray import RayBackend
    from nasforge.launch import build_config
    from nasforge.runner import Runner
    from nasforge.storage.sql import Store

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        makers: list[tuple[str, Any]] = [
            ("in-process", InProcessBackend),
            (f"process pool ({args.workers} workers)", lambda: ProcessPoolBackend(args.workers)),
            (f"ray ({'cluster ' + args.address if args.address else 'local instance'}, {args.workers} workers)",
             lambda: RayBackend(args.address, args.workers)),
        ]
        for i, (name, make) in enumerate(makers):
            config = build_config(space="nb201", strategy="random", evaluator="synthetic", trials=args.trials,
                                  workers=args.workers, study=f"overhead-{i}", storage=f"sqlite:///{tmp}/o.db",
                                  root=f"{tmp}/art", progress=False, retries=0)
            backend = make()
            try:
                warm(backend, config, 4 * backend.capacity())
                wall = time.perf_counter()
                summary = Runner(config, Store(config.storage), backend).run()
                wall = time.perf_counter() - wall
            finally:
                backend.shutdown()
            rows.append({"backend": name, "trials": summary.complete, "wall_s": round(wall, 2),
                         "ms_per_trial": round(1000 * wall / max(1, summary.complete), 2)})
            print(rows[-1], flush=True)
    base = rows[0]["ms_per_trial"]
    for r in rows:
        r["overhead_ms"] = round(r["ms_per_trial"] - base, 2)
    OUT.mkdir(parents=True, exist_ok=True)
    with open(OUT / "ray_overhead.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    import ray
    import torch

    lines = ["# Ray backend overhead: no-op trials through the full runner", "",
             f"Command: `{' '.join(['python', 'bench/ray_overhead.py', *sys.argv[1:]])}`", "",
             f"Machine: {platform.machine()}, 2-core VM shared with other jobs, Python {platform.python_version()}, "
             f"torch {torch.__version__}, Ray {ray.__version__}. Target: Ray's overhead at most 10 ms per trial.", "",
             "Workers are warm before timing (started, evaluator built). ms/trial is wall time over complete "
             "trials; overhead is ms/trial minus the in-process backend's (the runner and SQLite store's own cost).",
             "", "| backend | trials | wall s | ms/trial | overhead ms/trial |", "|---|---|---|---|---|"]
    lines += [f"| {r['backend']} | {r['trials']} | {r['wall_s']} | {r['ms_per_trial']} | {r['overhead_ms']} |"
              for r in rows]
    (OUT / "ray_overhead.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
