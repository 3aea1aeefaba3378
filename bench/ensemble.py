"""Best single model vs best ensemble, and a distilled student vs its teacher, after a 20-trial search.

Usage: python bench/ensemble.py --dataset adult|letter|fashion_mnist [--trials 20] [--epochs N]
       python bench/ensemble.py --report        # rewrite the markdown from the CSV

Each run searches the dnn space with model_search and the train evaluator (one worker, one torch thread),
then stores three ensembles of the searched trials (average of the best 5, fitted weights over the best 5,
Caruana greedy selection of 10 steps over the best 10, all combining probabilities), picks the best of them
by validation accuracy, and distils the best trial or ensemble (by validation) into the best searched
architecture with at most a third of the teacher's parameters (cross-entropy with temperature 2, the
balanced label + teacher loss, and the balanced loss with twice the epochs next to the same architecture,
seed and epochs trained on labels alone, so the teacher's effect is told from the longer budget's).
Rows go to bench/results/ensemble.csv (a dataset's rows are replaced when it
is run again) and bench/results/ensemble.md. Tables: 20% stratified test split, seed 0; Fashion-MNIST: its
own 10,000 test images. The search never sees the test split; every choice is made on validation.
"""

from __future__ import annotations

import argparse
import csv
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
OUT = ROOT / "bench" / "results"
CSV = OUT / "ensemble.csv"
FIELDS = ["dataset", "row", "trial", "detail", "valid_accuracy", "test_accuracy", "params", "wall_s", "command"]
# A modest per-trial budget so 20 trials fit in about 10-15 minutes on one busy core.
EPOCHS = {"adult": 6, "letter": 15, "fashion_mnist": 3}


def machine() -> str:
    import torch

    return (f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores (shared), Python "
            f"{platform.python_version()}, torch {torch.__version__}, 1 torch thread, 1 worker")


def data_of(name: str) -> tuple[str, dict[str, Any]]:
    if name == "fashion_mnist":
        return str(SHARED / "fashion_mnist"), {}
    return str(SHARED / "tabular" / f"{name}.tsv.gz"), {"label": "target", "test_fraction": 0.2}


def run(name: str, trials: int, epochs: int, workdir: Path, command: str) -> list[dict[str, Any]]:
    import nasforge
    from nasforge.ensemble.members import kind_of

    data, options = data_of(name)
    start = time.perf_counter()
    study = nasforge.search(data, space="dnn", strategy="model_search", trials=trials, workers=1, seed=0,
                            epochs=epochs, patience=2, study=f"ens-{name}", root=str(workdir),
                            storage=f"sqlite:///{workdir / 'bench.db'}", **options)
    search_s = time.perf_counter() - start
    searched = [t for t in study.trials if kind_of(t) == "search" and t.score is not None]
    best = max(searched, key=lambda t: (t.score or 0.0, -t.number))
    rows: list[dict[str, Any]] = []

    def add(row: str, t: Any, detail: str, wall: float) -> None:
        rows.append({"dataset": name, "row": row, "trial": t.number, "detail": detail,
                     "valid_accuracy": t.metrics.get("valid_accuracy"), "test_accuracy": t.metrics.get("test_accuracy"),
                     "params": t.params, "wall_s": round(wall, 1), "command": command})

    # wall time of the search: the trials' own durations (the same whether the search ran now or is resumed)
    trial_s = sum(t.duration or 0.0 for t in searched)
    add("best single model", best, f"{len(searched)} searched trials, {epochs} epochs each; wall s = sum of "
        f"trial times", trial_s if trial_s > 0 else search_s)
    ensembles = []
    for method, size in (("average", 5), ("weighted", 5), ("greedy", 10)):
        t0 = time.perf_counter()
        ens = study.ensemble(method=method, size=size, pool=10)
        ensembles.append(ens)
        weights = ", ".join(f"#{m}:{w:.2f}" for m, w in zip(ens.info["members"], ens.info["weights"]))
        add(f"ensemble {method}", ens, weights, time.perf_counter() - t0)
    top = max(ensembles, key=lambda t: (t.score or 0.0, -t.number))
    add("best ensemble (by valid)", top, f"{top.info['method']}", 0.0)
    teacher = top if (top.score or 0.0) > (best.score or 0.0) else best
    budget = max(1, int((teacher.params or 0) // 3))
    for loss, factor in (("cross_entropy", 1), ("balanced", 1), ("balanced", 2)):
        t0 = time.perf_counter()
        made = study.distill(teacher=teacher.number, loss=loss, max_params=budget, trials=1, lambda_max=1.0,
                             epochs=None if factor == 1 else factor * epochs)
        done = made or [t for t in study.trials if t.info.get("kind") == "distillation"
                        and t.info.get("loss") == loss and t.parent == teacher.number
                        and (f":e{factor * epochs}:" in t.key) == (factor > 1)]
        if not done:
            continue
        student = done[0]
        source = study.trial(int(student.info["student"]))
        if loss == "cross_entropy":
            add(f"teacher (trial {teacher.number})", teacher, f"params {teacher.params}", 0.0)
            add(f"student trained alone (trial {source.number})", source, f"params <= {budget}", 0.0)
        label = loss if factor == 1 else f"{loss}, {factor}x epochs"
        add(f"distilled student ({label})", student,
            f"T=2, lambda={student.info.get('lambda')}, {factor * epochs} epochs",
            student.duration or time.perf_counter() - t0)
        if factor > 1:
            t0 = time.perf_counter()
            alone = retrain(study, student, factor * epochs)
            rows.append({"dataset": name, "row": f"student trained alone ({factor}x epochs, same seed)",
                         "trial": "-", "detail": "label loss only; not stored", "params": student.params,
                         "valid_accuracy": alone["valid_accuracy"], "test_accuracy": alone["test_accuracy"],
                         "wall_s": round(time.perf_counter() - t0, 1), "command": command})
    return rows


def retrain(study: Any, like: Any, epochs: int) -> dict[str, float]:
    """The distilled row's architecture, seed and epochs with the ordinary label loss: the matched baseline."""
    from nasforge.core.types import TrialSpec
    from nasforge.evaluators.train import TrainEvaluator

    config = dict(study.config["evaluator_config"], epochs=epochs, save_weights=False)
    config.pop("steps", None)
    space = study.space
    spec = TrialSpec(study=study.name, number=-1, arch=like.arch, seed=like.seed, space=study.config["space"],
                     space_config=study.config.get("space_config", {}), evaluator="train",
                     evaluator_config=config, budget={}, objective=study.info.objective,
                     direction=study.info.direction, workdir=None)

    class Quiet:
        def report(self, step: int, metrics: dict[str, float]) -> None:
            return None

    result = TrainEvaluator(**config).evaluate(space.from_json(like.arch), spec, Quiet(), space=space)
    return result.metrics


def write_csv(rows: list[dict[str, Any]], dataset: str) -> list[dict[str, Any]]:
    old: list[dict[str, Any]] = []
    if CSV.is_file():
        with open(CSV, newline="") as f:
            old = [r for r in csv.DictReader(f) if r["dataset"] != dataset]
    allrows = old + rows
    OUT.mkdir(parents=True, exist_ok=True)
    with open(CSV, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=FIELDS)
        writer.writeheader()
        writer.writerows(allrows)
    return allrows


def _num(value: Any, digits: int = 4) -> str:
    if value in (None, ""):
        return "-"
    return f"{float(value):.{digits}f}"


def report() -> None:
    with open(CSV, newline="") as f:
        rows = list(csv.DictReader(f))
    lines = ["# Ensembles and distillation after a 20-trial search", "",
             f"Machine: {machine()}  ",
             "Commands: " + ", ".join(sorted({f"`{r['command']}`" for r in rows})) + "  ",
             "Search: dnn space, model_search strategy, train evaluator, patience 2, seed 0; tables: 20% "
             "stratified test split, Fashion-MNIST: its 10,000 test images. Ensembles and teachers are chosen "
             "by validation accuracy only.", "",
             "| dataset | row | trial | valid acc | test acc | params | wall s | detail |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['dataset']} | {r['row']} | {r['trial']} | {_num(r['valid_accuracy'])} | "
                     f"{_num(r['test_accuracy'])} | {r['params'] or '-'} | {r['wall_s']} | {r['detail']} |")
    lines += ["", "## Side by side (test accuracy, points)", "",
              "| dataset | best single | best ensemble | ensemble - single | teacher | best distilled student "
              "| student - teacher | student params / teacher params |", "|---|---|---|---|---|---|---|---|"]
    for name in sorted({r["dataset"] for r in rows}):
        mine = {r["row"]: r for r in rows if r["dataset"] == name}
        single, ens = mine.get("best single model"), mine.get("best ensemble (by valid)")
        teacher = next((r for k, r in mine.items() if k.startswith("teacher")), None)
        students = [r for k, r in mine.items() if k.startswith("distilled student")]
        student = max(students, key=lambda r: float(r["valid_accuracy"] or 0)) if students else None
        if single is None or ens is None:
            continue
        gain = 100 * (float(ens["test_accuracy"]) - float(single["test_accuracy"]))
        cells = [name, _num(single["test_accuracy"]), _num(ens["test_accuracy"]), f"{gain:+.2f}"]
        if teacher is not None and student is not None:
            gap = 100 * (float(student["test_accuracy"]) - float(teacher["test_accuracy"]))
            ratio = float(student["params"]) / float(teacher["params"])
            cells += [_num(teacher["test_accuracy"]), f"{_num(student['test_accuracy'])} ({student['row']})",
                      f"{gap:+.2f}", f"{ratio:.3f}"]
        else:
            cells += ["-"] * 4
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    lines.append("The distilled student shown is the best of the distilled rows by validation accuracy.")
    target = OUT / "ensemble.md"
    old = target.read_text() if target.is_file() else ""
    notes = old[old.index("## Notes"):] if "## Notes" in old else ""
    target.write_text("\n".join(lines) + "\n" + ("\n" + notes if notes else ""))
    print("\n".join(lines))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", choices=sorted(EPOCHS))
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--epochs", type=int, help="epochs per trial (default: per dataset, see EPOCHS)")
    parser.add_argument("--workdir", default="/tmp/nasforge-bench-ensemble", help="store and checkpoints")
    parser.add_argument("--report", action="store_true", help="only rewrite ensemble.md from ensemble.csv")
    args = parser.parse_args()
    if args.report:
        report()
        return 0
    if not args.dataset:
        parser.error("--dataset or --report is required")
    if not SHARED.is_dir():
        print(f"shared data not found at {SHARED}", file=sys.stderr)
        return 2
    import torch

    torch.set_num_threads(1)
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    command = "python bench/ensemble.py " + " ".join(sys.argv[1:])
    rows = run(args.dataset, args.trials, args.epochs or EPOCHS[args.dataset], workdir, command.strip())
    write_csv(rows, args.dataset)
    report()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
