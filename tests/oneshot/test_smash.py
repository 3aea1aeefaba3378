"""SMASH: the memory-bank encoding, generated weights, training, and a tiny search on real digits."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch

from nasforge.core.errors import ConfigError
from nasforge.core.types import Architecture
from nasforge.data.base import DataSpec
from nasforge.data.loader import data_config, load_dataset
from nasforge.oneshot import smash
from nasforge.oneshot.smash import SMASH, SMASHNetwork, candidates, score
from nasforge.spaces.darts import DARTSSpace
from nasforge.spaces.nasnet import NASNetSpace
from nasforge.spaces.nb201 import NB201Space

SPEC = DataSpec(task="classification", input_shape=(1, 8, 8), num_outputs=10)
TINY = {"channels": 4, "depth": 1, "chunk": 4, "hidden": 16}


def nb201_net(cell_context: bool = False) -> tuple[NB201Space, SMASHNetwork]:
    torch.manual_seed(0)
    space = NB201Space(cells_per_stage=1, channels=4)
    return space, SMASHNetwork(space, SPEC, chunk=4, hidden=16, cell_context=cell_context)


def darts_net() -> tuple[DARTSSpace, SMASHNetwork]:
    torch.manual_seed(0)
    space = DARTSSpace(num_nodes=2, layers=3, channels=4)
    return space, SMASHNetwork(space, SPEC, chunk=4, hidden=16)


@pytest.fixture(scope="module")
def digits():
    return load_dataset(data_config("builtin:digits", as_images=True))


# ---- encoding ------------------------------------------------------------------------------------------------
def differ(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.shape != b.shape or not torch.equal(a, b)


def test_encoding_is_deterministic_and_tells_architectures_apart() -> None:
    _, net = nb201_net()
    conv3 = Architecture("nb201", (3, 1, 0, 1, 0, 3))
    assert torch.equal(net.encode(conv3), net.encode(conv3))
    assert net.encode(conv3).shape[0] == net.encoder.channels
    # another conv kind on an edge, or the same convs on other edges (other banks), change the embedding
    for other in ((2, 1, 0, 1, 0, 3), (3, 1, 0, 1, 3, 0), (3, 3, 0, 1, 0, 3)):
        assert differ(net.encode(conv3), net.encode(Architecture("nb201", other))), other
    # without the cell context a conv's weights depend only on its own slot: a pooling edge changes nothing
    pooled = Architecture("nb201", (3, 4, 0, 1, 0, 3))
    assert torch.equal(net.encode(conv3), net.encode(pooled))
    _, with_context = nb201_net(cell_context=True)
    assert with_context.encoder.channels > net.encoder.channels
    assert differ(with_context.encode(conv3), with_context.encode(pooled))


def test_encoding_marks_read_and_write_banks() -> None:
    _, net = nb201_net()
    emb = net.encode(Architecture("nb201", (0, 0, 0, 0, 0, 3)))  # one conv3x3 per cell, edge 2 -> 3
    on = net.encoder.offsets
    reads = emb[on["read"]: on["read"] + 4].sum(dim=1)
    writes = emb[on["write"]: on["write"] + 4].sum(dim=1)
    assert reads.nonzero().flatten().tolist() == [2]
    assert writes.nonzero().flatten().tolist() == [3]


def test_darts_encoding_is_deterministic() -> None:
    space, net = darts_net()
    rng = np.random.default_rng(3)
    a, b = space.sample(rng), space.sample(rng)
    assert torch.equal(net.encode(a), net.encode(a))
    assert not torch.equal(net.encode(a), net.encode(b)) or net.encode(a).shape != net.encode(b).shape


# ---- generated weights ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("make", [nb201_net, darts_net])
def test_generated_weights_have_the_op_modules_shapes(make) -> None:
    space, net = make()
    rng = np.random.default_rng(0)
    seen_pieces = 0
    for _ in range(4):
        plan = net.encoder.plan(space.sample(rng))
        weights = net.generate(plan)
        assert len(weights) == len(plan.slots)
        for slot, generated in zip(plan.slots, weights):
            template = net.templates[(slot.op, slot.channels, slot.stride)]
            expected = {name: p.shape for name, p in template.named_parameters()}
            assert {name: w.shape for name, w in generated.items()} == expected
            assert all(w.requires_grad for w in generated.values())
            seen_pieces += len(generated)
    assert seen_pieces > 0
    # only the hypernet and the skeleton are trained; op modules are placeholders
    trained = {id(p) for p in net.parameters()}
    assert not any(id(p) in trained for t in net.templates.values() for p in t.parameters())


def test_parameter_free_cell_needs_no_hypernet() -> None:
    _, net = nb201_net()
    arch = Architecture("nb201", (1, 4, 0, 1, 4, 1))  # skips and pools only
    plan = net.encoder.plan(arch)
    assert plan.pieces == [] and all(w == {} for w in net.generate(plan))
    assert net(torch.randn(4, 1, 8, 8), arch).shape == (4, 10)


# ---- training ---------------------------------------------------------------------------------------------------
def test_training_steps_lower_the_loss_on_a_fixed_batch(digits) -> None:
    _space, net = nb201_net()
    method = SMASH(learning_rate=5e-3)
    optimizer = torch.optim.Adam(net.parameters(), lr=5e-3)
    x, y = torch.as_tensor(digits.train.x[:32]), torch.as_tensor(digits.train.y[:32])
    arch = Architecture("nb201", (3, 2, 3, 1, 2, 3))
    before = [p.detach().clone() for p in net.hypernet.parameters()]
    losses = [method.train_step(net, optimizer, arch, x, y) for _ in range(8)]
    assert all(np.isfinite(losses))
    assert losses[-1] < losses[0]
    assert any(not torch.equal(a, b) for a, b in zip(before, net.hypernet.parameters()))


# ---- search -----------------------------------------------------------------------------------------------------
def test_tiny_search_on_digits_nb201(digits) -> None:
    calls: list[tuple[int, dict[str, float]]] = []
    method = SMASH(epochs=2, steps=4, batch_size=32, num_candidates=12, valid_batches=1, valid_batch_size=64, **TINY)
    space = NB201Space(cells_per_stage=1, channels=4)
    result = method.search(space, digits, seed=0, device=torch.device("cpu"),
                           progress=lambda epoch, metrics: calls.append((epoch, metrics)))
    assert [epoch for epoch, _ in calls] == [1, 2]
    assert all({"train_loss", "valid_accuracy"} <= set(m) for _, m in calls)
    assert space.assemble(result.arch.tokens) == result.arch
    net = space.build(result.arch, digits.spec)
    assert net(torch.as_tensor(digits.valid.x[:5])).shape == (5, 10)
    scores = [s for _, s in result.candidates]
    assert len(scores) == 12 and scores == sorted(scores, reverse=True)
    assert result.candidates[0] == (result.arch, result.metrics["valid_accuracy"])
    assert len({space.key(a) for a, _ in result.candidates}) == 12
    assert {"search_seconds", "peak_memory_mb", "valid_accuracy"} <= set(result.metrics)
    assert result.state["train_steps"] == 8


def test_rank_by_loss_orders_candidates_by_lower_loss(digits) -> None:
    method = SMASH(epochs=1, steps=2, batch_size=16, num_candidates=6, valid_batches=1, valid_batch_size=32,
                   rank_by="loss", **TINY)
    result = method.search(NB201Space(cells_per_stage=1, channels=4), digits, seed=1, device=torch.device("cpu"),
                           progress=lambda e, m: None)
    losses = [s for _, s in result.candidates]
    assert losses == sorted(losses) and result.metrics["valid_loss"] == losses[0]


def test_search_is_reproducible_for_a_seed(digits) -> None:
    space = DARTSSpace(num_nodes=2, layers=3, channels=4)
    method = SMASH(epochs=1, steps=2, batch_size=16, num_candidates=4, valid_batches=1, valid_batch_size=32, **TINY)
    runs = [method.search(space, digits, seed=5, device=torch.device("cpu"), progress=lambda e, m: None)
            for _ in range(2)]
    assert runs[0].candidates == runs[1].candidates
    space.build(runs[0].arch, digits.spec)


def test_candidates_enumerate_a_small_space_and_sample_distinct_keys() -> None:
    space = NB201Space(cells_per_stage=1, channels=4)
    drawn = candidates(space, 30, np.random.default_rng(0))
    assert len(drawn) == 30 and len({space.key(a) for a in drawn}) == 30
    every = candidates(space, 15_625, np.random.default_rng(0))
    assert len(every) == len({space.key(a) for a in every}) > 1000


def test_score_is_accuracy_and_loss_on_the_fixed_rows(digits) -> None:
    _space, net = nb201_net()
    valid = smash._tensors(digits.valid.x[:40], digits.valid.y[:40], torch.device("cpu"))
    arch = Architecture("nb201", (3, 3, 3, 3, 3, 3))
    accuracy, loss = score(net, arch, valid, 16)
    assert 0.0 <= accuracy <= 1.0 and loss > 0
    assert score(net, arch, valid, 16) == (accuracy, loss)


def test_reference_table_gives_rank_correlation(tmp_path: Path) -> None:
    space = NB201Space(cells_per_stage=1, channels=4)
    archs = candidates(space, 5, np.random.default_rng(1))
    table = tmp_path / "table.csv"
    with table.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["arch_str", "cifar10_valid"])
        for i, arch in enumerate(archs):
            writer.writerow([space.to_string(arch), 50.0 + i])
    reference = smash.read_reference(str(table), "cifar10_valid")
    ranked = [(arch, 0.1 * i, 1.0) for i, arch in enumerate(archs)][::-1]  # generated scores agree with the table
    metrics = smash._reference_metrics(space, ranked, reference)
    assert metrics["rank_correlation"] == metrics["rank_correlation_accuracy"] == pytest.approx(1.0)
    assert "rank_correlation_loss" not in metrics  # constant losses: undefined, not reported
    assert metrics["reference_accuracy"] == metrics["reference_best_candidate"] == 54.0
    assert metrics["reference_top_accuracy"] == 54.0
    assert metrics["reference_top_loss"] == 54.0  # equal losses: ties keep the ranking's order
    by_loss = [(arch, 0.5, 1.0 + 0.1 * i) for i, arch in enumerate(archs)]  # lowest loss: archs[0], table 50
    assert smash._reference_metrics(space, by_loss, reference)["reference_top_loss"] == 50.0
    with pytest.raises(ConfigError):
        smash.read_reference(str(table), "no_such_column")


# ---- options, spaces, devices -----------------------------------------------------------------------------------
def test_scale_presets_set_the_defaults_and_explicit_options_win() -> None:
    import json

    cpu = SMASH()
    assert cpu.scale == "cpu" and (cpu.epochs, cpu.steps, cpu.num_candidates) == (
        smash.SCALES["cpu"]["epochs"], smash.SCALES["cpu"]["steps"], smash.SCALES["cpu"]["num_candidates"])
    paper = SMASH(scale="paper")
    assert (paper.epochs, paper.batch_size, paper.num_candidates, paper.steps) == (100, 50, 500, None)
    mixed = SMASH(scale="paper", epochs=3, steps=None)
    assert mixed.epochs == 3 and mixed.steps is None and mixed.num_candidates == 500
    assert json.loads(json.dumps(mixed.options()))["scale"] == "paper"
    with pytest.raises(ConfigError, match="scale"):
        SMASH(scale="gpu")


def test_cpu_scale_takes_each_space_s_own_values_unless_given() -> None:
    """nb201 and darts cost very different times per step, so "cpu" sizes each for about a minute."""
    from nasforge.spaces.nb201 import NB201Space

    preset = SMASH()
    preset._scale_for(NB201Space())
    assert (preset.depth, preset.epochs) == (smash.SPACE_SCALES[("cpu", "nb201")]["depth"],
                                             smash.SPACE_SCALES[("cpu", "nb201")]["epochs"])
    given = SMASH(depth=None, epochs=2)
    given._scale_for(NB201Space())
    assert (given.depth, given.epochs) == (None, 2)
    paper = SMASH(scale="paper")
    paper._scale_for(NB201Space())
    assert paper.depth is None and paper.epochs == 100


def test_bad_options_and_unsupported_spaces_are_config_errors() -> None:
    with pytest.raises(ConfigError):
        SMASH(epochs=0)
    with pytest.raises(ConfigError):
        SMASH(learning_rate=-1.0)
    with pytest.raises(ConfigError):
        SMASH(rank_by="speed")
    with pytest.raises(ConfigError):
        SMASHNetwork(NASNetSpace(num_blocks=2, cells_per_stage=1, channels=4), SPEC)


def test_cuda_memory_calls_only_on_cuda_devices(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    monkeypatch.setattr(torch.cuda, "reset_peak_memory_stats", lambda device=None: calls.append("reset"))
    monkeypatch.setattr(torch.cuda, "max_memory_allocated", lambda device=None: calls.append("peak") or 3 * 2 ** 20)
    smash.reset_peak_memory(torch.device("cpu"))
    assert smash.peak_memory_mb(torch.device("cpu")) > 0
    assert calls == []
    smash.reset_peak_memory(torch.device("cuda"))
    assert smash.peak_memory_mb(torch.device("cuda")) == 3.0
    assert calls == ["reset", "peak"]
