"""Benchmark-table lookups: any <dataset>_valid/_test pair, clear errors, test metric kept from the strategy."""

from __future__ import annotations

from pathlib import Path

import pytest

from nasforge.core.errors import DataError
from nasforge.core.types import TrialSpec, TrialState
from nasforge.evaluators.table import TableEvaluator
from nasforge.spaces.nb201 import NB201Space

ARCH = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"


def spec() -> TrialSpec:
    return TrialSpec(study="s", number=0, arch={}, seed=0, space="nb201", space_config={}, evaluator="table",
                     evaluator_config={}, budget={}, objective="valid_accuracy", direction="maximize",
                     workdir=None)


def test_lookup_in_the_real_table(shared_data: Path) -> None:
    path = shared_data / "nasbench201" / "nb201_12epoch.csv"
    space = NB201Space()
    for dataset in ("cifar10", "cifar100"):
        result = TableEvaluator(str(path), dataset).evaluate(space.from_string(ARCH), spec())
        assert result.state == TrialState.COMPLETE
        assert 0 < result.metrics["valid_accuracy"] <= 100 and 0 < result.metrics["test_accuracy"] <= 100


def test_any_dataset_pair_and_cost_column(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text(f"arch_str,imagenet_valid,imagenet_test,secs\n\"{ARCH}\",41.5,40.25,12.0\n")
    ev = TableEvaluator(str(path), "imagenet", cost_column="secs")
    metrics = ev.evaluate(NB201Space().from_string(ARCH), spec()).metrics
    assert metrics == {"valid_accuracy": 41.5, "test_accuracy": 40.25, "cost": 12.0}


def test_errors_name_the_problem(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="file not found"):
        TableEvaluator(str(tmp_path / "none.csv"))
    bad = tmp_path / "bad.csv"
    bad.write_text("name,cifar10_valid,cifar10_test\nx,1,2\n")
    with pytest.raises(DataError, match="arch_str"):
        TableEvaluator(str(bad))
    good = tmp_path / "good.csv"
    good.write_text(f"arch_str,svhn_valid,svhn_test\n\"{ARCH}\",1,2\n")
    with pytest.raises(DataError, match="svhn"):
        TableEvaluator(str(good), "cifar10")
