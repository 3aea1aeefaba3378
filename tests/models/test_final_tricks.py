"""NASNet's and DARTS's final-training tricks: scheduled drop-path and the auxiliary head.

Off in search trials, on by default in `nasforge train` for cell spaces, and gone from what is saved."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from nasforge.api import Study
from nasforge.cli.main import main
from nasforge.core.types import TrialSpec
from nasforge.data.loader import data_config
from nasforge.evaluators.train import TrainEvaluator
from nasforge.execution.worker import _NullReporter
from nasforge.models.tricks import FinalTraining, drop_path
from nasforge.spaces.darts import DARTSSpace
from nasforge.spaces.dnn import DNNSpace
from nasforge.spaces.nasnet import NASNetSpace

TINY = {"num_blocks": 2, "cells_per_stage": 1, "channels": 4}


class _Spec:
    input_shape = (1, 8, 8)
    num_outputs = 10


def test_drop_path_drops_whole_examples_and_keeps_the_mean() -> None:
    x = torch.ones(4000, 3, 2, 2)
    out = drop_path(x, 0.3, torch.Generator().manual_seed(0))
    per_example = out.flatten(1)
    dropped = (per_example == 0).all(dim=1)
    kept = per_example[~dropped]
    assert 0.27 < dropped.float().mean().item() < 0.33  # one coin per example, not per value
    assert torch.allclose(kept, torch.full_like(kept, 1 / 0.7))
    assert abs(out.mean().item() - 1.0) < 0.05
    assert drop_path(x, 0.0) is x


def test_the_schedule_rises_linearly_and_spares_identities() -> None:
    space = NASNetSpace(**TINY)
    arch = space.from_json({"normal": [{"inputs": [0, 1], "ops": ["identity", "sep_conv_3x3"], "combine": "add"},
                                       {"inputs": [2, 1], "ops": ["identity", "identity"], "combine": "add"}],
                            "reduce": [{"inputs": [0, 1], "ops": ["max_pool_3x3", "sep_conv_3x3"], "combine": "add"},
                                       {"inputs": [2, 1], "ops": ["avg_pool_3x3", "identity"], "combine": "add"}]})
    net = space.build(arch, _Spec())  # type: ignore[arg-type]
    tricks = FinalTraining(net, drop_path=0.4)
    seen = []
    for fraction in (0.0, 0.25, 0.5, 1.0):
        tricks.progress(fraction)
        seen.append({cell.drop_prob for cell in net.cells})
    assert seen == [{0.0}, {0.1}, {0.2}, {0.4}]
    normal = net.cells[0]
    assert normal._droppable == (False, True, False, False)  # identity, sep conv, identity, identity
    net.eval()  # evaluation never drops: two passes agree
    x = torch.randn(3, 1, 8, 8)
    assert torch.equal(net(x), net(x))
    tricks.finish()
    assert {cell.drop_prob for cell in net.cells} == {0.0}


def test_auxiliary_head_adds_its_loss_in_training_and_leaves_no_trace() -> None:
    space = DARTSSpace(num_nodes=2, layers=3, channels=4)
    arch = space.sample(np.random.default_rng(0))
    net = space.build(arch, _Spec())  # type: ignore[arg-type]
    plain_keys = set(net.state_dict())
    tricks = FinalTraining(net, auxiliary_weight=0.4)
    assert any(k.startswith("auxiliary.") for k in net.state_dict())
    net.train()
    x, y = torch.randn(6, 1, 8, 8), torch.randint(0, 10, (6,))
    logits = net(x)
    assert net.auxiliary_logits is not None and net.auxiliary_logits.shape == logits.shape
    main_loss = torch.nn.functional.cross_entropy(logits, y)
    aux_loss = torch.nn.functional.cross_entropy(net.auxiliary_logits, y)
    total = tricks.loss(main_loss, y, torch.nn.functional.cross_entropy)
    assert torch.allclose(total, main_loss + 0.4 * aux_loss)
    net.eval()
    net(x)
    assert net.auxiliary_logits is None  # inference does not run the head
    tricks.finish()
    assert set(net.state_dict()) == plain_keys


def test_tricks_need_a_cell_network() -> None:
    net = DNNSpace().build(DNNSpace().from_json({"blocks": ["fc_64"]}), type("S", (), {
        "input_shape": (4,), "num_outputs": 3, "task": "classification"})())
    with pytest.raises(ValueError, match="cell network"):
        FinalTraining(net, drop_path=0.2)
    with pytest.raises(ValueError, match="cell network"):
        FinalTraining(net, auxiliary_weight=0.4)


def test_the_training_loop_schedules_drop_path_per_epoch(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[float] = []
    original = FinalTraining.progress
    monkeypatch.setattr(FinalTraining, "progress", lambda self, f: (calls.append(f), original(self, f))[1])
    space = NASNetSpace(**TINY)
    arch = space.sample(np.random.default_rng(1))
    evaluator = TrainEvaluator(data=data_config("builtin:digits", as_images=True), epochs=4, patience=None,
                               save_weights=False, drop_path=0.3, auxiliary_weight=0.4, data_fraction=0.2)
    spec = TrialSpec(study="s", number=0, arch=space.to_json(arch), seed=0, space="nasnet", space_config=TINY,
                     evaluator="train", evaluator_config={}, budget={}, objective="valid_accuracy",
                     direction="maximize", workdir=None)
    result = evaluator.evaluate(arch, spec, _NullReporter(), space=space)
    assert result.error is None, result.error
    assert calls == [0.0, 0.25, 0.5, 0.75]
    plain = space.build(arch, evaluator.dataset().spec)
    assert result.params == sum(p.numel() for p in plain.parameters())  # the head is not the model's size


def test_train_command_uses_the_papers_tricks_on_cell_spaces(tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    storage = f"sqlite:///{tmp_path / 'db.sqlite'}"
    options = [x for k, v in TINY.items() for x in ("--space-option", f"{k}={v}")]
    assert main(["search", "--data", "builtin:digits", "--space", "nasnet",
                 *options, "--strategy", "random", "--trials", "1", "--workers", "1", "--epochs", "1",
                 "--evaluator-option", "data_fraction=0.2", "--test-fraction", "0.2", "--study", "cells",
                 "--storage", storage, "--no-progress"]) == 0
    study = Study("cells", storage)
    assert study.info.config["evaluator_config"].get("drop_path") is None  # off in search trials
    assert study.info.config["evaluator_config"].get("auxiliary_weight") is None
    assert main(["train", "--study", "cells", "--trial", "0", "--epochs", "2", "--storage", storage]) == 0
    final = [t for t in Study("cells", storage).trials if t.info.get("kind") == "final"]
    assert len(final) == 1
    config = final[0].info["evaluator_config"]
    assert config["drop_path"] == 0.4 and config["auxiliary_weight"] == 0.4
    assert final[0].info["drop_path"] == 0.4
    # the saved final model is the plain network (no head): it loads and reproduces its stored test metric
    dataset = TrainEvaluator(data=data_config("builtin:digits", as_images=True, test_fraction=0.2)).dataset()
    assert dataset.test is not None and dataset.preprocessor is not None
    pre = dataset.preprocessor
    raw = (dataset.test.x * pre.std.reshape(1, -1, 1, 1) + pre.mean.reshape(1, -1, 1, 1)) * pre.scale
    np.savez(tmp_path / "test.npz", x=raw, y=dataset.test.y)
    predictor = study.predictor(final[0].number)
    assert predictor.evaluate(tmp_path / "test.npz")["accuracy"] == pytest.approx(
        final[0].metrics["test_accuracy"], abs=1e-6)
    assert main(["train", "--study", "cells", "--trial", "0", "--epochs", "2", "--drop-path", "0",
                 "--auxiliary-weight", "0", "--storage", storage]) == 0
    finals = [t for t in Study("cells", storage).trials if t.info.get("kind") == "final"]
    assert len(finals) == 2 and {t.info["drop_path"] for t in finals} == {0.4, 0}


def test_train_command_rejects_tricks_on_other_spaces(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    storage = f"sqlite:///{tmp_path / 'db.sqlite'}"
    assert main(["search", "--data", "builtin:iris", "--trials", "1", "--workers", "1", "--epochs", "1",
                 "--study", "iris", "--storage", storage, "--no-progress"]) == 0
    capsys.readouterr()
    assert main(["train", "--study", "iris", "--trial", "0", "--epochs", "1", "--drop-path", "0.2",
                 "--storage", storage]) == 2
    err = capsys.readouterr().err
    assert "--drop-path applies to cell spaces" in err and err.count("\n") == 1
    assert [t.info.get("kind") for t in Study("iris", storage).trials] == [None]  # nothing stored
