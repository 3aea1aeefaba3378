"""MetaQNN's layer states against prefix states: which Q-learner finds good networks sooner?

    python bench/metaqnn_states.py     # 10 seeds x 150 trials; writes bench/results/metaqnn_states.{md,csv}
    python bench/metaqnn_states.py --seeds 2 --trials 40 --out /tmp/quick

Both learners are `qlearning` on the `metaqnn` space with the same seed, options and epsilon schedule;
only `states` differs: "space" keys the Q-table by the paper's layer state (layer, depth, size, FC count),
"prefix" by the whole token prefix (a tree search, nothing shared between networks). Each network is
trained for real on the scikit-learn digits as 8x8 images; results are cached by architecture key in
`--cache` (a CSV), so a network met by both learners or by two seeds is trained once, and both learners
see exactly the same accuracy for it. The first quarter of each run is pure exploration (epsilon 1.0),
identical for both learners under one seed; the difference shows in the exploitation phases after it.
"""

from __future__ import annotations

import argparse
import csv
import os
import platform
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "results"

SPACE_OPTIONS: dict[str, Any] = {"image_size": 8, "max_layers": 6, "max_fc": 1, "conv_filters": [8, 16, 32],
                                 "fc_units": [32, 64], "fc_max_size": 4}
GOOD = 0.98  # "a good network" on digits: the best reach 0.997, the median about 0.9
EVALUATOR_OPTIONS: dict[str, Any] = {"epochs": 6, "batch_size": 64, "patience": None, "save_weights": False}


class Scores:
    """Validation accuracy per architecture key, trained once and kept in a CSV between runs."""

    def __init__(self, path: Path) -> None:
        from nasforge.data.loader import data_config
        from nasforge.evaluators.train import TrainEvaluator

        self.path = path
        self.scores: dict[str, float] = {}
        self.trained = 0
        self.train_seconds = 0.0
        if path.exists():
            with path.open() as f:
                for row in csv.DictReader(f):
                    self.scores[row["key"]] = float(row["valid_accuracy"])
        self.evaluator = TrainEvaluator(data=data_config("builtin:digits", as_images=True), **EVALUATOR_OPTIONS)

    def __call__(self, space: Any, arch: Any) -> float:
        from nasforge.core.types import TrialSpec
        from nasforge.execution.worker import _NullReporter

        key = space.key(arch)
        if key not in self.scores:
            spec = TrialSpec(study="bench", number=0, arch=space.to_json(arch), seed=0, space="metaqnn",
                             space_config=SPACE_OPTIONS, evaluator="train", evaluator_config={}, budget={},
                             objective="valid_accuracy", direction="maximize", workdir=None)
            start = time.perf_counter()
            result = self.evaluator.evaluate(arch, spec, _NullReporter(), space=space)
            self.train_seconds += time.perf_counter() - start
            self.trained += 1
            score = float(result.metrics.get("valid_accuracy", 0.0)) if result.error is None else 0.0
            self.scores[key] = score
            new = not self.path.exists()
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", newline="") as f:
                writer = csv.writer(f)
                if new:
                    writer.writerow(["key", "valid_accuracy"])
                writer.writerow([key, f"{score:.6f}"])
        return self.scores[key]


def run(states: str, seed: int, trials: int, scores: Scores) -> list[dict[str, Any]]:
    from nasforge.core.types import Result, TrialState
    from nasforge.spaces.metaqnn import MetaQNNSpace
    from nasforge.strategies.qlearning import QLearning

    space = MetaQNNSpace(**SPACE_OPTIONS)
    strategy = QLearning(space, seed=seed, max_trials=trials, states=states)
    rows, best = [], 0.0
    for trial in range(trials):
        epsilon = strategy.epsilon()
        proposal = strategy.ask(1)[0]
        score = scores(space, proposal.arch)
        strategy.tell(proposal, Result(TrialState.COMPLETE, score=score))
        best = max(best, score)
        rows.append({"states": states, "seed": seed, "trial": trial, "epsilon": epsilon, "key": proposal.key,
                     "valid_accuracy": round(score, 6), "best_so_far": round(best, 6),
                     "q_states": len(strategy.q)})
    return rows


def summary(rows: list[dict[str, Any]], trials: int) -> list[str]:
    by = {s: [r for r in rows if r["states"] == s] for s in ("space", "prefix")}
    seeds = sorted({r["seed"] for r in rows})
    explore = [r for r in by["space"] if r["epsilon"] == 1.0]
    lines = ["| measure | layer states (`states=space`) | prefix states (`states=prefix`) | difference |",
             "|---|---|---|---|"]

    def row(label: str, pick: Any, ahead: bool = True, digits: int = 4) -> None:
        pairs = [(pick([r for r in by["space"] if r["seed"] == s]), pick([r for r in by["prefix"] if r["seed"] == s]))
                 for s in seeds]
        pairs = [(x, y) for x, y in pairs if x == x and y == y]  # a phase a seed never reached is left out
        if not pairs:
            lines.append(f"| {label} | not reached | not reached | |")
            return
        a, b = [x for x, _ in pairs], [y for _, y in pairs]
        diff = [x - y for x, y in pairs]
        wins = sum(d > 0 for d in diff)
        ties = sum(d == 0 for d in diff)
        if not ahead:  # a count, not a score: no winner
            lines.append(f"| {label} | {statistics.mean(a):.1f} | {statistics.mean(b):.1f} | "
                         f"{statistics.mean(diff):+.1f} |")
            return
        lines.append(f"| {label} | {statistics.mean(a):.{digits}f} | {statistics.mean(b):.{digits}f} | "
                     f"{statistics.mean(diff):+.{digits}f} (layer states ahead in {wins} of {len(pairs)} seeds"
                     f"{f', {ties} ties' if ties else ''}) |")

    def mean_acc(eps_lo: float, eps_hi: float) -> Any:
        def pick(rs: list[dict[str, Any]]) -> float:
            values = [r["valid_accuracy"] for r in rs if eps_lo - 1e-9 <= r["epsilon"] <= eps_hi + 1e-9]
            return statistics.mean(values) if values else float("nan")

        return pick

    row("mean accuracy, exploration (epsilon 1.0)", mean_acc(1.0, 1.0))
    row("mean accuracy, epsilon 0.9-0.6", mean_acc(0.6, 0.9))
    row("mean accuracy, epsilon 0.5-0.1", mean_acc(0.1, 0.5))
    row("mean accuracy, epsilon 0.1 (the last phase)", mean_acc(0.1, 0.1))
    for q in (0.5, 0.75, 1.0):
        n = max(1, round(q * trials))
        row(f"best so far after {n} trials", lambda rs, n=n: rs[n - 1]["best_so_far"])
    row(f"distinct networks found at >= {GOOD} valid accuracy", lambda rs: float(len(
        {r["key"] for r in rs if r["valid_accuracy"] >= GOOD})), digits=1)
    row("distinct networks trained", lambda rs: float(len({r["key"] for r in rs})), ahead=False)
    row("Q-table states", lambda rs: float(rs[-1]["q_states"]), ahead=False)
    if explore:
        lines.append("")
        lines.append(f"The exploration phase (first {len(explore) // len(seeds)} trials) samples the same networks "
                     "for both learners under one seed, so its row differs only by chance repeats; the learners part "
                     "ways at epsilon 0.9. Epsilon moves on with each new network trained (a repeat is looked up, "
                     "as in the paper), so a learner that repeats itself may not reach the 0.1 phase in the budget.")
    return lines


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", type=int, default=10)
    p.add_argument("--trials", type=int, default=150)
    p.add_argument("--cache", default=str(OUT / "metaqnn_states_scores.csv"))
    p.add_argument("--out", default=str(OUT / "metaqnn_states"))
    p.add_argument("--note", action="append", default=[], help="a line added to the report (e.g. the cost of "
                   "the run that filled the cache)")
    args = p.parse_args()
    import torch

    torch.set_num_threads(1)
    scores = Scores(Path(args.cache))
    rows: list[dict[str, Any]] = []
    start = time.perf_counter()
    for seed in range(args.seeds):
        for states in ("space", "prefix"):
            rows += run(states, seed, args.trials, scores)
            last = rows[-args.trials:]
            print(f"seed {seed} {states}: mean acc {statistics.mean(r['valid_accuracy'] for r in last):.4f}, "
                  f"best {last[-1]['best_so_far']:.4f}, trained so far {scores.trained}", flush=True)
    wall = time.perf_counter() - start
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.with_suffix(".csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    lines = ["# MetaQNN: layer states against prefix states", "",
             f"- machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, no GPU, one torch "
             f"thread, Python {platform.python_version()}; finished "
             f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC",
             "- command: `" + " ".join(["python", "bench/metaqnn_states.py", *sys.argv[1:]]) + "`",
             f"- {args.seeds} seeds x {args.trials} trials per learner; `metaqnn` space options {SPACE_OPTIONS}; "
             f"each network trained on scikit-learn digits as 8x8 images with {EVALUATOR_OPTIONS}",
             f"- {len(scores.scores)} distinct networks in the score cache ({scores.trained} trained in this run, "
             f"{scores.train_seconds:.0f} s of training; whole run {wall:.0f} s)",
             "- per-trial rows: `" + out.with_suffix(".csv").name + "`; scores by architecture key: `"
             + Path(args.cache).name + "`", "",
             *[f"- {note}" for note in args.note], "",
             *summary(rows, args.trials), ""]
    out.with_suffix(".md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
