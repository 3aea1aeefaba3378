"""Zero-cost proxies of NAS-Bench-201 cells on the shared CIFAR-10 subset, computed with nasforge.

    python bench/nb201_proxies.py --minutes 9        # appends to bench/results/nb201_proxies.csv; resumable
    python bench/nb201_proxies.py --report           # writes bench/results/nb201_proxies_correlation.csv

The cells are taken in one seeded random order of all 15,625 strings; each call computes the next
ones until its time is up, appending a row per cell, so repeated calls grow one random sample. A
cell isomorphic to one already computed (same canonical key) reuses its values. Networks are the
space's own builder at its defaults (5 cells per stage, 16 channels), on one stratified minibatch of
64 training images (seed 0); see nasforge/proxies/measures.py for each proxy's definition.
"""

from __future__ import annotations

import argparse
import csv
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
OUT = ROOT / "bench" / "results"
CSV = OUT / "nb201_proxies.csv"
NPZ = DATA / "cifar10_small" / "cifar10_jpeg_q75_small_5k_1k.npz"
TABLE = DATA / "nasbench201" / "nb201_12epoch.csv"
TABLE_200 = DATA / "nasbench201" / "nb201_cifar10valid_200epoch.csv"
CORRELATION = OUT / "nb201_proxies_correlation.csv"
# (label, table, dataset, valid column, test column): each proxy is ranked against the test column
TARGETS = (("cifar10", TABLE, "cifar10", None, None), ("cifar100", TABLE, "cifar100", None, None),
           ("cifar10valid_200epoch", TABLE_200, "cifar10-valid", "valid-accuracy", "test-accuracy"))


def compute(minutes: float, threads: int, seed: int = 0) -> None:
    import torch

    from nasforge.data.loader import data_config, load_dataset
    from nasforge.proxies.compute import COLUMNS, ProxyComputer
    from nasforge.proxies.table import append_rows
    from nasforge.spaces.nb201 import NB201Space

    torch.set_num_threads(threads)
    space = NB201Space()
    computer = ProxyComputer(space, load_dataset(data_config(str(NPZ))), batch_size=64, seed=seed)
    with open(TABLE, newline="") as f:
        strings = sorted(line["arch_str"] for line in csv.DictReader(f))
    order = [strings[i] for i in np.random.default_rng(seed).permutation(len(strings))]
    done: set[str] = set()
    if CSV.exists():
        with open(CSV, newline="") as f:
            lines = list(csv.DictReader(f))
        # a row with a missing proxy is computed again (an earlier version wrote NaN where -inf is meant)
        kept = [line for line in lines if "nan" not in (line[c] for c in COLUMNS)]
        if len(kept) < len(lines):
            CSV.unlink()
            append_rows(CSV, ({k: float(v) if k in (*COLUMNS, "seconds") else v for k, v in line.items()}
                              for line in kept))
        for line in kept:
            done.add(line["arch"])
            computer.cache[line["key"]] = {c: float(line[c]) for c in COLUMNS}
    deadline = time.perf_counter() + minutes * 60
    count, start = 0, time.perf_counter()
    for text in order:
        if text in done:
            continue
        if time.perf_counter() > deadline:
            break
        arch = space.from_string(text)
        before = computer.seconds
        values = computer.values(arch)
        append_rows(CSV, [{"arch": text, "key": space.key(arch), **values, "seconds": computer.seconds - before}])
        count += 1
    print(f"{count} cells in {time.perf_counter() - start:.0f} s ({len(done) + count} in {CSV.name}); "
          f"{threads} threads, {platform.processor() or platform.machine()}", file=sys.stderr)


def report() -> None:
    """Spearman and Kendall of every proxy with each target's test accuracy, over the cells computed so far."""
    from nasforge.proxies.report import table_correlations
    from nasforge.proxies.table import ProxyTable

    proxies = ProxyTable(CSV)
    rows: dict[str, dict[str, float]] = {}
    for label, table, dataset, valid, test in TARGETS:
        for r in table_correlations(proxies, str(table), dataset, valid, test):
            row = rows.setdefault(r["proxy"], {"proxy": r["proxy"]})
            row.update({f"{label}_spearman": r["spearman"], f"{label}_kendall": r["kendall"], f"{label}_n": r["n"]})
    with open(CORRELATION, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(next(iter(rows.values()))))
        writer.writeheader()
        writer.writerows(rows.values())
    print(f"{len(proxies)} cells, {proxies.seconds:.0f} s of proxies; wrote {CORRELATION}", file=sys.stderr)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=9.0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--report", action="store_true", help="write the correlations instead of computing")
    args = parser.parse_args(argv)
    if args.report:
        report()
    else:
        compute(args.minutes, args.threads)


if __name__ == "__main__":
    main()
