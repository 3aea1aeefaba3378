"""Pictures of a search: history, learning curves, the cost front, decision importance, strategy comparison.

Each `*_figure` function takes what the store holds and returns a matplotlib `Figure` (made without pyplot,
so no display and no global state); `save` writes it as PNG or SVG. The artists that carry data have a
`gid`, which the SVG output keeps as element ids, so tests and tools can find them.
"""

from __future__ import annotations

import csv
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nasforge.core.errors import ConfigError, DataError
from nasforge.core.types import TrialState
from nasforge.objectives.spec import study_goals
from nasforge.report.decisions import decision_table, importance
from nasforge.report.pareto import COSTS, cost_of
from nasforge.storage.sql import StudyInfo, TrialRow

KINDS = ("history", "curves", "pareto", "importance", "parallel", "bench")
FORMATS = (".png", ".svg")
_STATE_COLOURS = {"complete": "#1f77b4", "failed": "#d62728", "pruned": "#ff7f0e"}

if TYPE_CHECKING:  # matplotlib is imported only when a figure is made
    from matplotlib.figure import Figure


def check_out(out: str | Path, flag: str = "--out") -> Path:
    """The output path, refused before any work unless it ends in .png or .svg and its folder exists."""
    from nasforge.core.paths import check_output

    if Path(out).suffix.lower() not in FORMATS:
        raise ConfigError(f"{flag} {out}: write a .png or .svg file")
    return check_output(out, flag)


def save(fig: Figure, out: str | Path) -> Path:
    path = check_out(out)
    try:
        fig.savefig(path, dpi=120)
    except OSError as exc:
        from nasforge.core.paths import write_failed

        raise write_failed(out, exc) from exc
    return path


def _figure(width: float, height: float) -> Figure:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def _objective_value(info: StudyInfo, t: TrialRow) -> float | None:
    value = t.metrics.get(info.objective)
    if value is None and t.score is not None:
        value = -t.score if info.direction == "minimize" else t.score
    return None if value is None else float(value)


def _finished(trials: Sequence[TrialRow]) -> list[TrialRow]:
    return sorted((t for t in trials if t.state.finished), key=lambda t: t.number)


def history_figure(info: StudyInfo, trials: Sequence[TrialRow]) -> Figure:
    """The objective of each trial and the best so far, against trial number and against wall time."""
    fig = _figure(10, 4)
    by_number, by_time = fig.subplots(1, 2, sharey=True)
    done = [t for t in _finished(trials) if t.state == TrialState.COMPLETE and _objective_value(info, t) is not None]
    starts = [t.started for t in trials if t.started is not None]
    origin = min(starts) if starts else None
    values = [_objective_value(info, t) or 0.0 for t in done]
    numbers = [t.number for t in done]
    seconds = [_seconds_since(origin, t.finished or t.started) for t in done]
    for ax, x, label in ((by_number, numbers, "trial number"), (by_time, seconds, "wall time (s)")):
        ax.scatter(x, values, s=14, alpha=0.6, color=_STATE_COLOURS["complete"], label="trial", gid="trials")
        order = sorted(range(len(x)), key=lambda i: (x[i], numbers[i]))
        ax.step([x[i] for i in order], _running_best([values[i] for i in order], info.direction), where="post",
                color="#2ca02c", lw=2, label="best so far", gid="best")
        ax.set_xlabel(label)
        ax.grid(alpha=0.3)
    failed = [t for t in trials if t.state == TrialState.FAILED]
    by_number.set_ylabel(info.objective)
    by_number.legend(loc="best", fontsize=8)
    fig.suptitle(f"{info.name}: {len(done)} complete, {len(failed)} failed ({info.direction} {info.objective})")
    return fig


def _seconds_since(origin: datetime | None, when: datetime | None) -> float:
    return (when - origin).total_seconds() if origin is not None and when is not None else 0.0


def _running_best(values: Sequence[float], direction: str) -> list[float]:
    out: list[float] = []
    for v in values:
        out.append(v if not out else (min(out[-1], v) if direction == "minimize" else max(out[-1], v)))
    return out


def curve_series(points: Sequence[tuple[int, str, float]]) -> dict[str, tuple[list[int], list[float]]]:
    """A stored curve (step, name, value) as {metric: (steps, values)}."""
    out: dict[str, tuple[list[int], list[float]]] = {}
    for step, name, value in points:
        steps, values = out.setdefault(name, ([], []))
        steps.append(step)
        values.append(value)
    return out


def curves_figure(info: StudyInfo, curves: Mapping[int, Sequence[tuple[int, str, float]]],
                  metric: str | None = None) -> Figure:
    """Learning curves of the given trials: the study's objective (or `metric`) and the training loss."""
    wanted = metric or info.objective
    series = {n: curve_series(points) for n, points in curves.items()}
    panels = [wanted] + (["train_loss"] if wanted != "train_loss" and any("train_loss" in s for s in series.values())
                         else [])
    fig = _figure(5 * len(panels) + 1, 4)
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    drawn = 0
    for ax, name in zip(axes, panels):
        for number, s in sorted(series.items()):
            if name in s:
                steps, values = s[name]
                ax.plot(steps, values, marker=".", lw=1.4, label=f"trial {number}", gid=f"curve-{number}-{name}")
                drawn += name == wanted
        ax.set_xlabel("epoch")
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.set_ylabel(name)
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=8, loc="best")
    if not drawn:
        axes[0].text(0.5, 0.5, f"no stored {wanted} curve for these trials", ha="center", va="center",
                     transform=axes[0].transAxes)
    fig.suptitle(f"{info.name}: learning curves")
    return fig


def pareto_figure(info: StudyInfo, trials: Sequence[TrialRow]) -> Figure:
    """The first objective against each other objective, the study's front marked: the front over the
    study's own `--objectives` (as `trials --pareto` lists it), or for a single-objective study over its
    objective and params, with a FLOPs panel (its own front) where trials store FLOPs."""
    from nasforge.objectives.pareto import pareto_front, study_objectives, trial_points
    from nasforge.objectives.spec import Objective

    objectives = study_objectives(info.config, info.objective, info.direction)
    if len(study_goals(info.config).objectives) >= 2:
        panels = [(o, objectives) for o in objectives[1:]]
    else:  # objective and params; FLOPs beside it where stored, each panel with its own two-objective front
        done = [t for t in trials if t.state == TrialState.COMPLETE]
        panels = [(Objective(c, "minimize"), [objectives[0], Objective(c, "minimize")]) for c in COSTS
                  if c == "params" or any(cost_of(t, c) is not None for t in done)]
    first = objectives[0]
    fig = _figure(5.5 * len(panels), 4.2)
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, (other, over) in zip(axes, panels):
        kept, points = trial_points(trials, over)
        column = [o.name for o in over].index(other.name)
        x = [other.sign * p[column] for p in points]
        y = [first.sign * p[0] for p in points]
        ax.scatter(x, y, s=14, alpha=0.5, color="#7f7f7f", label="trial", gid=f"trials-{other.name}")
        on_front = {id(t) for t in pareto_front(trials, over)}
        front = sorted((i for i, t in enumerate(kept) if id(t) in on_front), key=lambda i: (x[i], -y[i]))
        two = len(over) == 2  # a step line joins a two-objective front; more objectives: the front's points
        ax.plot([x[i] for i in front], [y[i] for i in front], drawstyle="steps-post" if two else "default",
                color="#d62728", lw=1.5 if two else 0.0, marker="o", ms=5, label=f"front ({len(front)})",
                gid=f"front-{other.name}")
        for i in front[:12]:
            ax.annotate(str(kept[i].number), (x[i], y[i]), textcoords="offset points", xytext=(4, 4), fontsize=7)
        if x and min(x) > 0 and max(x) / min(x) > 30:
            ax.set_xscale("log")
        if not kept:
            ax.text(0.5, 0.5, f"no complete trial stores {other.name}", ha="center", va="center",
                    transform=ax.transAxes)
        ax.set_xlabel(other.name)
        ax.set_ylabel(first.name)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="best")
    over_all = ", ".join(o.text() for o in objectives)
    fig.suptitle(f"{info.name}: {first.name} against cost, front over {over_all} (labels: trial numbers)")
    return fig


def importance_figure(info: StudyInfo, space: Any, trials: Sequence[TrialRow], top: int = 20) -> Figure:
    """How much of the objective's variance each decision explains on its own (see `decisions.importance`)."""
    rows, scores = decision_table(space, trials)
    ranked = list(importance(rows, scores).items())[:top]
    fig = _figure(8, max(2.5, 0.32 * len(ranked) + 1.2))
    ax = fig.subplots()
    names = [n for n, _ in ranked][::-1]
    ax.barh(names, [v for _, v in ranked][::-1], color="#1f77b4", gid="importance")
    ax.set_xlabel("share of the objective's variance explained (epsilon²)")
    ax.set_xlim(0, max([v for _, v in ranked] + [0.05]) * 1.1)
    ax.grid(alpha=0.3, axis="x")
    if not ranked:
        ax.text(0.5, 0.5, "too few complete trials, or no decision varies", ha="center", va="center",
                transform=ax.transAxes)
    ax.set_title(f"{info.name}: decision importance over {len(scores)} complete trials", fontsize=10)
    return fig


def parallel_figure(info: StudyInfo, space: Any, trials: Sequence[TrialRow], top: int = 8) -> Figure:
    """Parallel coordinates: the most important decisions (values spread on each axis) and the objective."""
    from matplotlib import colormaps

    rows, scores = decision_table(space, trials)
    done = [t for t in trials if t.state == TrialState.COMPLETE and t.score is not None
            and _objective_value(info, t) is not None]
    ranked = list(importance(rows, scores))[:top] or sorted({n for r in rows for n in r})[:top]
    fig = _figure(max(6.0, 1.3 * (len(ranked) + 1) + 1), 4.5)
    ax = fig.subplots()
    if not rows or not ranked:
        ax.text(0.5, 0.5, "no complete trials to draw", ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
        return fig
    levels = {name: sorted({r[name] for r in rows if name in r}, key=_natural) for name in ranked}
    objective = list(scores)  # oriented: higher is better, also for a minimised objective
    low, high = min(objective), max(objective)
    span = (high - low) or 1.0
    cmap = colormaps["viridis"]
    order = sorted(range(len(rows)), key=lambda i: objective[i])  # best drawn last, on top
    for i in order:
        ys = []
        for name in ranked:
            values = levels[name]
            value = rows[i].get(name)
            ys.append(values.index(value) / max(1, len(values) - 1) if value is not None else float("nan"))
        ys.append((objective[i] - low) / span)
        ax.plot(range(len(ranked) + 1), ys, color=cmap((objective[i] - low) / span), alpha=0.55, lw=1,
                gid=f"line-{i}")
    for k, name in enumerate(ranked):
        ax.axvline(k, color="#444", lw=0.8)
        for j, value in enumerate(levels[name]):
            ax.text(k, j / max(1, len(levels[name]) - 1), f" {_short(value)}", fontsize=7, va="center",
                    bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none", "alpha": 0.8})
    shown = [_objective_value(info, t) or 0.0 for t in done] or [0.0]
    ax.axvline(len(ranked), color="#444", lw=0.8)
    worst, best = (max(shown), min(shown)) if info.direction == "minimize" else (min(shown), max(shown))
    ax.text(len(ranked), 0, f" {worst:.4g}", fontsize=7, va="center")
    ax.text(len(ranked), 1, f" {best:.4g}", fontsize=7, va="center")
    ax.set_xticks(range(len(ranked) + 1), [*ranked, info.objective], rotation=20, ha="right", fontsize=8)
    ax.set_yticks([])
    ax.set_xlim(-0.2, len(ranked) + 0.6)
    ax.set_title(f"{info.name}: {len(rows)} complete trials, coloured by objective (bright: best)", fontsize=10)
    return fig


def _natural(value: str) -> tuple[int, float, str]:
    try:
        return (0, float(value), value)
    except ValueError:
        return (1, 0.0, value)


def _short(value: str, width: int = 14) -> str:
    return value if len(value) <= width else value[: width - 1] + "…"


def read_bench(folder: str | Path) -> dict[str, tuple[list[int], list[float], list[float]]]:
    """{strategy: (queries, mean test, std test)} from a `nasforge bench` folder's curves.csv."""
    path = Path(folder) / "curves.csv"
    if not path.is_file():
        raise DataError(f"--bench {folder}: no curves.csv (a folder written by `nasforge bench --out`)")
    out: dict[str, tuple[list[int], list[float], list[float]]] = {}
    try:
        with open(path, newline="") as f:
            for row in csv.DictReader(f):
                q, mean, std = out.setdefault(row["strategy"], ([], [], []))
                q.append(int(row["queries"]))
                mean.append(float(row["mean_test"]))
                std.append(float(row["std_test"]))
    except (KeyError, ValueError, TypeError) as exc:
        raise DataError(f"--bench {folder}: curves.csv is not a bench curve file ({exc})") from exc
    if not out:
        raise DataError(f"--bench {folder}: curves.csv has no rows")
    return out


def bench_figure(folder: str | Path) -> Figure:
    """Strategies compared: mean ± std test accuracy of the best-by-validation architecture per query."""
    curves = read_bench(folder)
    run = _run_info(Path(folder))
    fig = _figure(7.5, 4.5)
    ax = fig.subplots()
    for name, (q, mean, std) in curves.items():
        line = ax.plot(q, mean, lw=1.6, label=name, gid=f"bench-{name}")[0]
        ax.fill_between(q, [m - s for m, s in zip(mean, std)], [m + s for m, s in zip(mean, std)],
                        color=line.get_color(), alpha=0.12)
    lows = [mean[min(9, len(mean) - 1)] for _, mean, _ in curves.values()]
    top = max(max(mean) for _, mean, _ in curves.values())
    ax.set_ylim(min(lows) - 0.5, top + 0.3)
    ax.set_xlabel("queries (distinct architectures evaluated)")
    ax.set_ylabel("test accuracy of best-valid architecture")
    seeds = run.get("seeds", "?")
    ax.set_title(f"{Path(run.get('table', '')).name or Path(folder).name}, {run.get('dataset', '')}: "
                 f"mean ± std over {seeds} seeds", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    return fig


def _run_info(folder: Path) -> dict[str, str]:
    path = folder / "run.txt"
    if not path.is_file():
        return {}
    return dict(line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)
