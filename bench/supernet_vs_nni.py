"""DARTS supernet step: nasforge against NNI 3.0, side by side on the same space, data and batch.

    python bench/supernet_vs_nni.py --nni-python /path/to/venv/bin/python
    python bench/supernet_vs_nni.py --nni-python ... --cells 1,5 --repeats 3 --steps 10

The peer is NNI 3.0 (`nni.nas.hub.pytorch.NasBench201` turned into a supernet by `nni.nas.strategy.DARTS`),
installed in its own virtual environment beside the same torch (see bench/results/supernet_vs_nni.md for
the commands). Both supernets are the NAS-Bench-201 skeleton with `--channels` stem channels and
`--cells` search cells per stage, batch norm with affine parameters (NNI's ops; nasforge's
`affine=True` option), so they have the same weights; the script checks the counts match.

One step is one first-order DARTS iteration, as each framework's search runs it:

- nasforge: `DARTS._arch_step` (α's gradient from the validation batch) then `DARTS._weight_step`
  (SGD with momentum, weight decay and gradient clipping), the code `nasforge search --strategy darts` runs;
- NNI: `DartsLightningModule.training_step`'s two phases written out without Lightning around them
  (arch optimizer: zero_grad, loss on the validation batch, backward, Adam step; then the weights:
  zero_grad, loss on the training batch, backward, clip, SGD step). Leaving Lightning's per-batch
  bookkeeping out only favours NNI.

Both run the same optimizers and hyper-parameters (DARTS's CIFAR settings) on the same batches of the
CIFAR-10 subset. Each measurement is a fresh process; frameworks alternate, repeat by repeat, so a change
of machine load hits both, and the medians are compared as ratios. Peak memory is the process's resident
size sampled every millisecond during all steps (warm-up included), less its size just before the first
(the data, model and imports are excluded, as they differ in ways that are not the supernet: NNI imports
Lightning); the whole-process peak is recorded too.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "cifar10_small" / "cifar10_jpeg_q75_small_5k_1k.npz"
OUT = ROOT / "bench" / "results"
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

FRAMEWORKS = ("nasforge", "nni")
PAGE = os.sysconf("SC_PAGE_SIZE")


# ---- measuring -----------------------------------------------------------------------------------
def rss_bytes() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * PAGE


class PeakRSS:
    """Samples the resident size every millisecond on a thread; `peak` is the largest seen."""

    def __init__(self) -> None:
        self.peak = rss_bytes()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_bytes())
            time.sleep(0.001)

    def __enter__(self) -> PeakRSS:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_bytes())


# ---- the two steps -------------------------------------------------------------------------------
HP = {"learning_rate": 0.025, "momentum": 0.9, "weight_decay": 3e-4, "grad_clip": 5.0,
      "arch_learning_rate": 3e-4, "arch_betas": (0.5, 0.999), "arch_weight_decay": 1e-3}


def batches(args: argparse.Namespace, count: int) -> list[tuple[Any, Any, Any, Any]]:
    """`count` (train x, train y, valid x, valid y) batches, the same rows for both frameworks."""
    import numpy as np
    import torch

    data = np.load(args.data)
    x = torch.as_tensor(data["x_train"], dtype=torch.float32).permute(0, 3, 1, 2).contiguous() / 255.0
    y = torch.as_tensor(data["y_train"], dtype=torch.int64)
    b = args.batch_size
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(args.seed))
    half = len(y) // 2
    out = []
    for i in range(count):
        s = (i * b) % (half - b)
        train, valid = order[s:s + b], order[half + s:half + s + b]
        out.append((x[train], y[train], x[valid], y[valid]))
    return out


def nasforge_step(args: argparse.Namespace) -> tuple[Any, list[Any], Any]:
    """The supernet, its α and one step of `nasforge search --strategy darts --order 1`."""
    import torch

    from nasforge.data.base import DataSpec
    from nasforge.oneshot.darts import DARTS, Batch, ImageTask
    from nasforge.oneshot.supernet import build_supernet
    from nasforge.spaces.nb201 import NB201Space

    spec = DataSpec(task="classification", input_shape=(3, 32, 32), num_outputs=10)
    net = build_supernet(NB201Space(), spec, cells_per_stage=args.cells, channels=args.channels,
                         affine=True)
    net.train()
    darts = DARTS(order=1, batch_size=args.batch_size)
    task = ImageTask.__new__(ImageTask)  # only its loss and advance are used: the batches come from here
    weights = net.weight_parameters()
    w_opt = torch.optim.SGD(weights, lr=HP["learning_rate"], momentum=HP["momentum"],
                            weight_decay=HP["weight_decay"])
    a_opt = torch.optim.Adam(net.arch_parameters(), lr=HP["arch_learning_rate"], betas=HP["arch_betas"],
                             weight_decay=HP["arch_weight_decay"])

    def step(xt: Any, yt: Any, xv: Any, yv: Any) -> float:
        darts._arch_step(net, task, Batch(xt, yt), Batch(xv, yv), a_opt, xi=HP["learning_rate"])
        return darts._weight_step(net, task, Batch(xt, yt), w_opt, weights, HP["grad_clip"])

    return net, net.arch_parameters(), step


def nni_step(args: argparse.Namespace) -> tuple[Any, list[Any], Any]:
    """NNI's supernet, its α and `DartsLightningModule.training_step`'s two phases."""
    import warnings

    import torch
    import torch.nn.functional as F

    warnings.filterwarnings("ignore")
    from nni.nas.hub.pytorch import NasBench201
    from nni.nas.strategy import DARTS as NNIDarts

    net = NNIDarts().mutate_model(NasBench201(stem_out_channels=args.channels,
                                              num_modules_per_stack=args.cells, num_labels=10))
    net.train()
    alphas = list({id(p): p for m in net.modules() if hasattr(m, "arch_parameters")
                   for p in m.arch_parameters()}.values())
    arch_ids = {id(p) for p in alphas}
    weights = [p for p in net.parameters() if id(p) not in arch_ids]
    w_opt = torch.optim.SGD(weights, lr=HP["learning_rate"], momentum=HP["momentum"],
                            weight_decay=HP["weight_decay"])
    a_opt = torch.optim.Adam(alphas, lr=HP["arch_learning_rate"], betas=HP["arch_betas"],
                             weight_decay=HP["arch_weight_decay"])

    def step(xt: Any, yt: Any, xv: Any, yv: Any) -> float:
        a_opt.zero_grad()
        F.cross_entropy(net(xv), yv).backward()
        a_opt.step()
        w_opt.zero_grad()
        loss = F.cross_entropy(net(xt), yt)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(weights, HP["grad_clip"])
        w_opt.step()
        return float(loss.detach())

    return net, alphas, step


def worker(args: argparse.Namespace) -> None:
    """One measurement in this process; prints one JSON line."""
    import resource

    import torch

    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    net, alphas, step = (nasforge_step if args.framework == "nasforge" else nni_step)(args)
    alpha_count = sum(p.numel() for p in alphas)
    weight_count = sum(p.numel() for p in net.parameters()) - alpha_count
    data = batches(args, args.warmup + args.steps)
    before = rss_bytes()
    times, losses = [], []
    with PeakRSS() as peak:
        for i, (xt, yt, xv, yv) in enumerate(data):
            start = time.perf_counter()
            losses.append(step(xt, yt, xv, yv))
            if i >= args.warmup:
                times.append(time.perf_counter() - start)
    print(json.dumps({"framework": args.framework, "cells": args.cells, "step_s": statistics.median(times),
                      "step_mem_mb": (peak.peak - before) / 2**20,
                      "process_peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
                      "weights": weight_count, "alphas": alpha_count, "last_loss": losses[-1],
                      "torch": torch.__version__}))


# ---- the side-by-side run ------------------------------------------------------------------------
def measure(args: argparse.Namespace, framework: str, cells: int) -> dict[str, Any]:
    python = sys.executable if framework == "nasforge" else args.nni_python
    cmd = [python, __file__, "--worker", framework, "--cells", str(cells), "--channels", str(args.channels),
           "--batch-size", str(args.batch_size), "--steps", str(args.steps), "--warmup", str(args.warmup),
           "--threads", str(args.threads), "--data", args.data, "--seed", str(args.seed)]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{framework} worker failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def version_of(python: str, module: str) -> str:
    code = f"import importlib.metadata as m; print(m.version({module!r}))"
    done = subprocess.run([python, "-c", code], capture_output=True, text=True)
    return done.stdout.strip() or "?"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--worker", choices=FRAMEWORKS, dest="framework", help=argparse.SUPPRESS)
    p.add_argument("--nni-python", default=os.environ.get("NNI_PYTHON", ""),
                   help="python of an environment with nni==3.0 and the same torch (or $NNI_PYTHON)")
    p.add_argument("--data", default=str(DATA))
    p.add_argument("--cells", default="1,5", help="search cells per stage (comma list; NAS-Bench-201 uses 5)")
    p.add_argument("--channels", type=int, default=16, help="stem channels (NAS-Bench-201: 16)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--steps", type=int, default=10, help="timed steps per measurement")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--repeats", type=int, default=3, help="fresh processes per framework and size, alternating")
    p.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=str(OUT / "supernet_vs_nni"))
    args = p.parse_args()
    if args.framework:
        args.cells = int(args.cells)
        worker(args)
        return
    if not args.nni_python:
        raise SystemExit("give --nni-python (an environment with nni==3.0); see the module docstring")
    rows: list[dict[str, Any]] = []
    for cells in [int(c) for c in args.cells.split(",")]:
        for repeat in range(args.repeats):
            for framework in FRAMEWORKS:
                row = measure(args, framework, cells)
                row["repeat"] = repeat
                rows.append(row)
                print(json.dumps(row), flush=True)
    write(args, rows)


def write(args: argparse.Namespace, rows: list[dict[str, Any]]) -> None:
    from cli_runs import now, write_csv

    out = Path(args.out)
    write_csv(rows, out.with_suffix(".csv"))
    command = "python bench/supernet_vs_nni.py --nni-python NNI_VENV/bin/python " + " ".join(
        f"--{k} {v}" for k, v in (("cells", args.cells), ("channels", args.channels),
                                  ("batch-size", args.batch_size), ("steps", args.steps),
                                  ("repeats", args.repeats), ("threads", args.threads)))
    lines = ["# DARTS supernet step: nasforge vs NNI 3.0", "",
             f"- machine: {platform.machine()}, {os.cpu_count()} cores, no GPU, Python {platform.python_version()}, "
             f"torch {rows[0]['torch']}, nni {version_of(args.nni_python, 'nni')}; finished {now()}",
             f"- command: `{command}`",
             f"- space: NAS-Bench-201 skeleton, {args.channels} stem channels, affine batch norm; data: CIFAR-10 "
             f"subset, batch {args.batch_size}; {args.threads} threads; one step = one first-order DARTS iteration "
             f"(α step on a validation batch, then a weight step); {args.steps} timed steps after {args.warmup} "
             f"warm-up, median; {args.repeats} fresh processes per framework, alternating",
             "- step memory: peak resident size during the steps less the size just before the first", "",
             "| cells per stage | weights (both) | nasforge step | NNI step | NNI / nasforge time | "
             "nasforge step memory | NNI step memory | nasforge / NNI memory |",
             "|---|---|---|---|---|---|---|---|"]
    for cells in sorted({r["cells"] for r in rows}):
        mine = [r for r in rows if r["cells"] == cells and r["framework"] == "nasforge"]
        peer = [r for r in rows if r["cells"] == cells and r["framework"] == "nni"]
        counts = {r["weights"] for r in mine + peer}
        if len(counts) != 1:
            raise SystemExit(f"weight counts differ at {cells} cells: {sorted(counts)}; not the same supernet")
        t_mine = statistics.median(r["step_s"] for r in mine)
        t_peer = statistics.median(r["step_s"] for r in peer)
        m_mine = statistics.median(r["step_mem_mb"] for r in mine)
        m_peer = statistics.median(r["step_mem_mb"] for r in peer)
        lines.append(f"| {cells} | {counts.pop()} | {t_mine * 1000:.0f} ms | {t_peer * 1000:.0f} ms | "
                     f"{t_peer / t_mine:.2f}× | {m_mine:.0f} MB | {m_peer:.0f} MB | {m_mine / m_peer:.2f}× |")
    lines += ["", "NNI was installed beside the same torch, in its own environment (NNI's one-shot code imports "
              "PyTorch Lightning; Lightning 2.0.9 imports `pkg_resources`, hence the setuptools pin):", "", "```",
              "python -m venv --system-site-packages NNI_VENV",
              'NNI_VENV/bin/pip install nni==3.0 torch==2.13.0 pytorch-lightning==2.0.9 "setuptools<70"', "```"]
    def peak(fw: str, cells: int) -> float:
        return statistics.median(r["process_peak_mb"] for r in rows if r["framework"] == fw and r["cells"] == cells)

    peaks = [f"{fw} {peak(fw, c):.0f} MB at {c} cells per stage" for c in sorted({r["cells"] for r in rows})
             for fw in FRAMEWORKS]
    lines += ["", "Whole-process peak resident size (imports, data and model included), median: "
              + ", ".join(peaks) + ".", ""]
    out.with_suffix(".md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
