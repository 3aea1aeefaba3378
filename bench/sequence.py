"""LSTM, Transformer or both? The `sequence` space searched by model_search on the four shared UCR/UEA sets,
against a hand-written LSTM and a hand-written Transformer encoder given the same total epochs.

Usage: python bench/sequence.py [--datasets GunPoint,ItalyPowerDemand,BasicMotions,JapaneseVowels]
       [--search-budget 150] [--epochs 30] [--batch-size 16] [--patience 10] [--workers 2] [--baseline-budget S]
Per set: model_search under --search-budget seconds, ending with its final ensemble (kept only when it ranks
above the best trial on validation: accuracy, ties to the lower validation loss). The searched model is then
fixed by that rule alone: the ensemble's members (with its weights) or the best trial, each refit on train +
valid for its best epoch scaled by the larger data (nasforge.final.refit_epochs), and their probabilities
averaged; nothing looks at the refits' scores to choose. Each hand baseline is one fixed architecture given the
same total epochs (those the search trained plus the refits'), capped at --baseline-budget seconds, with the
same batch size, without early stopping (its best validation epoch is kept, as every trial's is).
Appends one row per method and set to bench/results/sequence.csv (a set's earlier rows are replaced) and
rewrites bench/results/sequence.md from it, so each set can run as its own call. Test accuracy is on the
set's own _TEST.ts file, which the search never sees (it selects on a stratified 20% of _TRAIN).
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
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data" / "sequence"
OUT = ROOT / "bench" / "results"
DATASETS = ("GunPoint", "ItalyPowerDemand", "BasicMotions", "JapaneseVowels")
PUBLISHED = {"GunPoint": 1.00, "ItalyPowerDemand": 0.97, "BasicMotions": 1.00, "JapaneseVowels": 0.99}
# the hand-written baselines: one fixed architecture each (the space pinned to it)
BASELINES = {
    "hand LSTM (lstm_64, last step)": {"blocks": ["lstm_64"], "pooling": "last"},
    "hand Transformer (transformer_64_h4, sinusoidal, mean)": {"blocks": ["transformer_64_h4"], "pooling": "mean",
                                                               "positional": "sinusoidal"},
}
FIELDS = ("dataset", "method", "test_accuracy", "valid_accuracy", "published", "epochs_total", "wall_s",
          "blocks", "families", "machine", "command", "date")


def machine() -> str:
    import torch

    return (f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python "
            f"{platform.python_version()}, torch {torch.__version__}")


def _search(name: str, workdir: Path, study: str, **options: Any) -> tuple[Any, float]:
    import nasforge

    start = time.perf_counter()
    result = nasforge.search(str(SHARED / f"{name}_TRAIN.ts"), test_file=str(SHARED / f"{name}_TEST.ts"),
                             space="sequence", study=study, storage=f"sqlite:///{workdir / 'bench.db'}",
                             root=str(workdir), **options)
    return result, time.perf_counter() - start


def _epochs_trained(trials: list[Any]) -> int:
    return int(sum(float(t.metrics.get("epochs") or 0) for t in trials if t.state.value == "complete"))


def _valid_loss(trial: Any) -> float:
    from nasforge.core.ranking import valid_loss

    return valid_loss(trial)


def _families(trial: Any) -> set[str]:
    from nasforge.spaces.sequence import block_family

    return {block_family(b) for b in trial.arch["description"]["blocks"] if b != "identity"}


def _stack(trial: Any) -> str:
    return " > ".join(b for b in trial.arch["description"]["blocks"] if b != "identity")


def _refit_accuracy(study: Any, members: list[tuple[int, float]], name: str) -> tuple[float, list[Any], float]:
    """Refit each member on train + valid (its best epoch scaled by the larger data, nasforge.final.refit_epochs)
    and score the weighted average of their class probabilities on the set's _TEST.ts: (test accuracy, the
    refit trials, wall seconds). The members and weights are chosen before, on validation, never after."""
    import numpy as np

    from nasforge.data.sequence_files import read_ts

    start = time.perf_counter()
    refits = [study.train(number, refit=True) for number, _ in members]
    test = read_ts(SHARED / f"{name}_TEST.ts")
    weights = np.asarray([w for _, w in members], dtype=np.float64)
    probabilities = [study.predictor(r.number).predict_raw(test.cases) for r in refits]
    combined = np.average(probabilities, axis=0, weights=weights / weights.sum())
    classes = [str(c) for c in study.predictor(refits[0].number).class_names]
    predicted = np.asarray(classes, dtype=object)[combined.argmax(axis=1)]
    accuracy = float(np.mean(predicted == np.asarray([str(v) for v in test.labels], dtype=object)))
    single = [r.metrics.get("test_accuracy") for r in refits]
    if len(refits) == 1:
        assert single[0] is not None and abs(float(single[0]) - accuracy) < 1e-9, (single, accuracy)
    return accuracy, refits, time.perf_counter() - start


def run_one(name: str, args: argparse.Namespace, workdir: Path, common: dict[str, str]) -> list[dict[str, Any]]:
    """The search under its time budget (ending with its final ensemble), the refit of the study's model on
    train + valid, then each hand baseline given the same total epochs (and at most --baseline-budget seconds),
    all trained alike (batch, patience)."""
    from nasforge.core.ranking import best_key
    from nasforge.ensemble.members import kind_of

    training = {"batch_size": args.batch_size, "patience": args.patience, "seed": args.seed}
    study, search_wall = _search(name, workdir, f"search-{name}", strategy="model_search", epochs=args.epochs,
                                 workers=args.workers, time_budget=args.search_budget,
                                 final_ensemble=not args.no_ensemble, **training)
    ranked = sorted((t for t in study.trials if t.state.value == "complete" and t.score is not None
                     and kind_of(t) == "search"), key=best_key, reverse=True)
    best = ranked[0]
    chosen_by_study = study.best_trial  # the final ensemble when one was kept, else `best`
    assert chosen_by_study is not None
    families: Counter[str] = Counter()
    for t in ranked[:3]:  # which block types the three best stacks use
        families.update(_families(t))
    rows = [{"dataset": name, "method": f"sequence space, model_search ({len(ranked)} trials, best by valid)",
             "test_accuracy": best.metrics.get("test_accuracy"), "valid_accuracy": best.metrics.get("valid_accuracy"),
             "valid_loss": _valid_loss(best), "epochs_total": _epochs_trained(ranked),
             "wall_s": search_wall, "blocks": _stack(best),
             "families": " ".join(f"{f}:{n}" for f, n in sorted(families.items())), **common}]
    members: list[tuple[int, float]] = [(best.number, 1.0)]
    if kind_of(chosen_by_study) == "ensemble":
        info = chosen_by_study.info
        members = [(int(m), float(w)) for m, w in zip(info["members"], info.get("weights") or
                                                      [1.0] * len(info["members"]))]
        member_families: Counter[str] = Counter()
        for m, _ in members:
            member_families.update(_families(study.trial(m)))
        rows.append({"dataset": name, "method": f"final ensemble (greedy, {len(members)} of the best "
                     f"{len(info['pool'])} trials)",
                     "test_accuracy": chosen_by_study.metrics.get("test_accuracy"),
                     "valid_accuracy": chosen_by_study.metrics.get("valid_accuracy"),
                     "valid_loss": _valid_loss(chosen_by_study), "epochs_total": _epochs_trained(ranked),
                     "wall_s": search_wall, "blocks": " + ".join(f"({_stack(study.trial(m))})" for m, _ in members),
                     "families": " ".join(f"{f}:{n}" for f, n in sorted(member_families.items())), **common})
    accuracy, refits, refit_wall = _refit_accuracy(study, members, name)
    budget_epochs = _epochs_trained(ranked) + int(sum(float(r.metrics.get("epochs") or 0) for r in refits))
    what = "the final ensemble's members, same weights" if len(members) > 1 else "the best trial"
    refit_families: Counter[str] = Counter()
    for m, _ in members:
        refit_families.update(_families(study.trial(m)))
    rows.append({"dataset": name, "method": f"searched model (refit on train + valid: {what}, "
                 f"{'/'.join(str(int(r.metrics['epochs'])) for r in refits)} epochs)",
                 "test_accuracy": accuracy, "valid_accuracy": None, "epochs_total": budget_epochs,
                 "wall_s": search_wall + refit_wall,
                 "blocks": " + ".join(f"({_stack(study.trial(m))})" for m, _ in members) if len(members) > 1
                 else _stack(best),
                 "families": " ".join(f"{f}:{n}" for f, n in sorted(refit_families.items())), **common})
    no_stopping = {**training, "patience": budget_epochs}  # patience as long as the budget: no early stop
    for label, arch in BASELINES.items():
        fixed = {k: v for k, v in arch.items() if k != "blocks"}
        base, base_wall = _search(name, workdir, f"{label[:9]}-{name}".replace(" ", "-"), strategy="random",
                                  trials=1, epochs=budget_epochs, workers=1,
                                  time_budget=args.baseline_budget or args.search_budget, final_ensemble=False,
                                  space_options={"min_depth": 1, "max_depth": 1, "blocks": arch["blocks"],
                                                 "fixed": {**fixed, "dropout": 0.1, "optimizer": "adam",
                                                           "learning_rate": 1e-3}}, **no_stopping)
        trial = base.best_trial
        assert trial is not None
        rows.append({"dataset": name, "method": label, "test_accuracy": trial.metrics.get("test_accuracy"),
                     "valid_accuracy": trial.metrics.get("valid_accuracy"), "epochs_total": budget_epochs,
                     "wall_s": base_wall, "blocks": " > ".join(arch["blocks"]), "families": "", **common})
    for row in rows:
        row["published"] = PUBLISHED[name]
    return rows


def write(rows: list[dict[str, Any]]) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / "sequence.csv"
    kept: list[dict[str, Any]] = []
    done = {r["dataset"] for r in rows}
    if path.is_file():
        with open(path) as f:
            kept = [r for r in csv.DictReader(f) if r["dataset"] not in done]
    every = kept + rows
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=FIELDS)
        writer.writeheader()
        writer.writerows({k: r.get(k, "") for k in FIELDS} for r in every)
    lines = ["# LSTM, Transformer or both? (`sequence` space on the shared UCR/UEA sets)", "",
             "Written by `bench/sequence.py` (one call per set, under /work/tools/cpu-quiet). Test accuracy on each "
             "set's _TEST.ts, which nothing selects on; the search selects on a stratified 20% of _TRAIN. Baselines: "
             "one fixed architecture given the search's total epochs (searched trials' epochs plus the final "
             "training's; no early stopping, the best validation epoch kept), capped at the search's wall budget. "
             "Trials are ranked by validation accuracy, ties broken by validation loss (nasforge.core.ranking); "
             "the search ends with its final ensemble (greedy over the 16 best trials, kept only when it ranks "
             "above the best trial). The searched model (runs from 2026-12-07 21:00 UTC on) is the refit on "
             "train + valid of what that rule keeps (the ensemble's members with its weights, else the best "
             "trial), each for its best epoch x 1/(1 - valid share) epochs; its valid accuracy is `-` as it "
             "trained on the validation cases. The hand baselines train on the training split only, as in the "
             "earlier runs. "
             "`families`: how many of the three best found stacks use each block family (on the searched-model "
             "row: the families of its stacks).", "",
             "| set | method | test acc | valid acc | published (ROCKET/InceptionTime) | wall s | best stack | "
             "families in top 3 |", "|---|---|---|---|---|---|---|---|"]
    for r in every:
        acc = f"{float(r['test_accuracy']):.3f}" if r["test_accuracy"] not in (None, "") else "-"
        val = f"{float(r['valid_accuracy']):.3f}" if r["valid_accuracy"] not in (None, "") else "-"
        lines.append(f"| {r['dataset']} | {r['method']} | {acc} | {val} | {float(r['published']):.2f} | "
                     f"{float(r['wall_s']):.0f} | {r['blocks']} | {r['families']} |")
    lines += ["", "Block types the winners use (the searched model's stacks, and the families of the three best "
              "searched trials by validation):", "", "| set | searched model's stacks | families in the top 3 |",
              "|---|---|---|"]
    for name in dict.fromkeys(r["dataset"] for r in every):
        mine = [r for r in every if r["dataset"] == name]
        model = next((r for r in mine if r["method"].startswith("searched model")), None)
        top = next((r for r in mine if r["method"].startswith("sequence space")), None)
        if model is not None and top is not None:
            lines.append(f"| {name} | {model['blocks']} | {top['families']} |")
    lines += ["", "Goals (searched model = the row so named: from 2026-12-07 21:00 UTC the refit on train + valid "
              "of the study's own model; wall = search + final ensemble + refits; a set last run before the "
              "searched-model row existed is scored by its final-trained row):", "",
              "| set | beats hand LSTM and Transformer | within 1 pt of published | search + final <= 600 s |",
              "|---|---|---|---|"]
    for name in dict.fromkeys(r["dataset"] for r in every):
        mine = [r for r in every if r["dataset"] == name]
        final = next((r for r in mine if r["method"].startswith("searched model")), None) or \
            next((r for r in mine if r["method"].startswith("searched, final")), None)  # runs before the choice
        hands = [r for r in mine if r["method"].startswith("hand")]
        if final is None or final["test_accuracy"] in (None, ""):
            continue
        final_acc = float(final["test_accuracy"])
        beats = all(final_acc > float(h["test_accuracy"]) for h in hands if h["test_accuracy"] not in (None, ""))
        close = final_acc >= float(final["published"]) - 0.01
        quick = float(final["wall_s"]) <= 600
        wall = float(final["wall_s"])
        lines.append(f"| {name} | {'yes' if beats else 'NO'} | {'yes' if close else 'NO'} ({final_acc:.3f} vs "
                     f"{float(final['published']):.2f}) | {'yes' if quick else 'NO'} ({wall:.0f} s) |")
    lines += ["", "Runs:", ""]
    for key in sorted({(r["dataset"], r["machine"], r["command"], r["date"]) for r in every}):
        lines.append(f"- {key[0]}: {key[3]}, {key[1]}: `{key[2]}`")
    (OUT / "sequence.md").write_text("\n".join(lines) + "\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--datasets", default=",".join(DATASETS))
    parser.add_argument("--search-budget", type=float, default=150.0, help="search wall budget, seconds")
    parser.add_argument("--epochs", type=int, default=30, help="most epochs per searched trial")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--patience", type=int, default=10)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--baseline-budget", type=float, default=None,
                        help="wall cap of each hand baseline, seconds (default: the search budget)")
    parser.add_argument("--no-ensemble", action="store_true", help="end the search without its final ensemble")
    args = parser.parse_args()
    if not SHARED.is_dir():
        print(f"shared data not found at {SHARED}", file=sys.stderr)
        return 2
    common = {"machine": machine(), "command": "python bench/sequence.py " + " ".join(sys.argv[1:]),
              "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.datasets.split(","):
            rows += run_one(name, args, Path(tmp), common)
    write(rows)
    for r in rows:
        print(f"{r['dataset']:18} {r['method'][:56]:56} test={r['test_accuracy']} wall={r['wall_s']:.0f}s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
