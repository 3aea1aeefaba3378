"""The one-shot resource penalty: per-op costs at the supernet's shapes, E[cost]'s gradient, and DARTS and ENAS
choosing cheaper architectures under a large penalty."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from nasforge.core.errors import ConfigError
from nasforge.data.base import Dataset, DataSpec
from nasforge.data.loader import data_config, load_dataset
from nasforge.oneshot.darts import DARTS
from nasforge.oneshot.enas import ENAS
from nasforge.oneshot.resource import build_table
from nasforge.oneshot.supernet import build_supernet
from nasforge.spaces.darts import DARTSSpace
from nasforge.spaces.enas_macro import ENASMacroSpace
from nasforge.spaces.nasnet import NASNetSpace
from nasforge.spaces.nb201 import OPS, NB201Space

CPU = torch.device("cpu")
SPEC = DataSpec("classification", (1, 8, 8), 10)
FREE = {"none", "skip_connect", "avg_pool_3x3"}  # NB201's ops without parameters or FLOPs

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def digits() -> Dataset:
    return load_dataset(data_config("builtin:digits", as_images=True))


def _nb201(channels: int = 4) -> Any:
    torch.manual_seed(0)
    return build_supernet(NB201Space(), SPEC, channels=channels)


@pytest.mark.parametrize("resource", ["params", "flops"])
def test_costs_are_the_ops_own_at_the_supernets_shapes(resource: str) -> None:
    net = _nb201()
    table = build_table(net, torch.zeros(2, 1, 8, 8), resource)
    cost = table.costs[0]  # 6 edges x 5 ops, summed over the 3 cells (channels 4, 8, 16)
    assert cost.shape == (6, len(OPS))
    col = {name: k for k, name in enumerate(OPS)}
    for name in FREE:
        assert float(cost[:, col[name]].abs().sum()) == 0.0
    conv1, conv3 = cost[:, col["nor_conv_1x1"]], cost[:, col["nor_conv_3x3"]]
    if resource == "params":  # a 1x1 conv of c channels: c*c weights; 3x3: 9 c*c (no affine BN)
        assert torch.allclose(conv1, torch.full((6,), float(4 * 4 + 8 * 8 + 16 * 16)))
    else:  # FLOPs: c*c per pixel, at 8x8, 4x4, 2x2 (the reductions halve the image)
        assert torch.allclose(conv1, torch.full((6,), float(4 * 4 * 64 + 8 * 8 * 16 + 16 * 16 * 4)))
    assert torch.allclose(conv3, 9 * conv1)
    assert table.full == pytest.approx(float(conv3.sum()))  # the 3x3 conv everywhere: the most expensive choice


def test_expected_cost_is_a_share_whose_gradient_reaches_alpha() -> None:
    net = _nb201()
    table = build_table(net, torch.zeros(2, 1, 8, 8), "flops")
    alpha = net.arch_parameters()[0]
    share = table.expected(net)
    assert 0.0 < float(share.detach()) < 1.0
    share.backward()
    assert alpha.grad is not None
    conv3 = OPS.index("nor_conv_3x3")
    assert torch.all(alpha.grad[:, conv3] > 0), "raising the 3x3 conv's logit raises the expected cost"
    assert torch.all(alpha.grad[:, OPS.index("none")] < 0)
    with torch.no_grad():  # every edge certain of the 3x3 conv: the whole cost; of `none`: nothing
        alpha.fill_(0.0)
        alpha[:, conv3] = 50.0
    assert float(table.expected(net).detach()) == pytest.approx(1.0, abs=1e-6)
    path = NB201Space().assemble([conv3] * 6)
    assert table.path_cost(net, path, torch.zeros(2, 1, 8, 8)) == pytest.approx(1.0)
    assert table.path_cost(net, NB201Space().assemble([0] * 6), torch.zeros(2, 1, 8, 8)) == 0.0


@pytest.mark.parametrize("space", [DARTSSpace(num_nodes=2, layers=3, channels=4),
                                   NASNetSpace(num_blocks=2), ENASMacroSpace(num_layers=3, channels=4)],
                         ids=["darts", "nasnet", "enas_macro"])
def test_every_cnn_supernet_has_costed_edges_and_a_discrete_cost(space: Any) -> None:
    torch.manual_seed(0)
    options = {"layers": 3, "channels": 4} if space.name == "darts" else {"channels": 4}
    net = build_supernet(space, SPEC, **options)
    x = torch.zeros(2, 1, 8, 8)
    table = build_table(net, x, "params")
    assert table.full > 0
    for _ in range(3):
        arch = space.sample(__import__("numpy").random.default_rng(_))
        assert 0.0 <= table.path_cost(net, arch, x) <= 2.0  # a cell may run one op twice (two inputs)
    assert 0.0 < float(table.expected(net).detach()) < 1.0


def test_latency_table_times_the_ops() -> None:
    net = _nb201()
    table = build_table(net, torch.zeros(2, 1, 8, 8), "latency_ms")
    conv3 = table.costs[0][:, OPS.index("nor_conv_3x3")]
    assert torch.all(conv3 > 0)
    assert net.training, "the timing pass leaves the supernet in training mode"


def _darts_cost(digits: Dataset, penalty: float) -> tuple[float, dict[str, float]]:
    method = DARTS(epochs=1, max_steps=12, batch_size=32, data_fraction=0.2, max_valid=64,
                   arch_learning_rate=0.05, supernet={"channels": 4}, resource_penalty=penalty, resource="flops")
    result = method.search(NB201Space(), digits, seed=0, device=CPU, progress=lambda e, m: None)
    net = _nb201()  # the same shapes: the derived cell's cost share from a fresh table
    table = build_table(net, torch.zeros(2, 1, 8, 8), "flops")
    return table.path_cost(net, result.arch, torch.zeros(2, 1, 8, 8)), result.metrics


def test_darts_large_penalty_derives_a_cheaper_cell(digits: Dataset) -> None:
    free, metrics = _darts_cost(digits, 0.0)
    assert "resource_cost" not in metrics and "expected_resource_cost" not in metrics  # λ = 0: off
    cheap, penalised = _darts_cost(digits, 20.0)
    assert free > 0.2, "without the penalty the short search keeps convolutions"
    assert cheap < free and cheap == pytest.approx(penalised["resource_cost"])
    assert penalised["expected_resource_cost"] < 0.2


def test_darts_zero_penalty_is_the_unpenalised_search(digits: Dataset) -> None:
    runs = []
    for options in ({}, {"resource_penalty": 0.0, "resource": "params"}):
        method = DARTS(epochs=1, max_steps=3, batch_size=16, data_fraction=0.1, max_valid=32,
                       supernet={"channels": 2}, **options)
        runs.append(method.search(NB201Space(), digits, seed=0, device=CPU, progress=lambda e, m: None))
    assert runs[0].state["alphas"] == runs[1].state["alphas"] and runs[0].metrics.keys() == runs[1].metrics.keys()


def test_darts_penalty_gradient_adds_to_alphas_gradient(digits: Dataset) -> None:
    torch.manual_seed(0)
    method = DARTS(batch_size=16, supernet={"channels": 4}, resource_penalty=2.0)
    net = method.build_network(NB201Space(), digits)
    task = method.make_task(digits, CPU, seed=0)
    method.table = method.resource_table(net, task, digits.spec)
    weight_batch, arch_batch = next(task.weight_batches()), next(task.arch_batches())
    grads = method.arch_grads(net, task, weight_batch, arch_batch, xi=0.025)
    loss_only = torch.autograd.grad(task.loss(net, arch_batch), net.arch_parameters())
    penalty = torch.autograd.grad(2.0 * method.table.expected(net), net.arch_parameters())
    for g, lo, p in zip(grads, loss_only, penalty):
        assert torch.allclose(g, lo + p, atol=1e-6)


def test_enas_penalty_lowers_rewards_and_ranks_candidates_by_it(digits: Dataset) -> None:
    options: dict[str, Any] = {"epochs": 1, "train_steps": 2, "controller_steps": 4, "derive_samples": 4,
                               "derive_batches": 1, "batch_size": 16, "supernet": {"channels": 4},
                               "random_baseline": False}
    plain = ENAS(**options).search(NB201Space(), digits, seed=0, device=CPU, progress=lambda e, m: None)
    assert "resource_cost" not in plain.metrics
    method = ENAS(**options, resource_penalty=100.0, resource="params")
    result = method.search(NB201Space(), digits, seed=0, device=CPU, progress=lambda e, m: None)
    costs = [c["resource_cost"] for c in result.state["candidates"]]
    assert result.metrics["resource_cost"] == costs[0] == min(costs), "a huge λ: the cheapest candidate wins"
    accuracy = result.metrics["valid_accuracy"]
    assert result.metrics["valid_reward"] == pytest.approx(accuracy - 100.0 * costs[0])


def test_bad_resource_options_are_config_errors(digits: Dataset) -> None:
    for cls in (DARTS, ENAS):
        with pytest.raises(ConfigError, match="resource must be one of"):
            cls(resource_penalty=1.0, resource="energy")
        with pytest.raises(ConfigError, match="resource_penalty must be a number >= 0"):
            cls(resource_penalty=-1.0)
