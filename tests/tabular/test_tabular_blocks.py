"""The dnn space's tabular choices: numeric and category embeddings, TabM-style members, weight decay and
label smoothing; old architectures keep their meaning; networks with them train, predict and export."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from nasforge.cli.main import main
from nasforge.data.base import DataSpec
from nasforge.data.builtin import builtin_frame
from nasforge.evaluators.train import task_loss, training_members
from nasforge.models.dense import DenseNetwork
from nasforge.models.tabular import CategoryEmbedding, FeatureFront, PiecewiseLinear, TabularNetwork
from nasforge.spaces.dnn import EXTRA_NAMES, EXTRAS, N_HP, DNNSpace

KINDS = ("numeric", "indicator", "numeric", "category:c", "category:c", "category:c", "category:d", "category:d")
SPEC = DataSpec("classification", (len(KINDS),), 3, class_names=("a", "b", "c"), feature_kinds=KINDS)


def _rows(n: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, len(KINDS), generator=g)
    x[:, 1] = (x[:, 1] > 0).float()
    c = torch.randint(0, 3, (n,), generator=g)
    d = torch.randint(0, 2, (n,), generator=g)
    x[:, 3:6] = F.one_hot(c, 3).float()
    x[:, 6:8] = F.one_hot(d, 2).float()
    return x


def test_an_architecture_stored_before_the_extras_keeps_its_key_and_network() -> None:
    space = DNNSpace()
    arch = space.sample(np.random.default_rng(3))
    depth = space.depth(arch)
    old = arch.tokens[:N_HP + 1 + depth]
    again = space.assemble(old)
    assert again.tokens[:len(old)] == old
    assert space.extras(again) == {name: default for name, _, default in EXTRAS}
    assert ":" not in space.key(again).split(":", 3)[-1]  # no extras tail: the key it had before
    assert isinstance(space.build(again, SPEC), DenseNetwork)


def test_every_sampled_choice_builds_and_answers_one_row_per_input() -> None:
    space = DNNSpace()
    rng = np.random.default_rng(0)
    x, y = _rows(6), torch.randint(0, 3, (6,))
    seen: dict[str, set[object]] = {name: set() for name in EXTRA_NAMES}
    for _ in range(60):
        arch = space.sample(rng)
        for name, value in space.extras(arch).items():
            seen[name].add(value)
        net = space.build(arch, SPEC)
        fit = getattr(net, "fit_data", None)
        if callable(fit):
            fit(x)
        net.train()
        out = net(x)
        assert out.shape == (6, 3)
        task_loss(out, y, "classification", 0.1, training_members(net)).backward()
        net.eval()
        assert net(x).shape == (6, 3)
    assert all(len(values) > 1 for values in seen.values()), seen


def test_members_are_each_trained_on_their_own_loss() -> None:
    torch.manual_seed(0)
    net = TabularNetwork(SPEC, ["fc_64"], 3, _style(), members=4)
    x, y = _rows(10), torch.randint(0, 3, (10,))
    net.train()
    mean_log_prob = net(x)
    members = training_members(net)
    assert members is not None and members.shape == (10, 4, 3)
    assert torch.allclose(mean_log_prob.exp().sum(1), torch.ones(10), atol=1e-5)
    expected = torch.stack([F.cross_entropy(members[:, k], y) for k in range(4)]).mean()
    assert torch.allclose(task_loss(mean_log_prob, y, "classification", 0.0, members), expected)
    net.eval()
    net(x)
    assert training_members(net) is None


def test_piecewise_linear_bins_are_training_quantiles() -> None:
    ple = PiecewiseLinear(features=2, bins=4, width=3)
    x = torch.stack([torch.arange(101.0), torch.arange(101.0) * 2], 1)
    ple.fit_data(x)
    assert torch.allclose(ple.edges[0], torch.tensor([0.0, 25.0, 50.0, 75.0, 100.0]))
    code = ple.encode(torch.tensor([[37.5, 125.0]]))
    assert torch.allclose(code[0, 0], torch.tensor([1.0, 0.5, 0.0, 0.0]))  # half-way through the second bin
    assert torch.allclose(code[0, 1], torch.tensor([1.0, 1.0, 0.5, 0.0]))


def test_category_embedding_is_a_lookup_of_its_own_column_table() -> None:
    emb = CategoryEmbedding([3, 2], width=4)
    onehot = torch.tensor([[0.0, 1.0, 0.0, 0.0, 1.0]])
    out = emb(onehot).reshape(2, 4)
    assert torch.allclose(out[0], emb.weight[0, 1])
    assert torch.allclose(out[1], emb.weight[1, 1])


def test_front_embeds_numbers_and_categories_and_passes_indicators() -> None:
    front = FeatureFront(KINDS, len(KINDS), numeric="periodic_0.1", categorical="embed_4")
    x = _rows(5)
    out = front(x)
    numeric_width = 2 * front.numbers.width  # type: ignore[union-attr]
    assert out.shape == (5, front.out_features) == (5, numeric_width + 1 + 2 * 4)
    assert torch.equal(out[:, numeric_width], x[:, 1])  # the missing indicator, untouched


def _style():  # type: ignore[no-untyped-def]
    from nasforge.models.dense import LayerStyle

    return LayerStyle("relu", "none", 0.0)


def test_search_with_embeddings_and_members_trains_predicts_and_exports(tmp_path: Path) -> None:
    """iris with a text column, every extra pinned on: the study's model and its exports agree."""
    pytest.importorskip("onnxruntime")
    from nasforge.api import Study
    from nasforge.export.runtime import load_exported

    frame, _ = builtin_frame("iris")
    rng = np.random.default_rng(0)
    frame.insert(2, "colour", rng.choice(["blue", "green", "red"], len(frame)).astype(object))
    data = tmp_path / "iris.csv"
    frame.to_csv(data, index=False)
    storage = f"sqlite:///{tmp_path / 'db.sqlite'}"
    fixed = ("fixed={numeric_embedding: ple_8, categorical_embedding: embed_4, members: 4, "
             "weight_decay: 0.0001, label_smoothing: 0.1}")
    assert main(["search", "--data", str(data), "--label", "target", "--trials", "2", "--workers", "1",
                 "--epochs", "8", "--test-fraction", "0.3", "--study", "iris", "--storage", storage,
                 "--space-option", fixed, "--no-progress"]) == 0
    study = Study("iris", storage)
    best = study.best_trial
    assert best is not None and best.metrics["valid_accuracy"] > 0.6
    description = best.arch.get("description", best.arch)
    assert {k: description[k] for k in ("numeric_embedding", "categorical_embedding", "members")} == \
        {"numeric_embedding": "ple_8", "categorical_embedding": "embed_4", "members": 4}
    predictor = study.predictor()
    test_csv = Path(study.info.artifact_dir) / "test.csv"
    rows = predictor.read(test_csv)
    expected = predictor.predict_raw(rows)
    for fmt, suffix in (("torchscript", "pt"), ("onnx", "onnx")):
        out = tmp_path / f"model.{suffix}"
        assert main(["export", "--study", "iris", "--storage", storage, "--format", fmt, "--out", str(out)]) == 0
        shipped = load_exported(out)
        assert np.max(np.abs(shipped.predict_raw(shipped.read(test_csv)) - expected)) <= 1e-4
