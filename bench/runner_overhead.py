"""Wall time of 1,000 table trials through the full runner and SQLite store (in-process backend).

Usage: python bench/runner_overhead.py [--trials 1000] [--strategies random,evolution,...]
       [--bananas-trials 300] [--before DIR]
Writes bench/results/runner_overhead.md and .csv. The table lookup itself is a dict access, so
what is measured is the machinery: ask, key, store the trial, run it, store the result, tell,
save the strategy state (and answer duplicate proposals from the store), plus each strategy's own
work. `bananas` runs `--bananas-trials` (its goal: 300 queries within a minute). `--before DIR`
first runs the same strategies with the nasforge package of another checkout (e.g. a worktree of
the previous main), in a subprocess in the same call, so before and after share one machine state.
"""

from __future__ import annotations

import argparse
import csv
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
TABLE = ROOT.parent / "shared" / "data" / "nasbench201" / "nb201_12epoch.csv"
OUT = ROOT / "bench" / "results"
STRATEGIES = "random,evolution,local,model_search,nsga2,qlearning,reinforce,bananas"


def measure(strategies: list[str], trials: int, bananas_trials: int, table: str) -> list[dict[str, Any]]:
    from nasforge.evaluators.table import load_table
    from nasforge.execution.local import InProcessBackend
    from nasforge.launch import build_config
    from nasforge.runner import Runner
    from nasforge.storage.sql import Store

    load_table(table, "cifar10")  # read the CSV once, outside the timing, as a worker would
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for strategy in strategies:
            asked = bananas_trials if strategy == "bananas" else trials
            config = build_config(space="nb201", strategy=strategy, evaluator="table", table=table,
                                  dataset="cifar10", trials=asked, workers=1, study=f"overhead-{strategy}",
                                  storage=f"sqlite:///{tmp}/overhead.db", progress=False)
            store = Store(config.storage)
            wall, cpu = time.perf_counter(), time.process_time()
            summary = Runner(config, store, InProcessBackend()).run()
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            rows.append({"strategy": strategy, "asked": asked, "trials": summary.complete,
                         "duplicates": summary.reused, "wall_s": round(wall, 2), "cpu_s": round(cpu, 2),
                         "ms_per_trial": round(1000 * wall / max(1, summary.complete), 2)})
            print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--trials", type=int, default=1000)
    parser.add_argument("--bananas-trials", type=int, default=300)
    parser.add_argument("--strategies", default=STRATEGIES)
    parser.add_argument("--table", default=str(TABLE))
    parser.add_argument("--before", help="a checkout whose nasforge gives the 'before' rows")
    parser.add_argument("--rows-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    strategies = args.strategies.split(",")
    if not args.rows_only:  # the 'after' rows time this checkout's nasforge, not whichever is installed
        sys.path.insert(0, str(ROOT))
    if args.rows_only:
        print(json.dumps(measure(strategies, args.trials, args.bananas_trials, args.table)))
        return 0
    rows = []
    if args.before:
        env = {**os.environ, "PYTHONPATH": str(Path(args.before).resolve())}
        command = [sys.executable, __file__, "--rows-only", "--trials", str(args.trials), "--bananas-trials",
                   str(args.bananas_trials), "--strategies", args.strategies, "--table", args.table]
        done = subprocess.run(command, env=env, stdout=subprocess.PIPE, text=True, check=True)
        rev = subprocess.run(["git", "-C", args.before, "rev-parse", "--short", "HEAD"], stdout=subprocess.PIPE,
                             text=True).stdout.strip()
        rows += [{"code": f"before ({rev})", **r} for r in json.loads(done.stdout)]
    rev = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], stdout=subprocess.PIPE,
                         text=True).stdout.strip()
    rows += [{"code": f"after ({rev})", **r} for r in measure(strategies, args.trials, args.bananas_trials, args.table)]
    OUT.mkdir(parents=True, exist_ok=True)
    with open(OUT / "runner_overhead.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    import torch

    command = " ".join(["python", "bench/runner_overhead.py", *sys.argv[1:]])
    lines = ["# Runner overhead: table trials through the full runner and SQLite store", "",
             f"Command: `/work/tools/cpu-quiet {command}` (both rows in one call, same machine state)", "",
             f"Date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC. Machine: "
             f"{platform.machine()}, 2-core CI-class VM, Python {platform.python_version()}, torch "
             f"{torch.__version__}. Space `nb201` on `nb201_12epoch.csv` (cifar10), one in-process worker.", "",
             f"Target: {args.trials} trials in at most 10 s wall for every strategy; `bananas`: "
             f"{args.bananas_trials} queries within a minute (issue 19).", "",
             "| code | strategy | trials asked | trials made | duplicate proposals answered from the store "
             "| wall s | CPU s | ms/trial |",
             "|---|---|---|---|---|---|---|---|"]
    lines += [f"| {r['code']} | {r['strategy']} | {r['asked']} | {r['trials']} | {r['duplicates']} | {r['wall_s']} | "
              f"{r['cpu_s']} | {r['ms_per_trial']} |" for r in rows]
    lines += ["", "The machinery's cost is the `random` row: its strategy costs nothing, so its time is the ask, key,",
              "store, lookup, tell and state-save loop. Other rows add the strategy's own work. What changed",
              "(docs/strategies.md):",
              "- in af59627, already in both codes above: `qlearning` replayed `replay` (300) remembered networks",
              "  after every episode, and a converged policy draws thousands of known networks (each an episode);",
              "  now a newly trained network replays the memory and a looked-up one gets one Q update of its own",
              "  walk. `reinforce`: once its `resample` redraws find nothing new, it draws from its policy among the",
              "  architectures not proposed yet. `bananas` runs the GP's 27-point grid search every `hyper_every`",
              "  (10) results instead of on every result. The code before af59627 measured `qlearning` 27.85 s and",
              "  `reinforce` 311 trials (11.63 s) for 1,000 asked, on the same kind of machine.",
              "- between the two codes above: `model_search` and `nsga2` added a repeat's stored result to their",
              "  beam / population again, which filled with copies of a few architectures until every child was a",
              "  repeat; now an architecture takes one place however often it is told, and a child proposed before",
              "  is redrawn (`retries`), then a random architecture not proposed yet is tried.",
              "- `qlearning` (after the `before` code): its saved state listed every episode as [tokens, known, new]",
              "  (about 19,800 episodes here, most of them repeats, saved twice per trial); now the memory is one",
              "  base64 string of varints built as episodes come (a repeat is a result index), the old format still",
              "  loads, and a replay looks each network's percentile reward up once per new score instead of once",
              "  per update. Proposals, Q values and rewards are unchanged (same proposals for the same seed).",
              "A row whose trials made is below trials asked stopped on 2,000 duplicate proposals in a row."]
    (OUT / "runner_overhead.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
