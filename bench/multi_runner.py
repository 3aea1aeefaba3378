"""Several `nasforge search` processes sharing one study: do they split it exactly, and how fast?

Usage: python bench/multi_runner.py --storage postgresql+psycopg://USER@HOST:PORT/DB [--runners 4]
       [--trials 200] [--also-sqlite]
Writes bench/results/multi_runner.md and .csv. Each runner is the real CLI (`--workers 1`, table
evaluator on NAS-Bench-201, random strategy) on one study; afterwards the store is checked: trials,
complete, distinct numbers and keys (an architecture evaluated twice would show as fewer keys than
trials), and how the trials split between runners. Wall time includes each process's start-up
(Python, torch, loading the table), which dominates at this size.
"""

from __future__ import annotations

import argparse
import csv
import platform
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TABLE = ROOT.parent / "shared" / "data" / "nasbench201" / "nb201_12epoch.csv"
OUT = ROOT / "bench" / "results"


def one(storage: str, runners: int, trials: int, table: str, root: str) -> dict[str, object]:
    from nasforge.core.types import TrialState
    from nasforge.storage.sql import Store

    study = f"multi-{uuid.uuid4().hex[:8]}"
    cmd = [sys.executable, "-m", "nasforge", "search", "--space", "nb201", "--strategy", "random", "--evaluator",
           "table", "--table", table, "--trials", str(trials), "--workers", "1", "--study", study, "--storage",
           storage, "--root", root, "--no-progress"]
    wall = time.perf_counter()
    procs = [subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
             for _ in range(runners)]
    codes = []
    for p in procs:
        _, err = p.communicate(timeout=1200)
        codes.append(p.returncode)
        if p.returncode:
            print(err, file=sys.stderr)
    wall = time.perf_counter() - wall
    store = Store(storage)
    rows = store.trials(store.require_study(study).id)
    split = Counter(r.runner for r in rows)
    return {"store": storage.split(":", 1)[0], "runners": runners, "trials_wanted": trials, "trials": len(rows),
            "complete": sum(r.state == TrialState.COMPLETE for r in rows),
            "distinct_numbers": len({r.number for r in rows}), "distinct_keys": len({r.key for r in rows}),
            "trials_per_runner": " / ".join(str(n) for n in sorted(split.values(), reverse=True)),
            "exit_codes": ",".join(map(str, codes)), "wall_s": round(wall, 1)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--storage", required=True, help="PostgreSQL URL (postgresql+psycopg://...)")
    parser.add_argument("--runners", type=int, default=4)
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--table", default=str(TABLE))
    parser.add_argument("--also-sqlite", action="store_true", help="run the same on a SQLite file")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        rows.append(one(args.storage, args.runners, args.trials, args.table, f"{tmp}/art"))
        print(rows[-1], flush=True)
        if args.also_sqlite:
            rows.append(one(f"sqlite:///{tmp}/multi.db", args.runners, args.trials, args.table, f"{tmp}/art"))
            print(rows[-1], flush=True)
    OUT.mkdir(parents=True, exist_ok=True)
    with open(OUT / "multi_runner.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    shown = [a if not a.startswith("postgresql") else "postgresql+psycopg://...(local server)" for a in sys.argv[1:]]
    lines = ["# Several runners sharing one study", "",
             f"Command: `{' '.join(['python', 'bench/multi_runner.py', *shown])}`", "",
             f"Machine: {platform.machine()}, 2-core VM shared with other jobs, Python {platform.python_version()}; "
             "PostgreSQL 15 on loopback. Each runner: `nasforge search --workers 1`, table evaluator "
             "(NAS-Bench-201 12-epoch), random strategy, started together.", "",
             "| store | runners | wanted | trials | complete | distinct numbers | distinct keys | trials per runner "
             "| exit codes | wall s |", "|---|---|---|---|---|---|---|---|---|---|"]
    lines += [f"| {r['store']} | {r['runners']} | {r['trials_wanted']} | {r['trials']} | {r['complete']} | "
              f"{r['distinct_numbers']} | {r['distinct_keys']} | {r['trials_per_runner']} | {r['exit_codes']} | "
              f"{r['wall_s']} |" for r in rows]
    lines += ["", "Exact when trials = complete = distinct numbers = distinct keys = wanted. Wall time is mostly "
              "process start-up (importing torch, loading the table) on two shared cores; a runner that starts "
              "late may find the study finished and make no trial."]
    (OUT / "multi_runner.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
