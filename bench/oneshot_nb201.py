"""ENAS, DARTS (first and second order) and SMASH on the CIFAR-10 subset with the nb201 space, through the CLI.

    python bench/oneshot_nb201.py                          # writes bench/results/oneshot_nb201.{md,csv}
    python bench/oneshot_nb201.py --methods darts1,smash --random 0
    python bench/oneshot_nb201.py --search-epochs 8 --epochs 8 --epochs-of smash=24   # the recorded run

Each method is one `nasforge search --strategy M` (its search phase, then the derived cell retrained
by the study's evaluator with `--epochs E`). The derived cell is looked up in a NAS-Bench-201 table
(`nb201_12epoch.csv`, cifar10 columns: the cell's accuracy when trained fully on real CIFAR-10), and its
search time and peak memory are read from the stored one-shot trial. `--random N` adds a `random`
study of N cells trained with the same evaluator budget: the median a derived cell should beat. SMASH
also gets the table as its `reference_table`, so the rank correlation of its whole candidate list is
recorded too.
Budgets are CPU-sized: they show each method end to end, not the papers' numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
OUT = ROOT / "bench" / "results"
sys.path.insert(0, str(ROOT / "bench"))

from cli_runs import now, num, run_logged, work_storage, write_csv  # noqa: E402

METHODS: dict[str, list[str]] = {
    "enas": ["--strategy", "enas"],
    "darts1": ["--strategy", "darts", "--order", "1"],
    "darts2": ["--strategy", "darts", "--order", "2"],
    # scale=full: the defaults these results were recorded with (the cpu preset came later)
    "smash": ["--strategy", "smash", "--strategy-option", "scale=full"],
    "smash_loss": ["--strategy", "smash", "--strategy-option", "scale=full",
                   "--strategy-option", "rank_by=loss"],  # not in the default set
}
DEFAULT_METHODS = ("enas", "darts1", "darts2", "smash")


def table_row(arch_str: str, table: Path) -> dict[str, float]:
    from nasforge.evaluators.table import TableEvaluator

    try:
        return TableEvaluator(str(table), dataset="cifar10").lookup(arch_str)
    except Exception as exc:  # a dead cell may be missing from a table; the row says so
        print(f"table lookup failed for {arch_str}: {exc}", file=sys.stderr)
        return {}


def trials_of(study: str, storage: str) -> list[dict[str, Any]]:
    from nasforge.api import Study

    s = Study(study, storage)
    space = s.space
    rows = []
    for t in s.trials:
        rows.append({"number": t.number, "state": t.state.value, "kind": (t.info or {}).get("kind"),
                     "arch_str": space.to_string(space.from_json(t.arch)), "metrics": t.metrics,
                     "duration": t.duration})
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=str(DATA / "cifar10_small" / "cifar10_jpeg_q75_small_5k_1k.npz"))
    p.add_argument("--table", default=str(DATA / "nasbench201" / "nb201_12epoch.csv"))
    p.add_argument("--methods", default=",".join(DEFAULT_METHODS), help=f"from {', '.join(METHODS)}")
    p.add_argument("--search-epochs", type=int, default=3, help="epochs of each method's search phase")
    p.add_argument("--epochs-of", action="append", default=[], metavar="METHOD=N",
                   help="search epochs for one method instead of --search-epochs (e.g. smash=24: its steps are one "
                        "path each, so cheaper than DARTS's mixture)")
    p.add_argument("--epochs", type=int, default=4, help="epochs of every retraining (derived and random cells)")
    p.add_argument("--random", type=int, default=10, help="random cells trained with the same budget (0: none)")
    p.add_argument("--space-option", action="append", default=["cells_per_stage=1", "channels=16"])
    p.add_argument("--work", default="/tmp/nasforge_oneshot_nb201")
    p.add_argument("--out", default=str(OUT / "oneshot_nb201"))
    args = p.parse_args()
    work, storage = work_storage(args.work)
    stamp = f"{datetime.now(timezone.utc):%Y%m%d%H%M%S}"
    common = ["--data", args.data, "--space", "nb201", "--epochs", str(args.epochs), "--storage", storage,
              "--no-progress", "--retries", "0"]
    for opt in args.space_option:
        common += ["--space-option", opt]

    search_epochs = search_epochs_of(args)
    rows: list[dict[str, Any]] = []
    commands: list[str] = []
    for name in args.methods.split(","):
        if name not in METHODS:
            raise SystemExit(f"unknown method {name!r}; choose from {', '.join(METHODS)}")
        study = f"oneshot-{name}-{stamp}"
        extra = ["--strategy-option", f"reference_table={args.table}"] if name.startswith("smash") else []
        cmd = ["nasforge", "search", *common, *METHODS[name], *extra, "--strategy-option",
               f"epochs={search_epochs.get(name, args.search_epochs)}", "--study", study]
        wall = run_logged(cmd, work / f"{name}.log")
        commands.append(" ".join(cmd))
        trials = trials_of(study, storage)
        searched = next(t for t in trials if t["kind"] == "oneshot")
        retrained = next(t for t in trials if t["kind"] == "retrain")
        looked = table_row(searched["arch_str"], Path(args.table))
        rows.append({"method": name, "derived": searched["arch_str"],
                     "search_s": round(searched["metrics"].get("search_seconds", 0.0), 1),
                     "peak_memory_mb": round(searched["metrics"].get("peak_memory_mb", 0.0), 1),
                     "oneshot_valid": searched["metrics"].get("oneshot_valid_accuracy"),
                     "table_valid": looked.get("valid_accuracy"), "table_test": looked.get("test_accuracy"),
                     "retrained_valid": retrained["metrics"].get("valid_accuracy"),
                     "retrained_test": retrained["metrics"].get("test_accuracy"), "wall_s": round(wall, 1),
                     "search_epochs": search_epochs.get(name, args.search_epochs),
                     "rank_correlation": searched["metrics"].get("oneshot_rank_correlation")})
        print(json.dumps(rows[-1]), flush=True)

    random_summary: dict[str, Any] = {}
    if args.random:
        study = f"oneshot-random-{stamp}"
        cmd = ["nasforge", "search", *common, "--strategy", "random", "--trials", str(args.random), "--workers", "1",
               "--study", study]
        wall = run_logged(cmd, work / "random.log")
        commands.append(" ".join(cmd))
        done = [t for t in trials_of(study, storage) if t["state"] == "complete"]
        valid = [float(t["metrics"]["valid_accuracy"]) for t in done]
        tables = [table_row(t["arch_str"], Path(args.table)).get("test_accuracy") for t in done]
        random_summary = {"trials": len(done), "median_valid": statistics.median(valid) if valid else None,
                          "median_table_test": statistics.median([v for v in tables if v is not None])
                          if any(v is not None for v in tables) else None, "wall_s": round(wall, 1)}
    write(rows, random_summary, commands, args)


def search_epochs_of(args: argparse.Namespace) -> dict[str, int]:
    """The `--epochs-of METHOD=N` overrides."""
    out: dict[str, int] = {}
    for item in args.epochs_of:
        name, _, value = item.partition("=")
        if name not in METHODS or not value.isdigit() or int(value) < 1:
            raise SystemExit(f"--epochs-of wants METHOD=N with METHOD one of {', '.join(METHODS)}, got {item!r}")
        out[name] = int(value)
    return out


def write(rows: list[dict[str, Any]], random_summary: dict[str, Any], commands: list[str],
          args: argparse.Namespace) -> None:
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if rows:
        write_csv(rows, out.with_suffix(".csv"))
    median = random_summary.get("median_valid")
    lines = ["# One-shot methods on the CIFAR-10 subset, nb201 space", "",
             f"- machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, no GPU, "
             f"Python {platform.python_version()}; finished {now()}",
             "- command: `" + " ".join(["python", "bench/oneshot_nb201.py", *sys.argv[1:]]) + "`",
             f"- search phase: {args.search_epochs} epochs"
             + "".join(f", {k}: {v}" for k, v in search_epochs_of(args).items())
             + "; every retraining (derived and random cells): "
             f"{args.epochs} epochs with the study's evaluator; space options {', '.join(args.space_option)}",
             "- table: NAS-Bench-201 `nb201_12epoch.csv`, cifar10 columns (the derived cell trained on real "
             "CIFAR-10 by the benchmark's authors)", "",
             "| method | derived cell | search time | peak memory | one-shot valid | table valid | table test | "
             "retrained valid | retrained test | beats random median |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        beats = "-" if median is None or r["retrained_valid"] is None else (
            "yes" if r["retrained_valid"] > median else "no")
        cell = r["derived"].replace("|", "\\|")  # a pipe inside a table cell must be escaped, even in code
        lines.append(f"| {r['method']} | `{cell}` | {r['search_s']} s | {r['peak_memory_mb']} MB | "
                     f"{num(r['oneshot_valid'])} | {num(r['table_valid'])} | {num(r['table_test'])} | "
                     f"{num(r['retrained_valid'])} | {num(r['retrained_test'])} | {beats} |")
    if random_summary:
        lines += ["", f"Random cells ({random_summary['trials']}, same retraining budget): median retrained "
                      f"valid accuracy {num(median)}, median table test accuracy "
                      f"{num(random_summary['median_table_test'])}."]
    for r in rows:
        if r.get("rank_correlation") is not None:
            lines += ["", f"{r['method']}: Spearman correlation of its candidates' ranking score with the table's "
                          f"cifar10 validation accuracy: {r['rank_correlation']:.3f}."]
    lines += ["", "Peak memory on a CPU is the process's peak resident size (data included).", "",
              "## Commands", "", "```", *commands, "```"]
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
