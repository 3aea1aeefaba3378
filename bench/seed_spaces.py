"""Each seed paper's space searched on real data with the strategy its paper used, through the CLI.

    python bench/seed_spaces.py                      # all four; writes bench/results/seed_spaces.{md,csv}
    python bench/seed_spaces.py --only rnn_cell      # one of: chain_cnn, metaqnn, nasnet, rnn_cell

| space | paper | strategy | data |
|---|---|---|---|
| chain_cnn | NAS-RL (Zoph & Le) | reinforce | Fashion-MNIST |
| metaqnn | MetaQNN (Baker et al.) | qlearning | Fashion-MNIST |
| nasnet | NASNet (Zoph et al.) | reinforce | CIFAR-10 subset |
| rnn_cell | ENAS / DARTS recurrent cell | reinforce | Penn Treebank |

Budgets are CPU-sized (a few hundred steps or a tenth of PTB per trial): these runs show each space
searched end to end on real data, not the papers' accuracies. For `rnn_cell`, an LSTM language model
of the same embedding and hidden size is trained with the study's own evaluator configuration (same
data, steps and optimizer) and its validation perplexity is set beside the searched cells'.
Each search is a `nasforge search` subprocess, read back with `nasforge trials --format json`.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
OUT = ROOT / "bench" / "results"
sys.path.insert(0, str(ROOT / "bench"))

from cli_runs import now, num, run_logged, work_storage, write_csv  # noqa: E402


@dataclass
class Experiment:
    name: str
    paper: str
    data: str
    flags: list[str]
    objective: str = "valid_accuracy"
    notes: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def experiments(trials: int) -> list[Experiment]:
    fm = str(DATA / "fashion_mnist")
    cifar = str(DATA / "cifar10_small" / "cifar10_jpeg_q75_small_5k_1k.npz")
    ptb = str(DATA / "ptb")
    common = ["--trials", str(trials), "--workers", "2", "--retries", "0"]
    return [
        Experiment("chain_cnn", "NAS-RL", fm,
                   [*common, "--space", "chain_cnn", "--strategy", "reinforce", "--steps", "100",
                    "--valid-fraction", "0.05", "--space-option", "num_layers=5",
                    "--strategy-option", "batch_size=2"],
                   notes="5 layers, 100 steps of 128 images per trial; the controller updates after every 2 results"),
        Experiment("metaqnn", "MetaQNN", fm,
                   [*common, "--space", "metaqnn", "--strategy", "qlearning", "--steps", "150",
                    "--valid-fraction", "0.05", "--space-option", "image_size=28",
                    "--space-option", "conv_filters=[32,64,128]", "--space-option", "fc_units=[256,128]",
                    "--space-option", "max_layers=6"],
                   notes="filters and FC units scaled down for a CPU, 150 steps per trial"),
        Experiment("nasnet", "NASNet", cifar,
                   [*common, "--space", "nasnet", "--strategy", "reinforce", "--steps", "80",
                    "--space-option", "cells_per_stage=1", "--space-option", "channels=12",
                    "--strategy-option", "batch_size=2"],
                   notes="B = 5 blocks, 1 normal cell per stage, 12 channels, 80 steps per trial"),
        Experiment("rnn_cell", "ENAS / DARTS cell", ptb,
                   [*common, "--space", "rnn_cell", "--strategy", "reinforce", "--epochs", "2",
                    "--batch-size", "32", "--evaluator-option", "data_fraction=0.1",
                    "--evaluator-option", "optimizer=sgd", "--evaluator-option", "lr=20",
                    "--evaluator-option", "momentum=0", "--space-option", "num_nodes=8",
                    "--strategy-option", "batch_size=2"],
                   objective="valid_perplexity",
                   notes="8-node DAG cell, embedding = hidden = 64; 2 epochs over the first 10% of the PTB "
                         "training stream, SGD lr 20 (the papers' setting), bptt 35"),
    ]


def lstm_baseline(study: str, storage: str) -> dict[str, float]:
    """The study's own evaluator config, applied to an LSTM language model of the space's sizes."""
    import torch

    from nasforge.api import Study
    from nasforge.core.types import Architecture, TrialSpec
    from nasforge.evaluators.train import TrainEvaluator
    from nasforge.models.rnn import LanguageModel, LSTMCell

    config = Study(study, storage).info.config
    space_config = dict(config.get("space_config") or {})
    embed, hidden = int(space_config.get("embedding_size", 64)), int(space_config.get("hidden_size", 64))
    tie = bool(space_config.get("tie_weights", True))
    dropout = float(space_config.get("dropout", 0.0))

    class LSTMSpace:
        name = "lstm_baseline"

        def build(self, arch: Architecture, spec: Any) -> torch.nn.Module:
            return LanguageModel(LSTMCell(embed, hidden), spec.num_outputs, embed, tie, dropout)

    class Quiet:
        def report(self, step: int, metrics: dict[str, float]) -> None:
            return None

    evaluator = TrainEvaluator(**{**config["evaluator_config"], "save_weights": False})
    spec = TrialSpec(study="bench", number=0, arch={}, seed=0, space="lstm_baseline", space_config={},
                     evaluator="train", evaluator_config={}, budget={}, objective="valid_perplexity",
                     direction="minimize", workdir=None)
    result = evaluator.evaluate(Architecture("lstm_baseline", ()), spec, Quiet(), space=LSTMSpace())
    if result.error:
        raise SystemExit(f"LSTM baseline failed: {result.error}")
    return {**result.metrics, "params": float(result.params or 0)}


def summarise(exp: Experiment, trials: list[dict[str, Any]], wall: float) -> dict[str, Any]:
    done = [t for t in trials if t["state"] == "complete" and t.get(exp.objective) is not None]
    minimize = exp.objective.endswith("perplexity")
    values = [float(t[exp.objective]) for t in done]
    best = (min if minimize else max)(done, key=lambda t: float(t[exp.objective]))
    test_key = exp.objective.replace("valid_", "test_")
    return {"space": exp.name, "paper": exp.paper, "strategy": _flag(exp.flags, "--strategy"),
            "trials_complete": len(done), "trials_other": len(trials) - len(done), "objective": exp.objective,
            "best_trial": best["trial"], "best_valid": best[exp.objective], "best_test": best.get(test_key),
            "median_valid": statistics.median(values), "worst_valid": (max if minimize else min)(values),
            "best_params": best["params"], "best_arch": best["architecture"], "search_wall_s": round(wall, 1)}


def _flag(flags: list[str], name: str) -> str:
    return flags[flags.index(name) + 1]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--only", help="comma-separated experiment names")
    p.add_argument("--trials", type=int, default=10)
    p.add_argument("--work", default="/tmp/nasforge_seed_spaces")
    p.add_argument("--out", default=str(OUT / "seed_spaces"))
    args = p.parse_args()
    work, storage = work_storage(args.work)
    chosen = experiments(args.trials)
    if args.only:
        names = set(args.only.split(","))
        unknown = names - {e.name for e in chosen}
        if unknown:
            raise SystemExit(f"unknown experiment(s): {', '.join(sorted(unknown))}")
        chosen = [e for e in chosen if e.name in names]

    rows, commands, baselines = [], [], {}
    for exp in chosen:
        study = f"seed-{exp.name}-{datetime.now(timezone.utc):%Y%m%d%H%M%S}"
        cmd = ["nasforge", "search", "--data", exp.data, *exp.flags, "--study", study, "--storage", storage,
               "--no-progress"]
        wall = run_logged(cmd, work / f"{exp.name}.log")
        listing = subprocess.run(["nasforge", "trials", "--study", study, "--storage", storage, "--format", "json"],
                                 check=True, capture_output=True, text=True).stdout
        rows.append(summarise(exp, json.loads(listing), wall))
        commands.append((exp, " ".join(cmd)))
        if exp.name == "rnn_cell":
            baselines[exp.name] = lstm_baseline(study, storage)
        print(json.dumps(rows[-1]), flush=True)
    write(rows, commands, baselines, Path(args.out))


def write(rows: list[dict[str, Any]], commands: list[tuple[Experiment, str]], baselines: dict[str, dict[str, float]],
          out: Path) -> None:
    write_csv(rows, out.with_suffix(".csv"))
    lines = ["# Seed spaces searched on real data with their papers' strategies", "",
             f"- machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, no GPU, "
             f"Python {platform.python_version()}; finished {now()}",
             "- command: `" + " ".join(["python", "bench/seed_spaces.py", *sys.argv[1:]]) + "`",
             "- CPU-sized budgets: these show each space searched end to end, not the papers' accuracies.", "",
             "| space | paper | strategy | trials | best valid | median valid | worst valid | best test | params | "
             "search time |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['space']} | {r['paper']} | {r['strategy']} | {r['trials_complete']} "
                     f"(+{r['trials_other']} failed) | {num(r['best_valid'])} | {num(r['median_valid'])} | "
                     f"{num(r['worst_valid'])} | {num(r['best_test'])} | {r['best_params']} | "
                     f"{r['search_wall_s'] / 60:.1f} min |")
    lines.append("")
    lines.append("Accuracies for image spaces, perplexities (lower is better) for `rnn_cell`.")
    for name, base in baselines.items():
        row = next(r for r in rows if r["space"] == name)
        lines += ["", f"## {name}: searched cells against an LSTM of the same size and budget", "",
                  "| model | params | valid perplexity | test perplexity |", "|---|---|---|---|",
                  f"| best searched cell (trial {row['best_trial']}) | {row['best_params']} | "
                  f"{num(row['best_valid'])} | {num(row['best_test'])} |",
                  f"| median searched cell | | {num(row['median_valid'])} | |",
                  f"| LSTM (same embedding, hidden size, data, steps, optimizer) | {int(base['params'])} | "
                  f"{num(base.get('valid_perplexity'))} | {num(base.get('test_perplexity'))} |"]
    lines += ["", "## Commands and best architectures", ""]
    for (exp, cmd), r in zip(commands, rows):
        lines += [f"- **{exp.name}** ({exp.notes}):", "", f"  ```\n  {cmd}\n  ```", "",
                  f"  best: `{r['best_arch']}`", ""]
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
