"""What an ensemble gains over the best single model (issue 22 item 5), on three tables and one image set.

Usage (one call for all datasets; the recorded run is in bench/results/ensemble.md, "Ensemble gain"):

    python bench/ensemble_gain.py                       # letter, satimage, phoneme, fashion_mnist
    python bench/ensemble_gain.py --tiny                # a dry run: 2 small sets, few trials, 1 epoch

Per dataset one small real search (dnn space, model_search strategy, train evaluator, `--trials` trials in
all) runs with Model Search's adaptive ensembling schedule (`ensemble_schedule="adaptive"`: rounds of
`--every` searched trials, each round building on the best trial so far). Afterwards the `nasforge ensemble`
code (nasforge.ensemble.build.make_ensemble, the function `cmd_ensemble` calls) stores `average`,
`weighted` and `greedy` ensembles of `--size` distinct members among the best `--pool` searched trials.

For each ensemble it records the best single searched model's valid and test accuracy (best by validation,
as the study ranks them), the ensemble's, the gain (ensemble - best single, in points) on both splits, the
member count, and whether the ensemble was flagged worse on validation than one of its members
(`info.worse_than_member`). Every choice is made on validation; test numbers are reported as they come,
negative ones included. Distillation is not run here (each student costs a full trial; see bench/ensemble.py).

Tables: 20% stratified test split, seed 0. Fashion-MNIST: its own 10,000 test images, training images capped
at `--fmnist-train` (the study's `max_train` data option) so the search stays cheap.
Rows go to bench/results/ensemble_gain.csv (a dataset's rows are replaced when it is run again); the
"Ensemble gain" section at the end of bench/results/ensemble.md is rewritten from the CSV.
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
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
OUT = ROOT / "bench" / "results"
CSV = OUT / "ensemble_gain.csv"
MD = OUT / "ensemble.md"
SECTION = "## Ensemble gain over the best single model (issue 22 item 5)"
FIELDS = ["dataset", "method", "trial", "members", "member_trials", "best_single_trial", "single_valid",
          "single_test", "ensemble_valid", "ensemble_test", "gain_valid_pt", "gain_test_pt", "flagged_worse",
          "searched", "trials", "epochs", "search_s", "date", "machine", "command"]
DATASETS = ("letter", "satimage", "phoneme", "fashion_mnist")


def machine() -> str:
    import torch

    return (f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python "
            f"{platform.python_version()}, torch {torch.__version__}")


def data_of(name: str, fmnist_train: int) -> tuple[str, dict[str, Any]]:
    if name == "fashion_mnist":
        return str(SHARED / "fashion_mnist"), {"data_options": {"max_train": fmnist_train}}
    return str(SHARED / "tabular" / f"{name}.tsv.gz"), {"label": "target", "test_fraction": 0.2}


def _acc(row: Any, split: str) -> float:
    return float(row.metrics[f"{split}_accuracy"])


def run(name: str, args: argparse.Namespace, workdir: Path, command: str) -> list[dict[str, Any]]:
    import nasforge
    from nasforge.ensemble.build import make_ensemble
    from nasforge.ensemble.members import ENSEMBLE, StudyMembers, kind_of

    data, options = data_of(name, args.fmnist_train)
    start = time.perf_counter()
    study = nasforge.search(data, space="dnn", strategy="model_search", trials=args.trials, workers=args.workers,
                            seed=0, epochs=args.epochs, patience=2, study=f"gain-{name}", root=str(workdir),
                            storage=f"sqlite:///{workdir / f'{name}.db'}", baseline=False, final_ensemble=False,
                            ensemble_schedule="adaptive",
                            ensemble_options={"every": args.every, "width": args.size}, **options)
    search_s = time.perf_counter() - start
    members = StudyMembers(study.store, study.info)
    searched = members.searched()  # complete searched trials with weights, best on validation first
    best = searched[0]
    stamp = {"dataset": name, "best_single_trial": best.number, "single_valid": _acc(best, "valid"),
             "single_test": _acc(best, "test"), "searched": len(searched), "trials": args.trials,
             "epochs": args.epochs, "search_s": round(search_s, 1), "command": command,
             "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
             "machine": machine()}
    rows: list[dict[str, Any]] = []

    def add(method: str, ens: Any) -> None:
        valid, test = _acc(ens, "valid"), _acc(ens, "test")
        rows.append({**stamp, "method": method, "trial": ens.number, "members": len(ens.info["members"]),
                     "member_trials": " ".join(f"#{m}:{w:.2f}" for m, w in zip(ens.info["members"],
                                                                             ens.info["weights"])),
                     "ensemble_valid": valid, "ensemble_test": test,
                     "gain_valid_pt": round(100 * (valid - stamp["single_valid"]), 2),
                     "gain_test_pt": round(100 * (test - stamp["single_test"]), 2),
                     "flagged_worse": "" if ens.info.get("worse_than_member") is None
                     else f"yes (#{ens.info['worse_than_member']})"})

    adaptive = [t for t in study.trials if kind_of(t) == ENSEMBLE and t.info.get("schedule") == "adaptive"
                and t.metrics.get("valid_accuracy") is not None]
    for i, ens in enumerate(sorted(adaptive, key=lambda t: t.number)):
        add(f"adaptive schedule, round {ens.info.get('round', i + 1)} (prior #{ens.info.get('prior')})", ens)
    size = min(args.size, len(searched))
    for method in ("average", "weighted", "greedy"):
        if size < 2:
            break
        ens, _ = make_ensemble(members, method, size, args.pool)
        add(f"{method} (--size {size} --pool {args.pool})", ens)
    return rows


def read_rows() -> list[dict[str, str]]:
    if not CSV.is_file():
        return []
    with open(CSV, newline="") as f:
        return list(csv.DictReader(f))


def _f(value: str, digits: int = 4) -> str:
    return "-" if value in ("", None) else f"{float(value):.{digits}f}"


def _pt(value: str) -> str:
    return "-" if value in ("", None) else f"{float(value):+.2f}"


def write_markdown(rows: list[dict[str, str]]) -> None:
    """Rewrite the "Ensemble gain" section (kept last in ensemble.md, after bench/ensemble.py's notes)."""
    lines = [SECTION, "",
             "Written by `bench/ensemble_gain.py` from `ensemble_gain.csv`. Per dataset one small dnn/model_search "
             "search with the adaptive ensembling schedule (train evaluator, patience 2, seed 0; the trial count "
             "includes the schedule's ensemble trials), then the `nasforge ensemble` code "
             "(`make_ensemble`) for average, weighted and greedy. Best single = the best searched trial by "
             "validation accuracy; gain = ensemble - best single, in accuracy points; flagged = the ensemble "
             "is worse on validation than one of its members (stored, ranked below it). Tables: 20% stratified "
             "test split; Fashion-MNIST: its 10,000 test images.", ""]
    for key in ("machine", "command", "date"):
        values = sorted({r[key] for r in rows})
        lines.append(f"{key.capitalize()}: " + "; ".join(f"`{v}`" if key == "command" else v for v in values)
                     + "  ")
    lines += ["", "| dataset | searched / trials, epochs | search s | best single (valid / test) | ensemble | "
              "members | valid | test | gain valid | gain test | flagged worse |",
              "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['dataset']} | {r['searched']} / {r['trials']}, {r['epochs']} | {r['search_s']} | "
                     f"#{r['best_single_trial']}: {_f(r['single_valid'])} / {_f(r['single_test'])} | "
                     f"{r['method']} #{r['trial']} | {r['members']} | {_f(r['ensemble_valid'])} | "
                     f"{_f(r['ensemble_test'])} | {_pt(r['gain_valid_pt'])} | {_pt(r['gain_test_pt'])} | "
                     f"{r['flagged_worse'] or 'no'} |")
    lines += ["", "Members (trial:weight) per ensemble are in `ensemble_gain.csv` (`member_trials`)."]
    old = MD.read_text() if MD.is_file() else ""
    head = old[:old.index(SECTION)].rstrip() + "\n\n" if SECTION in old else (old.rstrip() + "\n\n" if old else "")
    tail = ""
    if SECTION in old and "\n### Reading" in old[old.index(SECTION):]:
        rest = old[old.index(SECTION):]
        tail = "\n" + rest[rest.index("\n### Reading") + 1:]  # hand-written reading of the numbers is kept
    MD.write_text(head + "\n".join(lines) + "\n" + tail)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", default=",".join(DATASETS), help="comma-separated; tables from "
                        "../shared/data/tabular (name without .tsv.gz) or fashion_mnist")
    parser.add_argument("--trials", type=int, default=15, help="trials per study, ensemble trials included")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--every", type=int, default=4, help="searched trials per adaptive round")
    parser.add_argument("--size", type=int, default=3, help="distinct members of every ensemble")
    parser.add_argument("--pool", type=int, default=8, help="greedy's candidates: the best POOL searched")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--fmnist-train", type=int, default=8000, help="Fashion-MNIST training images kept")
    parser.add_argument("--tiny", action="store_true", help="dry run: phoneme and fashion_mnist, 5 trials, "
                        "1 epoch, 1,000 images; writes nothing under bench/results")
    args = parser.parse_args()
    names = [n for n in args.datasets.split(",") if n]
    if args.tiny:
        names, args.trials, args.epochs, args.every, args.size, args.pool, args.fmnist_train = (
            ["phoneme", "fashion_mnist"], 5, 1, 2, 2, 3, 1000)
    for n in names:
        if n != "fashion_mnist" and not (SHARED / "tabular" / f"{n}.tsv.gz").is_file():
            print(f"no dataset {n!r}: a table in {SHARED / 'tabular'} or fashion_mnist", file=sys.stderr)
            return 2
    command = "python bench/ensemble_gain.py " + " ".join(sys.argv[1:])
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in names:
            t0 = time.perf_counter()
            mine = run(n, args, Path(tmp), command.strip())
            print(f"{n}: {time.perf_counter() - t0:.1f} s", flush=True)
            for r in mine:
                print({k: r[k] for k in ("method", "members", "single_valid", "single_test", "ensemble_valid",
                                         "ensemble_test", "gain_valid_pt", "gain_test_pt", "flagged_worse")},
                      flush=True)
            rows += mine
    if args.tiny:
        return 0
    new = [{k: "" if r.get(k) is None else str(r[k]) for k in FIELDS} for r in rows]
    kept = [r for r in read_rows() if r["dataset"] not in set(names)]
    OUT.mkdir(parents=True, exist_ok=True)
    with open(CSV, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=FIELDS)
        writer.writeheader()
        writer.writerows(kept + new)
    write_markdown(kept + new)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
