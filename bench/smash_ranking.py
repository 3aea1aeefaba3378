"""How well SMASH's generated-weight scores rank nb201 cells, by training length and options.

    python bench/smash_ranking.py                       # writes bench/results/smash_ranking.{md,csv}
    python bench/smash_ranking.py --variants e8,e24 --candidates 100

Each variant is one SMASH search (search phase only, no retraining) on the CIFAR-10 subset with the
nb201 space at the oneshot_nb201 bench's size (1 cell per stage, 16 channels). Every candidate it
scores is looked up in a NAS-Bench-201 table, which gives the Spearman correlation of the ranking
with the table for both scores SMASH can rank by (generated-weight accuracy, the paper's, and loss),
and the table accuracy of the cell each score would pick. Both come from one search, because the two
rankings score the same candidates.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
OUT = ROOT / "bench" / "results"
sys.path.insert(0, str(ROOT / "bench"))

from cli_runs import now, num, write_csv  # noqa: E402

VARIANTS: dict[str, dict[str, Any]] = {
    "e8": {"epochs": 8},
    "e8_context": {"epochs": 8, "cell_context": True},
    "e24": {"epochs": 24},
    "e24_context": {"epochs": 24, "cell_context": True},
    "e24_lr3e-3": {"epochs": 24, "learning_rate": 3e-3},
}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=str(DATA / "cifar10_small" / "cifar10_jpeg_q75_small_5k_1k.npz"))
    p.add_argument("--table", default=str(DATA / "nasbench201" / "nb201_12epoch.csv"))
    p.add_argument("--column", default="cifar10_valid", help="the table's accuracy column")
    p.add_argument("--variants", default=",".join(VARIANTS), help=f"from {', '.join(VARIANTS)}")
    p.add_argument("--candidates", type=int, default=300)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=str(OUT / "smash_ranking"))
    args = p.parse_args()

    import torch

    from nasforge.data.loader import data_config, load_dataset
    from nasforge.oneshot.smash import SMASH
    from nasforge.spaces.nb201 import NB201Space

    dataset = load_dataset(data_config(args.data))
    space = NB201Space(cells_per_stage=1, channels=16)
    rows: list[dict[str, Any]] = []
    for name in args.variants.split(","):
        if name not in VARIANTS:
            raise SystemExit(f"unknown variant {name!r}; choose from {', '.join(VARIANTS)}")
        method = SMASH(scale="full", num_candidates=args.candidates, reference_table=args.table,
                       reference_column=args.column,
                       **VARIANTS[name])
        start = time.perf_counter()
        result = method.search(space, dataset, seed=args.seed, device=torch.device("cpu"),
                               progress=lambda epoch, row: None)
        m = result.metrics
        rows.append({"variant": name, "options": json.dumps(VARIANTS[name]), "train_s": round(m["train_seconds"], 1),
                     "search_s": round(time.perf_counter() - start, 1),
                     "rho_accuracy": m.get("rank_correlation_accuracy"), "rho_loss": m.get("rank_correlation_loss"),
                     "top_accuracy": m.get("reference_top_accuracy"), "top_loss": m.get("reference_top_loss"),
                     "best_candidate": m.get("reference_best_candidate"), "matched": m.get("reference_matched")})
        print(json.dumps(rows[-1]), flush=True)
    write(rows, args)


def write(rows: list[dict[str, Any]], args: argparse.Namespace) -> None:
    from nasforge.oneshot.smash import read_reference

    out = Path(args.out)
    write_csv(rows, out.with_suffix(".csv"))
    lines = ["# SMASH: how its scores rank nb201 cells", "",
             f"- machine: {platform.machine()}, {os.cpu_count()} cores, no GPU, Python {platform.python_version()}; "
             f"finished {now()}",
             "- command: `" + " ".join(["python", "bench/smash_ranking.py", *sys.argv[1:]]) + "`",
             f"- data: CIFAR-10 subset; space nb201 with 1 cell per stage, 16 channels; {args.candidates} random "
             f"candidates, seed {args.seed}; table `{Path(args.table).name}`, column `{args.column}`",
             "- ρ: Spearman correlation of the candidates' score with the table (loss negated); "
             "pick: the table's value for the cell the score ranks first", "",
             "| variant | options | training | ρ accuracy | ρ loss | pick by accuracy | pick by loss | "
             "best candidate |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['variant']} | `{r['options']}` | {r['train_s']} s | {num(r['rho_accuracy'])} | "
                     f"{num(r['rho_loss'])} | {num(r['top_accuracy'])} | {num(r['top_loss'])} | "
                     f"{num(r['best_candidate'])} |")
    table = read_reference(args.table, args.column)
    lines += ["", f"For scale: the median of `{args.column}` over all {len(table)} cells of the table is "
                  f"{statistics.median(table.values()):.2f}."]
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
