"""How long SMASH's search phase takes at each `scale` preset, with each space at its own default size.

    python bench/smash_defaults.py                          # scale cpu, spaces nb201 and darts
    python bench/smash_defaults.py --scales cpu --spaces nb201 --out bench/results/smash_defaults

This is what `nasforge search --strategy smash --space NAME` runs before it retrains the picked cell:
the hypernet's training, then the ranking of `num_candidates` random architectures by generated-weight
accuracy, on the CIFAR-10 subset, with no option but `scale` given. On nb201 every ranked candidate is
also looked up in a NAS-Bench-201 table, so the rows say how good the quick ranking is, not only how fast.
Results are appended to (and a re-run replaces its rows in) `<out>.csv`; `<out>.md` is rewritten from it.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
OUT = ROOT / "bench" / "results"
sys.path.insert(0, str(ROOT / "bench"))

from cli_runs import now, num, write_csv  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=str(DATA / "cifar10_small" / "cifar10_jpeg_q75_small_5k_1k.npz"))
    p.add_argument("--table", default=str(DATA / "nasbench201" / "nb201_12epoch.csv"))
    p.add_argument("--column", default="cifar10_valid", help="the table's accuracy column")
    p.add_argument("--scales", default="cpu", help="comma-separated presets (cpu, full, paper)")
    p.add_argument("--spaces", default="nb201,darts", help="comma-separated spaces, each at its default size")
    p.add_argument("--variants", default="{}", help="JSON list of extra SMASH options to try beside each preset "
                                                     "(a row each), e.g. '[{}, {\"rank_by\": \"loss\"}]'")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=str(OUT / "smash_defaults"))
    args = p.parse_args()

    import torch

    from nasforge.core import registry
    from nasforge.data.loader import data_config, load_dataset
    from nasforge.oneshot.smash import SCALES, SMASH

    torch.set_num_threads(os.cpu_count() or 1)
    dataset = load_dataset(data_config(args.data))
    rows: list[dict[str, Any]] = []
    for space_name in args.spaces.split(","):
        for scale, extra in [(s, v) for s in args.scales.split(",") for v in variants(args.variants)]:
            space = registry.create("space", space_name)
            reference = {"reference_table": args.table, "reference_column": args.column} if space_name == "nb201" \
                else {}
            method = SMASH(scale=scale, **extra, **reference)
            start = time.perf_counter()
            result = method.search(space, dataset, seed=args.seed, device=torch.device("cpu"),
                                   progress=lambda epoch, row: None)
            total = time.perf_counter() - start
            m = result.metrics
            rows.append({"space": space_name, "scale": scale, "options": json.dumps(extra),
                         "preset": json.dumps(SCALES[scale]),
                         "search_s": round(total, 1), "train_s": round(m["train_seconds"], 1),
                         "rank_s": round(total - m["train_seconds"], 1),
                         "rho_accuracy": m.get("rank_correlation_accuracy"),
                         "top_accuracy": m.get("reference_top_accuracy"),
                         "rho_loss": m.get("rank_correlation_loss"), "top_loss": m.get("reference_top_loss"),
                         "best_candidate": m.get("reference_best_candidate"),
                         "finished": now(), "command": " ".join(["python", "bench/smash_defaults.py", *sys.argv[1:]])})
            print(json.dumps(rows[-1]), flush=True)
    write(merge(rows, Path(args.out).with_suffix(".csv")), Path(args.out), args)


def variants(text: str) -> list[dict[str, Any]]:
    value = json.loads(text)
    return value if isinstance(value, list) else [value]


def merge(rows: list[dict[str, Any]], path: Path) -> list[dict[str, Any]]:
    """Earlier rows from the CSV, with those of the same space, scale and options replaced by this run's."""
    done = {(r["space"], r["scale"], r["options"]) for r in rows}
    old: list[dict[str, Any]] = []
    if path.exists():
        with open(path, newline="") as fh:
            old = [r for r in csv.DictReader(fh) if (r["space"], r["scale"], r["options"]) not in done]
    return old + rows


def write(rows: list[dict[str, Any]], out: Path, args: argparse.Namespace) -> None:
    from nasforge.data.loader import data_config, load_dataset

    write_csv(rows, out.with_suffix(".csv"))
    train = load_dataset(data_config(args.data)).train.x.shape[0]
    lines = ["# SMASH: the search phase at each `scale` preset", "",
             f"- machine: {platform.machine()}, {os.cpu_count()} cores, no GPU, Python {platform.python_version()}; "
             "each row's command and finish time are in its CSV row",
             f"- data: CIFAR-10 subset ({train} training images); every space at its default size; seed {args.seed}; "
             "no SMASH option but `scale` and the row's options given; preset: the scale's generic values, which "
             "SPACE_SCALES in nasforge/oneshot/smash.py adjusts per space (cpu: nb201 depth 1, 20 epochs; darts "
             "depth 3, 3 epochs, 40 candidates)",
             f"- nb201 rows: the ranked candidates looked up in `{Path(args.table).name}` (`{args.column}`): ρ is the "
             "Spearman correlation of generated-weight accuracy (loss) with the table, pick the table's value for the "
             "cell it ranks first, best the best ranked candidate's", "",
             "| space | scale | options | preset | search phase | training | ranking | ρ accuracy | pick | "
             "ρ loss | pick | best |", "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['space']} | {r['scale']} | `{r['options']}` | `{r['preset']}` | {r['search_s']} s | "
                     f"{r['train_s']} s | "
                     f"{r['rank_s']} s | {num(r['rho_accuracy'] or None)} | {num(r['top_accuracy'] or None)} | "
                     f"{num(r['rho_loss'] or None)} | {num(r['top_loss'] or None)} | "
                     f"{num(r['best_candidate'] or None)} |")
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
