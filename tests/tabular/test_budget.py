"""--time-budget: planning from measured trial times, trial deadlines, and a budgeted search end to end."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

import nasforge
from nasforge.budget import TimeBudget, check_budget, process_started
from nasforge.cli.main import main
from nasforge.core.errors import ConfigError
from nasforge.core.types import TrialSpec
from nasforge.data.loader import data_config


def test_budget_plans_from_measured_trial_times() -> None:
    start = time.monotonic()
    budget = TimeBudget(100.0, start=start, reserve=10.0)
    assert budget.can_start()  # nothing measured yet: any trial may start
    assert 89.0 < budget.trials_left() <= 90.0
    assert abs(budget.deadline() - (time.time() + 90.0)) < 1.0
    budget.record(30.0)
    budget.record(50.0)
    assert budget.expected_trial() == 40.0 and budget.can_start()
    late = TimeBudget(100.0, start=start - 60.0, reserve=10.0)  # 60 s spent: 30 s left for trials
    late.record(40.0)
    assert not late.can_start()
    spent = TimeBudget(10.0, start=start - 11.0)
    assert spent.left() < 0 and not spent.can_start()
    startup = TimeBudget(100.0, start=start, reserve=10.0)
    startup.record(30.0, startup=20.0)  # a worker's start-up is paid once: the plan expects 10 s trials
    startup.record(12.0)
    assert startup.expected_trial() == 11.0


def test_a_command_budget_counts_from_the_process_start() -> None:
    import subprocess
    import sys

    code = "import time; time.sleep(1.0); from nasforge.budget import process_started; " \
           "print(time.monotonic() - process_started())"
    age = float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)
    assert 1.0 <= age < 30.0  # the interpreter's own start-up and the sleep are both counted
    assert process_started() <= time.monotonic()


def test_a_budget_spent_before_any_trial_is_one_line_and_exit_2(tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    storage = f"sqlite:///{tmp_path / 'db.sqlite'}"
    code = main(["search", "--data", "builtin:iris", "--time-budget", "0.02", "--workers", "1", "--study", "iris",
                 "--storage", storage, "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert "error: the time budget of 0.02s ended before any trial finished" in err and "--time-budget" in err
    with pytest.raises(ConfigError, match="ended before any trial finished"):  # the API: a UserError, no study harm
        nasforge.search("builtin:iris", time_budget=0.02, workers=1, epochs=1, study="api", storage=storage)
    study = nasforge.search("builtin:iris", trials=1, workers=1, epochs=1, study="api", storage=storage)
    assert [t.state.value for t in study.trials] == ["complete"]  # the same study resumes with a real budget


def test_the_budget_counts_from_the_given_start(tmp_path: Path) -> None:
    from nasforge.launch import build_config, run

    config = build_config(data="builtin:iris", time_budget=30, workers=1, epochs=1, baseline=False,
                          storage=f"sqlite:///{tmp_path / 'db.sqlite'}", progress=False)
    with pytest.raises(ConfigError, match="30s ended before any trial finished"):
        run(config, started=time.monotonic() - 40.0)  # 40 s ago: the data load and imports were the whole budget


@pytest.mark.parametrize("bad", [0, -5, float("nan"), float("inf"), "10", True])
def test_bad_budgets_are_config_errors(bad: object) -> None:
    with pytest.raises(ConfigError, match="--time-budget"):
        check_budget(bad)  # type: ignore[arg-type]


def test_bad_budget_flag_exits_2_and_stores_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "db.sqlite"
    code = main(["search", "--data", "builtin:iris", "--time-budget", "0", "--storage", f"sqlite:///{db}",
                 "--no-progress"])
    assert code == 2 and "--time-budget" in capsys.readouterr().err
    assert not db.exists()


def test_a_trial_ends_at_its_deadline() -> None:
    from nasforge.evaluators.train import TrainEvaluator
    from nasforge.execution.worker import _NullReporter
    from nasforge.spaces.dnn import DNNSpace

    space = DNNSpace()
    arch = space.from_json({"blocks": ["fc_64"]})
    evaluator = TrainEvaluator(data=data_config("builtin:digits"), epochs=1000, patience=None, save_weights=False)
    spec = TrialSpec(study="s", number=0, arch=space.to_json(arch), seed=0, space="dnn", space_config={},
                     evaluator="train", evaluator_config={}, budget={}, objective="valid_accuracy",
                     direction="maximize", workdir=None, deadline=time.time() + 1.5)
    start = time.perf_counter()
    result = evaluator.evaluate(arch, spec, _NullReporter(), space=space)
    assert time.perf_counter() - start < 4.0
    assert result.metrics["time_limited"] == 1.0 and 1 <= result.metrics["epochs"] < 1000
    assert result.metrics["valid_accuracy"] > 0.5


def test_budgeted_search_stops_in_time_and_reports_the_baseline(tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    storage = f"sqlite:///{tmp_path / 'db.sqlite'}"
    start = time.perf_counter()
    code = main(["search", "--data", "builtin:wine", "--time-budget", "8", "--workers", "1", "--epochs", "30",
                 "--test-fraction", "0.25", "--study", "wine", "--storage", storage, "--no-progress"])
    wall = time.perf_counter() - start
    captured = capsys.readouterr()
    assert code == 0
    assert wall < 8 + 3.0  # the trials end at their deadline; the final step fits the reserve
    assert "time budget" in captured.err and "trials within 8s" in captured.err
    assert "baseline HistGradientBoostingClassifier" in captured.out and "search vs baseline" in captured.out
    study = nasforge.load_study("wine", storage=storage)
    searched = [t for t in study.trials if t.info.get("kind") is None]
    assert len(searched) >= 2  # trials until the budget was spent, not the default 20 or one
    baseline = study.info.baseline
    assert baseline is not None and {"valid_accuracy", "test_accuracy", "fit_s"} <= set(baseline)
    finals = [t for t in study.trials if t.info.get("final")]
    if finals:  # stored only when it ranks above every single trial (accuracy, then validation loss)
        from nasforge.core.ranking import best_key

        assert finals[0].number == study.best_trial.number
        assert all(best_key(finals[0])[:2] > best_key(t)[:2] for t in searched if t.state.value == "complete")
    assert main(["trials", "--study", "wine", "--storage", storage]) == 0
    assert "baseline HistGradientBoostingClassifier" in capsys.readouterr().out
    assert main(["show", "--study", "wine", "--storage", storage]) == 0
    assert json.loads(capsys.readouterr().out)["baseline"]["model"] == "HistGradientBoostingClassifier"


def test_regression_baseline_reports_rmse_and_r2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    storage = f"sqlite:///{tmp_path / 'db.sqlite'}"
    study = nasforge.search("builtin:diabetes", trials=1, workers=1, epochs=2, test_fraction=0.2, study="d",
                            storage=storage)
    baseline = study.info.baseline
    assert baseline is not None and baseline["model"] == "HistGradientBoostingRegressor"
    assert {"valid_rmse", "valid_r2", "test_rmse", "test_r2"} <= set(baseline)
    assert baseline["valid_rmse"] > 0 and baseline["valid_r2"] < 1
    assert main(["trials", "--study", "d", "--storage", storage]) == 0  # the trials' R² beside their RMSE
    out = capsys.readouterr().out
    header = out.splitlines()[0].split()
    assert header[3:7] == ["valid_rmse", "test_rmse", "valid_r2", "test_r2"]
    r2 = study.trials[0].metrics["valid_r2"]
    assert f"{r2:.4f}" in out.splitlines()[1] and "baseline HistGradientBoostingRegressor" in out


def test_no_baseline_and_resume_keeps_the_stored_one(tmp_path: Path) -> None:
    storage = f"sqlite:///{tmp_path / 'db.sqlite'}"
    none = nasforge.search("builtin:iris", trials=1, workers=1, epochs=1, storage=storage, study="a",
                           baseline=False)
    assert none.info.baseline is None
    first = nasforge.search("builtin:iris", trials=1, workers=1, epochs=1, storage=storage, study="b")
    again = nasforge.search("builtin:iris", trials=2, workers=1, epochs=1, storage=storage, study="b")
    assert first.info.baseline is not None and again.info.baseline == first.info.baseline


def test_final_ensemble_is_kept_only_when_it_ranks_above_the_best_trial(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """Kept when better on the objective, or tied on it with a lower validation loss (small validation splits
    tie on accuracy 1.000); then it is the study's best trial. Worse, or tied without a lower loss: not kept."""
    from nasforge.ensemble import final
    from nasforge.ensemble.selection import Selection

    study = nasforge.search("builtin:iris", trials=3, workers=1, epochs=2, storage=f"sqlite:///{tmp_path / 'd.db'}",
                            baseline=False, final_ensemble=False)
    best = study.best_trial
    assert best is not None and len(study.trials) == 3

    def pick(metrics: dict[str, float]) -> None:
        monkeypatch.setattr(final, "greedy", lambda terms, *a: Selection([0.5, 0.5] + [0.0] * (len(terms) - 2),
                                                                         metrics))

    accuracy, loss = best.metrics["valid_accuracy"], best.metrics["valid_loss"]
    pick({"valid_accuracy": accuracy - 0.01, "valid_loss": 0.0})
    assert final.final_ensemble(study.store, study.info) is None  # worse on the objective: never kept
    pick({"valid_accuracy": accuracy, "valid_loss": loss + 0.5})
    assert final.final_ensemble(study.store, study.info) is None  # a tie on accuracy, but a worse fit
    pick({"valid_accuracy": accuracy, "valid_loss": 0.0})
    row = final.final_ensemble(study.store, study.info)  # a tie on accuracy with a lower loss: kept
    assert row is not None and row.info["final"] and len(row.info["members"]) == 2
    assert row.score is not None and best.score is not None and row.score >= best.score  # scored on its real outputs
    assert nasforge.load_study(study.name, storage=study.store.url).best_trial.number == row.number
