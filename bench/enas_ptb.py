"""ENAS on Penn Treebank (`rnn_cell`): the controller's reward over the search, the retrained cell against an LSTM.

    python bench/enas_ptb.py                    # writes bench/results/enas_ptb.{md,csv}

One `nasforge search --strategy enas` run: its search phase (shared weights and controller trained
in alternation) is stored as a `oneshot` trial whose curve holds the controller's mean validation
reward (80 / perplexity) per epoch; the derived cell is retrained by the study's evaluator. An LSTM
language model with the same embedding and hidden size is then trained with that same evaluator
configuration (data, steps, optimizer) for the comparison. CPU-sized: a tenth of PTB per retraining.
"""

from __future__ import annotations

import argparse
import csv
import os
import platform
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
OUT = ROOT / "bench" / "results"
sys.path.insert(0, str(ROOT / "bench"))

from cli_runs import now, num, run_logged, work_storage  # noqa: E402
from seed_spaces import lstm_baseline  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=str(DATA / "ptb"))
    p.add_argument("--search-epochs", type=int, default=8)
    p.add_argument("--train-steps", type=int, default=100, help="shared-weight steps per search epoch")
    p.add_argument("--controller-steps", type=int, default=50, help="REINFORCE steps per search epoch")
    p.add_argument("--epochs", type=int, default=2, help="epochs of the retraining (and of the LSTM)")
    p.add_argument("--data-fraction", type=float, default=0.1, help="share of the PTB stream retraining sees")
    p.add_argument("--work", default="/tmp/nasforge_enas_ptb")
    p.add_argument("--out", default=str(OUT / "enas_ptb"))
    args = p.parse_args()
    work, storage = work_storage(args.work)
    study = f"enas-ptb-{datetime.now(timezone.utc):%Y%m%d%H%M%S}"
    cmd = ["nasforge", "search", "--data", args.data, "--space", "rnn_cell", "--strategy", "enas",
           "--strategy-option", f"epochs={args.search_epochs}", "--strategy-option", f"train_steps={args.train_steps}",
           "--strategy-option", f"controller_steps={args.controller_steps}", "--epochs", str(args.epochs),
           "--batch-size", "32", "--evaluator-option", f"data_fraction={args.data_fraction}",
           "--evaluator-option", "optimizer=sgd", "--evaluator-option", "lr=20", "--evaluator-option", "momentum=0",
           "--study", study, "--storage", storage, "--no-progress"]
    wall = run_logged(cmd, work / "enas.log")

    from nasforge.api import Study

    s = Study(study, storage)
    searched = next(t for t in s.trials if (t.info or {}).get("kind") == "oneshot")
    retrained = next(t for t in s.trials if (t.info or {}).get("kind") == "retrain")
    curve = _curve(s.store.intermediate(s.info.id, searched.number))
    base = lstm_baseline(study, storage)
    write(args, cmd, wall, curve, searched, retrained, base, s.space.summary(s.space.from_json(retrained.arch)))


def _curve(points: list[tuple[int, str, float]]) -> list[dict[str, float]]:
    rows: dict[int, dict[str, float]] = {}
    for step, name, value in points:
        rows.setdefault(step, {"epoch": float(step)})[name] = value
    return [rows[k] for k in sorted(rows)]


def write(args: argparse.Namespace, cmd: list[str], wall: float, curve: list[dict[str, float]], searched: Any,
          retrained: Any, base: dict[str, float], cell: str) -> None:
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    names = ["epoch", "valid_reward", "controller_entropy", "train_loss", "valid_perplexity"]
    with open(out.with_suffix(".csv"), "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=names, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(curve)
    rewards = [row.get("valid_reward") for row in curve]
    first, last = rewards[0], rewards[-1]
    m = searched.metrics
    lines = ["# ENAS on Penn Treebank (rnn_cell)", "",
             f"- machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, no GPU, "
             f"Python {platform.python_version()}; finished {now()}",
             "- command: `" + " ".join(["python", "bench/enas_ptb.py", *sys.argv[1:]]) + "`, which ran:", "",
             "```", " ".join(cmd), "```", "",
             f"Search phase: {args.search_epochs} epochs of {args.train_steps} shared-weight steps (one sampled cell "
             f"per batch, M = 1) and {args.controller_steps} REINFORCE steps on validation batches; "
             f"{m.get('search_seconds', 0.0):.0f} s, peak {m.get('peak_memory_mb', 0.0):.0f} MB (process). "
             f"Whole command {wall / 60:.1f} min.", "",
             "| epoch | controller's mean validation reward (80 / ppl) | controller entropy | shared-weight train loss "
             "| validation perplexity (shared weights) |", "|---|---|---|---|---|"]
    for row in curve:
        lines.append(f"| {int(row['epoch'])} | {num(row.get('valid_reward'))} | {num(row.get('controller_entropy'))} "
                     f"| {num(row.get('train_loss'))} | {num(row.get('valid_perplexity'))} |")
    verdict = "rose" if first is not None and last is not None and last > first else "did not rise"
    lines += ["", f"The reward {verdict} over the search: {num(first)} in epoch 1, {num(last)} in epoch "
                  f"{len(curve)} (best {num(max(r for r in rewards if r is not None))}).", "",
              f"Derived cell: `{cell}`", "",
              "| model (retrained from scratch, same evaluator config) | params | valid perplexity | test perplexity |",
              "|---|---|---|---|",
              f"| ENAS cell (trial {retrained.number}) | {retrained.params} | "
              f"{num(retrained.metrics.get('valid_perplexity'))} | {num(retrained.metrics.get('test_perplexity'))} |",
              f"| LSTM, same embedding and hidden size | {int(base['params'])} | {num(base.get('valid_perplexity'))} "
              f"| {num(base.get('test_perplexity'))} |", "",
              f"Retraining: {args.epochs} epochs over the first {args.data_fraction:g} of the PTB training stream, "
              "SGD lr 20, batch 32, bptt 35: CPU-sized, far from the paper's perplexities."]
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
