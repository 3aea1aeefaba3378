"""Images per second of the train evaluator's loop against a plain eager PyTorch loop, in one run.

The evaluator's defaults: data kept as tensors (no DataLoader), channels-last image batches, fused
optimizer kernels, bfloat16 autocast where the CPU computes bf16 natively (`precision="auto"`),
inference-mode scoring. The plain loop is what most training code looks like: a
DataLoader over a TensorDataset (default settings: shuffle, no workers), the same small CNN,
optimizer and batch size, evaluation with a DataLoader of the same batch size under `torch.no_grad`.
Variants run interleaved, repeat by repeat, and the medians are compared, so a change of machine load
hits every variant alike.

Two modes: `train` (a 256-image validation split and no test split: the training loop itself) and
`trial` (the real validation split every epoch and the test split at the end: a search trial).

    python bench/train_speed.py                      # writes bench/results/train_speed.{md,csv}
    python bench/train_speed.py --repeats 5 --epochs 3 --compile
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from nasforge.core.types import Architecture, TrialSpec  # noqa: E402
from nasforge.data.base import Dataset, DataSpec, Split  # noqa: E402
from nasforge.data.loader import data_config, load_dataset  # noqa: E402
from nasforge.evaluators.train import TrainEvaluator, resolve_precision  # noqa: E402

DEFAULT_PRECISION = resolve_precision("auto", torch.device("cpu"))


def small_cnn(spec: DataSpec) -> nn.Module:
    """Three conv-BN-ReLU stages (32, 64, 128 channels), two max-pools, global average pool, linear."""
    c = spec.input_shape[0]
    return nn.Sequential(
        nn.Conv2d(c, 32, 3, padding=1, bias=False), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1, bias=False), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(64, 128, 3, padding=1, bias=False), nn.BatchNorm2d(128), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(128, spec.num_outputs))


class BenchSpace:
    """A one-point space whose `build` is the bench CNN (handed to `evaluate` directly)."""

    name = "bench_cnn"

    def build(self, arch: Architecture, spec: DataSpec) -> nn.Module:
        return small_cnn(spec)


class _Quiet:
    def report(self, step: int, metrics: dict[str, float]) -> None:
        return None


def plain_loop(dataset: Dataset, epochs: int, batch_size: int, seed: int) -> float:
    """Seconds for a textbook loop: build, then per epoch train and validate, then test."""
    start = time.perf_counter()
    torch.manual_seed(seed)
    model = small_cnn(dataset.spec)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)

    def loader(split: Split, shuffle: bool) -> DataLoader:
        return DataLoader(TensorDataset(torch.from_numpy(split.x), torch.from_numpy(split.y)),
                          batch_size=batch_size, shuffle=shuffle)

    def score(split: Split) -> float:
        model.eval()
        correct = 0
        with torch.no_grad():
            for xb, yb in loader(split, False):
                correct += int((model(xb).argmax(1) == yb).sum())
        return correct / len(split)

    train = loader(dataset.train, True)
    for _ in range(epochs):
        model.train()
        for xb, yb in train:
            loss = F.cross_entropy(model(xb), yb)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        score(dataset.valid)
    if dataset.test is not None:
        score(dataset.test)
    return time.perf_counter() - start


def evaluator_loop(dataset: Dataset, epochs: int, batch_size: int, seed: int, **options: Any) -> float:
    """Seconds for the same work through `TrainEvaluator.evaluate` (model build and FLOP count included)."""
    evaluator = TrainEvaluator.from_dataset(dataset, epochs=epochs, batch_size=batch_size, patience=None,
                                            save_weights=False, **options)
    evaluator._prepare(dataset, torch.device("cpu"))  # tensors made once per worker, not per trial
    spec = TrialSpec(study="bench", number=0, arch={}, seed=seed, space="bench_cnn", space_config={},
                     evaluator="train", evaluator_config={}, budget={}, objective="valid_accuracy",
                     direction="maximize", workdir=None)
    start = time.perf_counter()
    result = evaluator.evaluate(Architecture("bench_cnn", ()), spec, _Quiet(), space=BenchSpace())
    elapsed = time.perf_counter() - start
    if result.error:
        raise RuntimeError(result.error)
    return elapsed


def datasets(root: Path, fm_train: int) -> dict[str, Dataset]:
    fm = load_dataset(data_config(str(root / "fashion_mnist"), max_train=fm_train))
    cifar = load_dataset(data_config(str(root / "cifar10_small" / "cifar10_jpeg_q75_small_5k_1k.npz")))
    return {"fashion_mnist": fm, "cifar10_small": cifar}


def train_mode(dataset: Dataset) -> Dataset:
    """The training loop alone: a token validation split, no test split."""
    return dataclasses.replace(dataset, valid=Split(dataset.valid.x[:256], dataset.valid.y[:256]), test=None)


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (f"{cpu}, {os.cpu_count()} cores, torch {torch.__version__} ({torch.get_num_threads()} threads), "
            f"Python {platform.python_version()}, {platform.system()}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root", default=str(ROOT.parent / "shared" / "data"))
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--fm-train", type=int, default=6000, help="Fashion-MNIST training images (max_train)")
    parser.add_argument("--modes", default="train,trial")
    parser.add_argument("--threads", default="0", help="comma-separated torch thread counts; 0: torch's default")
    parser.add_argument("--compile", action="store_true", help="also time compile=True once (slow to compile)")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "train_speed"))
    args = parser.parse_args()

    loads = [os.getloadavg()[0]]
    data = datasets(Path(args.data_root), args.fm_train)
    variants: dict[str, Callable[[Dataset, int], float]] = {
        "plain DataLoader loop": lambda d, seed: plain_loop(d, args.epochs, args.batch_size, seed),
        f"evaluator (defaults: channels_last, precision=auto -> {DEFAULT_PRECISION})":
            lambda d, seed: evaluator_loop(d, args.epochs, args.batch_size, seed),
        "evaluator precision=fp32": lambda d, seed: evaluator_loop(d, args.epochs, args.batch_size, seed,
                                                                   precision="fp32"),
        "evaluator precision=fp32 channels_last=false": lambda d, seed: evaluator_loop(
            d, args.epochs, args.batch_size, seed, precision="fp32", channels_last=False),
    }
    default_threads = torch.get_num_threads()
    rows: list[dict[str, Any]] = []
    for threads in [int(t) or default_threads for t in args.threads.split(",")]:
        torch.set_num_threads(threads)
        for name, full in data.items():
            for mode in args.modes.split(","):
                rows.extend(measure(name, mode, full, variants, threads, args))
    torch.set_num_threads(default_threads)
    loads.append(os.getloadavg()[0])
    write(rows, args, loads)


def measure(name: str, mode: str, full: Dataset, variants: dict[str, Callable[[Dataset, int], float]],
            threads: int, args: argparse.Namespace) -> list[dict[str, Any]]:
    """Every variant once per repeat, interleaved; one row per variant with the median throughput."""
    dataset = train_mode(full) if mode == "train" else full
    images = len(dataset.train) * args.epochs
    times: dict[str, list[float]] = {v: [] for v in variants}
    for repeat in range(args.repeats):
        for variant, run in variants.items():
            times[variant].append(run(dataset, repeat))
        print(f"{name} {mode} {threads} threads, repeat {repeat}: "
              + ", ".join(f"{v} {images / t[-1]:.0f}/s" for v, t in times.items()), flush=True)
    if args.compile and mode == "train":
        times["evaluator compile=true (1 run, compile time included)"] = [
            evaluator_loop(dataset, args.epochs, args.batch_size, 0, compile=True)]
    base = images / statistics.median(times["plain DataLoader loop"])
    rows = []
    for variant, seconds in times.items():
        speed = images / statistics.median(seconds)
        rows.append({"dataset": name, "mode": mode, "threads": threads, "variant": variant,
                     "train_images": len(dataset.train), "epochs": args.epochs, "batch_size": args.batch_size,
                     "repeats": len(seconds), "images_per_s": round(speed, 1),
                     "ratio_vs_plain": round(speed / base, 3),
                     "min_ratio": round(min(images / s for s in seconds) / base, 3),
                     "max_ratio": round(max(images / s for s in seconds) / base, 3)})
    return rows


def write(rows: list[dict[str, Any]], args: argparse.Namespace, loads: list[float]) -> None:
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out.with_suffix(".csv"), "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    command = "python bench/train_speed.py " + " ".join(sys.argv[1:])
    lines = [
        "# Train evaluator speed vs a plain PyTorch loop",
        "",
        f"- machine: {machine()}",
        f"- load average (1 min) at start / end: {loads[0]:.1f} / {loads[1]:.1f}",
        f"- command: `{command.strip()}`",
        f"- model: 3-stage CNN (32-64-128 channels, BN, ReLU), Adam 1e-3, batch {args.batch_size}, "
        f"{args.epochs} epochs, medians of {args.repeats} interleaved repeats",
        "- `train` mode: 256 validation images, no test (the training loop); `trial` mode: full validation "
        "each epoch and the test split at the end (a search trial)",
        "",
        "| dataset | mode | threads | variant | train images | images/s | ratio vs plain (min-max) |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        spread = f"{r['min_ratio']:.2f}-{r['max_ratio']:.2f}"
        lines.append(f"| {r['dataset']} | {r['mode']} | {r['threads']} | {r['variant']} | {r['train_images']} | "
                     f"{r['images_per_s']:.0f} | {r['ratio_vs_plain']:.2f} ({spread}) |")
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
