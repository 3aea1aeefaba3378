"""The latency measurement's own noise: the same cnn models timed many times in one run (issue 18).

Each round rebuilds every model from its architecture (as the cost precheck does before a trial) and
times it with nasforge's own `measure_latency` under the settings a search uses (`--latency-option`
defaults unless given: 1 thread, batch 1, 10 warm-up calls, 30 timed calls, the median kept). Models are
timed in turn, round after round, so a slow spell of the machine falls on all of them alike. The spread
of the per-call medians across rounds is the noise a `--max-latency-ms` limit sees; the within-call
spread (IQR / median of the 30 timed calls) is reported beside it.

    /work/tools/cpu-quiet python bench/latency_noise.py --rounds 300    # bench/results/latency_noise.{md,csv}
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from cli_runs import now, write_csv  # noqa: E402

from nasforge.data.base import DataSpec  # noqa: E402
from nasforge.evaluators.metrics import example_input, model_flops  # noqa: E402
from nasforge.objectives.latency import LatencySettings, cpu_name, measure_latency  # noqa: E402
from nasforge.spaces.cnn import CNNSpace  # noqa: E402

# Fashion-MNIST shaped (1x28x28, 10 classes): the input of the latency-constrained search (cnn_latency.py).
SPEC = DataSpec(task="classification", input_shape=(1, 28, 28), num_outputs=10)
MODELS: dict[str, list[str]] = {
    "tiny": ["conv_3x3_16", "fc_64"],
    "small": ["conv_3x3_32", "max_pool_3x3", "conv_3x3_32", "fc_128"],
    "medium": ["conv_3x3_32", "res_conv_32", "downsample_conv_64", "res_conv_64", "fc_128"],
    "large": ["conv_5x5_64", "res_conv_64", "conv_3x3_64", "downsample_conv_128", "res_fc_256", "fc_512"],
}


def quartiles(values: list[float]) -> tuple[float, float]:
    q = statistics.quantiles(values, n=4)
    return q[0], q[2]


def summarise(name: str, blocks: list[str], params: float, flops: float | None, medians: list[float],
              within: list[float]) -> dict[str, Any]:
    med = statistics.median(medians)
    q1, q3 = quartiles(medians)
    return {
        "model": name, "blocks": " > ".join(blocks), "params": int(params),
        "flops": int(flops) if flops is not None else 0, "rounds": len(medians),
        "median_ms": round(med, 4), "q1_ms": round(q1, 4), "q3_ms": round(q3, 4),
        "iqr_over_median": round((q3 - q1) / med, 4),
        "rel_sd": round(statistics.stdev(medians) / statistics.mean(medians), 4),
        "min_ms": round(min(medians), 4), "max_ms": round(max(medians), 4),
        "max_over_median": round(max(medians) / med, 4), "min_over_median": round(min(medians) / med, 4),
        "within_call_iqr_over_median": round(statistics.median(within), 4),
    }


def reading(rows: list[dict[str, Any]], medians: dict[str, list[float]], rounds: int) -> list[str]:
    """What the numbers say for a latency limit, computed from this run."""
    worst = max(rows, key=lambda r: r["max_over_median"])
    slow = [r for r in range(rounds) if sum(medians[n][r] > 1.2 * statistics.median(medians[n]) for n in medians)
            == len(medians)]
    iqr = [100 * r["iqr_over_median"] for r in rows]
    return [
        f"- Typical round-to-round noise (IQR / median) is {min(iqr):.1f}-{max(iqr):.1f} % across the four models; "
        f"the tails are longer: the slowest round of a model was up to {worst['max_over_median']:.2f}x its "
        f"median ({worst['model']}).",
        f"- {len(slow)} of {rounds} rounds were over 1.2x the median for every model at once: slow spells of "
        "the (virtual) machine, not of one model. The 30 timed calls of one measurement agree far better "
        "(within-call IQR / median "
        f"{min(100 * r['within_call_iqr_over_median'] for r in rows):.1f}-"
        f"{max(100 * r['within_call_iqr_over_median'] for r in rows):.1f} %), so a single measurement's "
        "median hides a slow spell it falls in.",
        "- For `--max-latency-ms L`: an architecture whose true median is within about the IQR of L can land "
        "on either side of it when measured again; a measurement taken during a slow spell can prune an "
        "architecture that usually meets L (the safe direction), and re-timing a stored trial can exceed L "
        "when the re-timing falls in one.",
    ]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=300)
    p.add_argument("--threads", type=int, default=LatencySettings.threads)
    p.add_argument("--batch-size", type=int, default=LatencySettings.batch_size)
    p.add_argument("--warmup", type=int, default=LatencySettings.warmup)
    p.add_argument("--repeats", type=int, default=LatencySettings.repeats)
    p.add_argument("--out", default=str(ROOT / "bench" / "results"))
    args = p.parse_args()
    settings = LatencySettings(threads=args.threads, batch_size=args.batch_size, warmup=args.warmup,
                               repeats=args.repeats)
    space = CNNSpace()
    archs = {name: space.from_json({"blocks": blocks}) for name, blocks in MODELS.items()}
    started, t0 = now(), time.perf_counter()
    medians: dict[str, list[float]] = {name: [] for name in MODELS}
    within: dict[str, list[float]] = {name: [] for name in MODELS}
    costs: dict[str, tuple[float, float | None]] = {}
    device = torch.device("cpu")
    example = example_input(SPEC.task, SPEC.input_shape)
    for r in range(args.rounds):
        for name, arch in archs.items():
            torch.manual_seed(r)
            model = space.build(arch, SPEC)
            if name not in costs:
                costs[name] = (float(sum(q.numel() for q in model.parameters())),
                               model_flops(model, SPEC.task, SPEC.input_shape))
            timing = measure_latency(model, example, settings, device)
            medians[name].append(timing.median_ms)
            within[name].append(timing.spread)
        print(f"round {r + 1}/{args.rounds}: " + ", ".join(f"{n} {medians[n][-1]:.3f}" for n in MODELS), flush=True)
    wall = time.perf_counter() - t0
    rows = [summarise(n, MODELS[n], *costs[n], medians[n], within[n]) for n in MODELS]
    out = Path(args.out)
    write_csv(rows, out / "latency_noise.csv")
    write_csv([{"round": r + 1, **{n: round(medians[n][r], 4) for n in MODELS}} for r in range(args.rounds)],
              out / "latency_noise_rounds.csv")
    command = "/work/tools/cpu-quiet python bench/latency_noise.py " + " ".join(sys.argv[1:])
    lines = [
        "# Latency measurement noise (issue 18): the same cnn models timed repeatedly in one run",
        "",
        f"Machine: {cpu_name()}, {os.cpu_count()} cores (VM shared by the team; this run held it alone through "
        f"/work/tools/cpu-quiet), Python {platform.python_version()}, torch {torch.__version__}. "
        f"Date: {started}, {wall:.0f} s wall.",
        "",
        f"Command: `{command.strip()}`",
        "",
        f"- What is timed: nasforge's `measure_latency` (nasforge/objectives/latency.py), the measurement "
        f"`--max-latency-ms` uses: eval mode, `torch.inference_mode`, {settings.threads} thread(s), batch "
        f"{settings.batch_size}, {settings.warmup} warm-up calls, {settings.repeats} timed calls, the median kept.",
        f"- Input 1x28x28, 10 classes (Fashion-MNIST's shape). Each of {args.rounds} rounds rebuilds each model "
        "from its architecture (fresh weights, as the precheck before a trial does) and times it; models in "
        "turn, so slow spells of the machine hit all of them.",
        "- Across rounds (one value per round = one latency a search would store): median, quartiles, IQR / "
        "median, relative sd (sd / mean), min and max. \"within call\": the median over rounds of one call's "
        "IQR / median over its timed calls. Per-round values: latency_noise_rounds.csv.",
        "",
        "| model | blocks | params | FLOPs | median ms | Q1-Q3 ms | IQR/median | rel sd | min-max ms | "
        "max/median | within call IQR/median |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(f"| {row['model']} | {row['blocks']} | {row['params']:,} | {row['flops']:,} | "
                     f"{row['median_ms']:.3f} | {row['q1_ms']:.3f}-{row['q3_ms']:.3f} | "
                     f"{100 * row['iqr_over_median']:.1f} % | {100 * row['rel_sd']:.1f} % | "
                     f"{row['min_ms']:.3f}-{row['max_ms']:.3f} | {row['max_over_median']:.2f} | "
                     f"{100 * row['within_call_iqr_over_median']:.1f} % |")
    lines += ["", "## Reading", "", *reading(rows, medians, args.rounds), ""]
    (out / "latency_noise.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
