"""`nasforge bench` through the real runner and store, on the real NAS-Bench-201 table."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import pytest

from nasforge.bench.compare import best_so_far
from nasforge.cli.main import main
from nasforge.storage.sql import Store


def test_best_so_far_follows_validation_not_test() -> None:
    points = [(80.0, 85.0), (82.0, 84.0), (81.0, 90.0), (82.0, 99.0)]
    assert list(best_so_far(points, 5)) == [85.0, 84.0, 84.0, 84.0, 84.0]


def read(path: Path) -> list[dict[str, str]]:
    with open(path) as f:
        return list(csv.DictReader(f))


def test_bench_writes_summary_curves_and_plot(shared_data: Path, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    table = shared_data / "nasbench201" / "nb201_12epoch.csv"
    args = ["bench", "--table", str(table), "--dataset", "cifar100", "--strategies", "random,evolution",
            "--queries", "30", "--seeds", "2", "--jobs", "1"]
    assert main([*args, "--out", str(tmp_path / "a")]) == 0
    printed = capsys.readouterr().out
    assert "mean_test" in printed and "evolution" in printed
    summary = read(tmp_path / "a" / "summary.csv")
    assert list(summary[0]) == ["strategy", "queries", "mean_test", "std_test", "mean_valid", "seeds"]
    assert {(r["strategy"], r["queries"]) for r in summary} == {("random", "25"), ("evolution", "25")}
    assert all(r["seeds"] == "2" and 0 < float(r["mean_test"]) < 100 for r in summary)
    curves = read(tmp_path / "a" / "curves.csv")
    assert len(curves) == 2 * 30
    random_curve = [float(r["mean_test"]) for r in curves if r["strategy"] == "random"]
    assert (tmp_path / "a" / "curves.png").stat().st_size > 1000
    # same command, same numbers; and a second run in the same folder resumes (no new trials)
    assert main([*args, "--out", str(tmp_path / "b")]) == 0
    assert read(tmp_path / "b" / "summary.csv") == summary
    assert main([*args, "--out", str(tmp_path / "a")]) == 0
    assert [float(r["mean_test"]) for r in read(tmp_path / "a" / "curves.csv")
            if r["strategy"] == "random"] == random_curve


def test_bench_bad_table_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "t.csv"
    bad.write_text("arch_str,foo_valid\nx,1\n")
    code = main(["bench", "--table", str(bad), "--dataset", "cifar10", "--out", str(tmp_path / "o"),
                 "--seeds", "1", "--queries", "5"])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and "cifar10" in err
    assert main(["bench", "--table", str(bad), "--strategies", "nope", "--out", str(tmp_path / "o")]) == 2
    assert "unknown strategy 'nope'" in capsys.readouterr().err


def test_bench_reads_the_200_epoch_table_by_column_names(shared_data: Path, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    table = shared_data / "nasbench201" / "nb201_cifar10valid_200epoch.csv"
    args = ["bench", "--table", str(table), "--strategies", "random", "--queries", "10", "--seeds", "2",
            "--jobs", "1", "--out", str(tmp_path / "e200")]
    assert main(args) == 2  # no cifar10_valid column in that layout: one line naming the fix
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "valid_column" in err
    assert main([*args, "--valid-column", "valid-accuracy", "--test-column", "test-accuracy"]) == 0
    summary = read(tmp_path / "e200" / "summary.csv")
    # the 200-epoch scores, not the 12-epoch ones: every test accuracy is one of that table's values
    with open(table) as f:
        tests = {float(r["test-accuracy"]) for r in csv.DictReader(f)}
    assert summary[0]["queries"] == "10" and len(read(tmp_path / "e200" / "curves.csv")) == 10
    store = Store(f"sqlite:///{tmp_path / 'e200' / 'bench.db'}")
    rows = store.trials(store.require_study("bench-cifar10-random-q10-s0").id)
    assert len(rows) == 10 and all(r.metrics["test_accuracy"] in tests for r in rows)
    store.dispose()
    assert "valid_column=valid-accuracy" in (tmp_path / "e200" / "run.txt").read_text()


def _bench_module(name: str) -> Any:
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "bench" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"bench_{name}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_cnn_latency_report_counts_retimed_misses_and_groups_pruning_reasons() -> None:
    bench = _bench_module("cnn_latency")
    rows = [{"stored_ms": 0.20, "retimed_median_ms": 0.18, "retimed_max_ms": 0.24},
            {"stored_ms": 0.24, "retimed_median_ms": 0.26, "retimed_max_ms": 0.30},
            {"stored_ms": 0.10, "retimed_median_ms": 0.09, "retimed_max_ms": 0.50}]
    summary = bench.retime_summary(rows, 0.25)
    assert (summary["trials"], summary["meet_by_median"], summary["meet_by_every_retime"]) == (3, 2, 1)
    assert summary["worst_median_excess_pct"] == pytest.approx(4.0)  # 0.26 against 0.25
    assert summary["worst_retime_excess_pct"] == pytest.approx(100.0)  # 0.50 against 0.25
    assert summary["max_stored_ms"] == 0.24
    clean = bench.retime_summary(rows[:1], 0.25)
    assert clean["meet_by_median"] == clean["meet_by_every_retime"] == 1 and clean["worst_retime_excess_pct"] == 0.0
    reasons = bench.pruned_reasons(["constraint: latency_ms 0.4123 > 0.25 (--max-latency-ms)",
                                    "constraint: latency_ms 1.837 > 0.25 (--max-latency-ms)",
                                    "constraint: params 2e+06 > 1e+06 (--max-params)", None])
    assert reasons == {"constraint: latency_ms X > 0.25 (--max-latency-ms)": 2,
                       "constraint: params X > 1e+06 (--max-params)": 1, "(no reason stored)": 1}
