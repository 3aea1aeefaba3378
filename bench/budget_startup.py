"""Does `search --time-budget S` finish within S? Before/after one code change, in one run, alternating.

Usage (one table, a few minutes; run it under /work/tools/cpu-quiet):

    python bench/budget_startup.py --before REV [--dataset magic --time-budget 45 --repeats 2]

REV's nasforge package (`git archive`) and this checkout's are run in turn as the same command,
`python -m nasforge search --data TABLE --time-budget S --workers 2`, each in a fresh store. Recorded per run:
the command's wall seconds (from its own start: interpreter and imports included) and its overrun past S,
the complete trials, each worker's start-up (seconds before its first trial could train: `startup_time`) and
its first trial's own duration (which, before the start-up work, included the first optimizer's torch._dynamo
import), and the exit code. A last pair runs a budget too short for any trial (`--short`, default 3 s): its exit
code and the last line it printed. Results: bench/results/budget_startup.{csv,md} (rewritten).
"""

from __future__ import annotations

import argparse
import csv
import datetime
import os
import platform
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data" / "tabular"
OUT = ROOT / "bench" / "results"
FIELDS = ["variant", "rev", "dataset", "budget_s", "wall_s", "overrun_s", "exit", "trials", "startup_s",
          "first_trial_s", "last_line"]


def snapshot(rev: str, into: Path) -> str:
    """REV's nasforge package unpacked under `into`; REV's short hash."""
    sha = subprocess.run(["git", "rev-parse", "--short", rev], cwd=ROOT, check=True, capture_output=True,
                         text=True).stdout.strip()
    archive = subprocess.run(["git", "archive", rev, "nasforge"], cwd=ROOT, check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return sha


def one_run(package_root: Path, table: Path, budget: float, workdir: Path) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(package_root), "PYTHONDONTWRITEBYTECODE": "1"}
    db = workdir / "bench.db"
    command = [sys.executable, "-m", "nasforge", "search", "--data", str(table), "--label", "target",
               "--time-budget", f"{budget:g}", "--workers", "2", "--no-progress", "--study", "b",
               "--storage", f"sqlite:///{db}", "--root", str(workdir / "art")]
    start = time.perf_counter()
    done = subprocess.run(command, cwd=workdir, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    lines = [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]
    row: dict[str, Any] = {"budget_s": budget, "wall_s": round(wall, 1), "overrun_s": round(wall - budget, 1),
                           "exit": done.returncode, "last_line": (done.stderr.strip().splitlines() or [""])[-1][:160],
                           "trials": 0, "startup_s": "", "first_trial_s": ""}
    if lines and db.is_file():
        import json

        with sqlite3.connect(db) as conn:
            found = conn.execute("SELECT state, metrics, duration FROM trials ORDER BY number").fetchall()
        complete = [(json.loads(m or "{}"), d) for s, m, d in found if s == "complete"]
        row["trials"] = len(complete)
        firsts = [(m["startup_time"], d) for m, d in complete if "startup_time" in m]
        if firsts:
            row["startup_s"] = " / ".join(f"{s:.1f}" for s, _ in firsts)
            row["first_trial_s"] = " / ".join(f"{d:.1f}" for _, d in firsts if d is not None)
    return row


def write(rows: list[dict[str, Any]], command: str) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    with open(OUT / "budget_startup.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=FIELDS)
        writer.writeheader()
        writer.writerows({k: r.get(k, "") for k in FIELDS} for r in rows)
    import torch

    lines = ["# `search --time-budget`: wall time and worker start-up, before and after (one run)", "",
             f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
             f"torch {torch.__version__}. Date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M UTC}.",
             f"Command: `{command}` (see the script's docstring for what each column is).", "",
             "| variant | rev | dataset | budget s | wall s | overrun s | exit | trials | worker start-up s | "
             "first trial s | last line |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append("| " + " | ".join(str(r.get(k, "")).replace("|", "/") for k in FIELDS) + " |")
    (OUT / "budget_startup.md").write_text("\n".join(lines) + "\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--before", required=True, help="the git revision to compare against (e.g. main)")
    parser.add_argument("--dataset", default="magic")
    parser.add_argument("--time-budget", type=float, default=45.0)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--short", type=float, default=3.0, help="a budget too short for any trial (0: skip)")
    args = parser.parse_args()
    table = SHARED / f"{args.dataset}.tsv.gz"
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        before_root = Path(tmp) / "before"
        before_root.mkdir()
        before_sha = snapshot(args.before, before_root)
        after_sha = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, check=True,
                                   capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "nasforge"], cwd=ROOT, capture_output=True,
                               text=True).stdout.strip()
        variants = {"before": (before_root, before_sha), "after": (ROOT, after_sha + ("+wip" if dirty else ""))}
        order = [("before", "after") if i % 2 == 0 else ("after", "before") for i in range(args.repeats)]
        plan = [(name, args.time_budget) for pair in order for name in pair]
        if args.short > 0:
            plan += [("before", args.short), ("after", args.short)]
        for i, (name, budget) in enumerate(plan):
            root, sha = variants[name]
            workdir = Path(tmp) / f"run{i}"
            workdir.mkdir()
            row = {"variant": name, "rev": sha, "dataset": args.dataset, **one_run(root, table, budget, workdir)}
            print(row, flush=True)
            rows.append(row)
    write(rows, "python bench/budget_startup.py " + " ".join(sys.argv[1:]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
