"""Every plot kind from a stored study (and a bench folder): the data drawn matches the store."""

from __future__ import annotations

import itertools
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

from nasforge.api import Study, plot_bench
from nasforge.cli.main import PLOT_KINDS, main
from nasforge.report import plots
from nasforge.report.decisions import importance
from nasforge.report.pareto import front_indices, pareto_trials


def svg_ids(path: Path) -> list[str]:
    return [el.get("id", "") for el in ET.parse(path).iter() if el.get("id")]


def test_cli_kinds_are_the_plot_kinds() -> None:
    assert PLOT_KINDS == plots.KINDS


def test_front_keeps_only_undominated_points() -> None:
    scores = [0.5, 0.9, 0.7, 0.9, 0.4, 0.95]
    costs = [10, 50, 20, 60, 5, 100]
    assert front_indices(scores, costs) == [4, 0, 2, 1, 5]  # (60, 0.9) is dominated by (50, 0.9)
    assert front_indices([], []) == []


def test_importance_finds_the_decision_that_matters() -> None:
    rng = np.random.default_rng(0)
    rows = [{"a": str(rng.integers(3)), "b": str(rng.integers(3))} for _ in range(300)]
    scores = [float(r["a"]) + 0.1 * rng.normal() for r in rows]
    ranked = importance(rows, scores)
    assert list(ranked) == ["a", "b"]
    assert ranked["a"] > 0.9 and ranked["b"] < 0.05


def test_history_and_pareto_draw_the_stored_trials(made_study: tuple[str, dict[str, float]], tmp_path: Path) -> None:
    storage, scores = made_study
    study = Study("made", storage)
    fig = study.plot_history(out=tmp_path / "h.svg")
    by_number = fig.axes[0]
    points = next(c for c in by_number.collections if c.get_gid() == "trials").get_offsets()
    assert sorted(int(x) for x, _ in points) == sorted(int(n) for n in scores)
    best = next(line for line in by_number.lines if line.get_gid() == "best").get_ydata()
    assert list(best) == sorted(best) and best[-1] == max(scores.values())
    assert {"trials", "best"} <= set(svg_ids(tmp_path / "h.svg"))

    fig = study.plot_pareto(out=tmp_path / "p.png")
    assert (tmp_path / "p.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [ax.get_xlabel() for ax in fig.axes] == ["params", "flops"]
    front = pareto_trials(study.trials, "params")
    drawn = next(line for line in fig.axes[0].lines if line.get_gid() == "front-params")
    assert list(drawn.get_xdata()) == [t.params for t in front]
    assert 1 <= len(front) < len(scores)
    assert all(b.score > a.score and (b.params or 0) >= (a.params or 0) for a, b in itertools.pairwise(front))


def test_curves_importance_parallel(made_study: tuple[str, dict[str, float]], tmp_path: Path) -> None:
    storage, scores = made_study
    study = Study("made", storage)
    fig = study.plot_curves(trials=[0, 3], out=tmp_path / "c.svg")
    ids = set(svg_ids(tmp_path / "c.svg"))
    assert {"curve-0-valid_accuracy", "curve-3-valid_accuracy", "curve-0-train_loss"} <= ids
    line = next(ln for ln in fig.axes[0].lines if ln.get_gid() == "curve-3-valid_accuracy")
    assert list(line.get_xdata()) == [1, 2, 3]
    assert line.get_ydata()[-1] == pytest.approx(scores["3"])
    default = study.plot_curves()  # the best five
    assert len(default.axes[0].lines) == 5

    fig = study.plot_importance(out=tmp_path / "i.png")
    bars = fig.axes[0].patches
    assert 0 < len(bars) <= 20 and all(0 <= b.get_width() <= 1 for b in bars)
    fig = study.plot_parallel(out=tmp_path / "par.svg")
    lines = [ln for ln in fig.axes[0].lines if (ln.get_gid() or "").startswith("line-")]
    assert len(lines) == len(scores)


def test_bench_plot_reads_a_bench_folder(shared_data: Path, tmp_path: Path) -> None:
    table = shared_data / "nasbench201" / "nb201_12epoch.csv"
    out = tmp_path / "bench"
    assert main(["bench", "--table", str(table), "--strategies", "random,evolution", "--queries", "12",
                 "--seeds", "1", "--jobs", "1", "--out", str(out)]) == 0
    fig = plot_bench(out, tmp_path / "b.svg")
    assert {ln.get_gid() for ln in fig.axes[0].lines} == {"bench-random", "bench-evolution"}
    assert all(len(ln.get_xdata()) == 12 for ln in fig.axes[0].lines)
    assert {"bench-random", "bench-evolution"} <= set(svg_ids(tmp_path / "b.svg"))


def test_cli_plot_every_study_kind_and_bad_input(made_study: tuple[str, dict[str, float]], tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    storage, _ = made_study
    for kind in ("history", "curves", "pareto", "importance", "parallel"):
        out = tmp_path / f"{kind}.png"
        assert main(["plot", "--study", "made", "--storage", storage, "--kind", kind, "--out", str(out)]) == 0
        assert out.stat().st_size > 5000
    capsys.readouterr()
    bad = [
        (["--kind", "history", "--out", str(tmp_path / "x.jpg")], ".png or .svg"),
        (["--kind", "history", "--out", str(tmp_path / "no" / "x.png")], "does not exist"),
        (["--kind", "bench", "--out", str(tmp_path / "x.png")], "--bench DIR"),
        (["--kind", "history", "--trials", "1", "--out", str(tmp_path / "x.png")], "--kind curves"),
        (["--kind", "curves", "--trials", "99", "--out", str(tmp_path / "x.png")], "no trial 99"),
    ]
    for args, message in bad:
        assert main(["plot", "--study", "made", "--storage", storage, *args]) == 2
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1
    assert main(["plot", "--kind", "bench", "--bench", str(tmp_path), "--out", str(tmp_path / "x.png")]) == 2
    assert "no curves.csv" in capsys.readouterr().err
    assert not (tmp_path / "x.png").exists()


def test_pareto_plot_of_a_multi_objective_study_is_its_own_front(tmp_path: Path) -> None:
    """A study searched with --objectives: the plot's front is the one `trials --pareto` lists, over the
    study's objectives (here latency), not accuracy against params."""
    from tests.report.conftest import write_objectives_study

    storage = f"sqlite:///{tmp_path / 'mo.db'}"
    write_objectives_study(storage)
    study = Study("mo", storage)
    fig = study.plot_pareto(out=tmp_path / "mo.svg")
    assert [ax.get_xlabel() for ax in fig.axes] == ["latency_ms"]
    assert fig.axes[0].get_ylabel() == "valid_accuracy"
    front = sorted(study.pareto_front(), key=lambda t: t.metrics["latency_ms"])
    drawn = next(line for line in fig.axes[0].lines if line.get_gid() == "front-latency_ms")
    assert list(drawn.get_xdata()) == [t.metrics["latency_ms"] for t in front]
    assert list(drawn.get_ydata()) == [t.metrics["valid_accuracy"] for t in front]
    by_params = {t.number for t in pareto_trials(study.trials, "params")}
    assert {t.number for t in front} != by_params, "the fixture's latency front differs from its params front"
    trials = next(c for c in fig.axes[0].collections if c.get_gid() == "trials-latency_ms").get_offsets()
    assert len(trials) == 14  # complete trials only: the pruned and the failed one are not drawn

    write_objectives_study(storage, name="three", objectives=("valid_accuracy:max", "latency_ms:min",
                                                              "peak_memory_mb:min"))
    three = Study("three", storage)
    fig = three.plot_pareto()
    assert [ax.get_xlabel() for ax in fig.axes] == ["latency_ms", "peak_memory_mb"]
    marked = next(line for line in fig.axes[1].lines if line.get_gid() == "front-peak_memory_mb")
    assert sorted(marked.get_xdata()) == sorted(t.metrics["peak_memory_mb"] for t in three.pareto_front())
    assert marked.get_linewidth() == 0.0  # a three-objective front is not a step line in two dimensions
