"""User options become a validated SearchConfig before any study is touched."""

from __future__ import annotations

import pytest

from nasforge.core.errors import ConfigError
from nasforge.launch import build_config, default_epochs, default_study_name


def test_default_epochs_budget_in_steps() -> None:
    assert default_epochs(100_000, 128) == 10          # big table: the floor
    assert default_epochs(12_000, 128) == 43           # about 4,000 steps
    assert default_epochs(500, 128) == 100             # tiny table: the cap


def test_default_study_name_is_stable() -> None:
    assert default_study_name("/data/adult.tsv.gz", "dnn", "model_search") == "adult-dnn-model_search"
    assert default_study_name("builtin:iris", "dnn", "random") == "iris-dnn-random"


def test_config_from_builtin_data(tmp_path) -> None:
    cfg = build_config(data="builtin:wine", trials=3, storage=f"sqlite:///{tmp_path}/db.sqlite")
    assert cfg.objective == "valid_accuracy" and cfg.direction == "maximize"
    assert cfg.evaluator_config["epochs"] == default_epochs(113, 128)
    assert "steps" not in cfg.evaluator_config
    steps = build_config(data="builtin:wine", trials=3, steps=50)
    assert steps.evaluator_config["steps"] == 50 and "epochs" not in steps.evaluator_config


@pytest.mark.parametrize("options, message", [
    ({"data": "builtin:wine", "epochs": 0}, "--epochs must be a positive"),
    ({"data": "builtin:wine", "steps": -1}, "--steps must be a positive"),
    ({"data": None}, "--data is required"),
    ({"evaluator": "table"}, "needs --table"),
    ({"data": "builtin:wine", "space": "dnn", "space_options": {"bogus": 1}}, "bad options for space"),
    ({"data": "builtin:wine", "evaluator_options": {"bogus": 1}}, "unknown train evaluator option"),
    ({"data": "builtin:wine", "evaluator_options": {"data": "x.csv"}}, "comes from its own flag"),
    ({"data": "builtin:wine", "evaluator_options": {"data_fraction": 2.0}}, "data_fraction"),
    ({"data": "builtin:wine", "evaluator_options": {"schedule": "linear"}}, "schedule must be one of"),
    ({"data": "builtin:wine", "evaluator_options": {"eval_batch_size": "many"}}, "bad option value"),
    ({"evaluator": "synthetic", "evaluator_options": {"bogus": 1}}, "unknown synthetic evaluator option"),
])
def test_bad_options(options, message) -> None:
    with pytest.raises(ConfigError, match=message):
        build_config(trials=2, **options)


def test_evaluator_options_reach_the_train_evaluator() -> None:
    """`--evaluator-option` sets any train evaluator option; a flag's value can be overridden the same way."""
    cfg = build_config(data="builtin:digits", trials=2, epochs=3,
                       evaluator_options={"schedule": "cosine", "data_fraction": 0.5, "optimizer": "sgd",
                                          "augment": {"flip": True}, "epochs": 4})
    ev = cfg.evaluator_config
    assert (ev["schedule"], ev["data_fraction"], ev["optimizer"], ev["augment"], ev["epochs"]) == (
        "cosine", 0.5, "sgd", {"flip": True}, 4)


def test_digits_go_to_image_spaces_as_images() -> None:
    assert build_config(data="builtin:digits", space="nb201", trials=1).evaluator_config["data"]["as_images"] is True
    assert "as_images" not in build_config(data="builtin:digits", space="dnn", trials=1).evaluator_config["data"]
