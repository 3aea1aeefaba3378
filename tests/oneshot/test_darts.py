"""DARTS: the unrolled architecture gradient against double backward, the α step, tiny real searches."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from nasforge.core.errors import ConfigError
from nasforge.data.base import Dataset, DataSpec
from nasforge.data.loader import data_config, load_dataset
from nasforge.data.text import TextProvider
from nasforge.oneshot.base import OneShotMethod
from nasforge.oneshot.darts import (
    DARTS,
    ImageTask,
    cosine_lr,
    first_order_arch_grads,
    second_order_arch_grads,
)
from nasforge.oneshot.supernet import Supernet, build_supernet
from nasforge.spaces.darts import DARTS_OPS, DARTSSpace
from nasforge.spaces.nb201 import NB201Space
from nasforge.spaces.rnn_cell import RNNCellSpace

CPU = torch.device("cpu")
SPEC = DataSpec("classification", (1, 8, 8), 3)
TINY = {"layers": 3, "channels": 4}


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensors: threads only add overhead


@pytest.fixture(scope="module")
def digits() -> Dataset:
    return load_dataset(data_config("builtin:digits", as_images=True))


# ---- the second-order gradient -------------------------------------------------------------------
def smooth(net: nn.Module) -> nn.Module:
    """ReLUs -> softplus: finite differences of gradients need a smooth loss (see `test_..._relu`)."""
    for module in list(net.modules()):
        for name, child in list(module.named_children()):
            if isinstance(child, nn.ReLU):
                setattr(module, name, nn.Softplus())
    return net


def float64_supernet(space: Any, seed: int, **options: Any) -> Supernet:
    torch.manual_seed(seed)
    net = build_supernet(space, SPEC, **options).double()
    with torch.no_grad():
        for alpha in net.arch_parameters():
            alpha.normal_(0.0, 0.5)  # away from uniform, so the α gradient has structure
    return net


def batches(seed: int, n: int = 8) -> tuple[tuple[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    train = torch.randn(n, 1, 8, 8, generator=g, dtype=torch.float64), torch.randint(0, 3, (n,), generator=g)
    valid = torch.randn(n, 1, 8, 8, generator=g, dtype=torch.float64), torch.randint(0, 3, (n,), generator=g)
    return train, valid


def exact_unrolled_grads(net: Supernet, train: tuple[torch.Tensor, torch.Tensor],
                         valid: tuple[torch.Tensor, torch.Tensor], xi: float) -> list[torch.Tensor]:
    """d/dα L_val(w − ξ ∇w L_train(w, α), α) by double backward through the unrolled step."""
    weights, alphas = net.weight_parameters(), net.arch_parameters()
    train_loss = F.cross_entropy(net(train[0]), train[1])
    grads = torch.autograd.grad(train_loss, weights, create_graph=True, allow_unused=True)
    names = {id(p): name for name, p in net.named_parameters()}
    params: dict[str, torch.Tensor] = dict(net.named_parameters())
    for w, g in zip(weights, grads):
        if g is not None:
            params[names[id(w)]] = w - xi * g
    valid_loss = F.cross_entropy(functional_call(net, params, (valid[0],)), valid[1])
    exact = torch.autograd.grad(valid_loss, alphas, allow_unused=True)
    return [torch.zeros_like(a) if e is None else e for a, e in zip(alphas, exact)]


def flat(tensors: list[torch.Tensor]) -> torch.Tensor:
    return torch.cat([t.reshape(-1) for t in tensors])


def closures(net: Supernet, train: tuple[torch.Tensor, torch.Tensor],
             valid: tuple[torch.Tensor, torch.Tensor]) -> tuple[Callable[[], torch.Tensor], Callable[[], torch.Tensor]]:
    return (lambda: F.cross_entropy(net(train[0]), train[1]),
            lambda: F.cross_entropy(net(valid[0]), valid[1]))


def compare(net: Supernet, seed: int, xi: float, epsilon_scale: float = 0.01) -> tuple[float, float]:
    """(relative error of the whole gradient, relative error of its Hessian term) against double backward."""
    train, valid = batches(seed)
    train_loss, valid_loss = closures(net, train, valid)
    approx = flat(second_order_arch_grads(net.weight_parameters(), net.arch_parameters(), train_loss, valid_loss,
                                          xi, epsilon_scale=epsilon_scale))
    first = flat(first_order_arch_grads(net.arch_parameters(), valid_loss))
    exact = flat(exact_unrolled_grads(net, train, valid, xi))
    assert float((exact - first).norm()) > 0.1 * float(exact.norm()), "the Hessian term must matter here"
    whole = float((approx - exact).norm() / exact.norm())
    hessian = float(((approx - first) - (exact - first)).norm() / (exact - first).norm())
    return whole, hessian


@pytest.mark.parametrize("seed", [0, 1])
def test_second_order_gradient_matches_double_backward_on_a_darts_supernet(seed: int) -> None:
    """The paper's ε (0.01 / ‖∇w' L_val‖), float64, a tiny DARTS supernet without max pooling (not smooth)."""
    space = DARTSSpace(num_nodes=2, ops=["avg_pool_3x3", "skip_connect", "sep_conv_3x3", "dil_conv_3x3"])
    net = smooth(float64_supernet(space, seed, layers=3, channels=2))
    assert isinstance(net, Supernet)
    whole, hessian = compare(net, seed, xi=0.5)
    assert whole < 1e-3
    assert hessian < 1e-3


def test_second_order_gradient_matches_double_backward_on_an_nb201_supernet() -> None:
    net = smooth(float64_supernet(NB201Space(), 0, channels=4))
    assert isinstance(net, Supernet)
    whole, hessian = compare(net, 0, xi=0.5)
    assert whole < 1e-3
    assert hessian < 1e-3


def test_second_order_gradient_on_the_real_relu_supernet_with_a_small_epsilon() -> None:
    """With ReLUs (the ops as searched) the gradient has kinks: at the paper's ε a few units change sign and
    the finite difference measures a smoothed Hessian; a small ε stays inside one linear region."""
    net = float64_supernet(NB201Space(), 0, channels=4)
    whole, hessian = compare(net, 0, xi=0.5, epsilon_scale=1e-5)
    assert whole < 1e-3
    assert hessian < 1e-3


def test_second_order_step_leaves_weights_and_buffers_as_they_were() -> None:
    net = float64_supernet(NB201Space(), 2, channels=2)
    before = {k: v.detach().clone() for k, v in net.state_dict().items()}
    train, valid = batches(2)
    second_order_arch_grads(net.weight_parameters(), net.arch_parameters(), *closures(net, train, valid), 0.1,
                            buffers=list(net.buffers()))
    for key, value in net.state_dict().items():
        assert torch.equal(value, before[key]), key


# ---- the search loop ---------------------------------------------------------------------------
def test_darts_is_a_one_shot_method_and_checks_its_options() -> None:
    method: OneShotMethod = DARTS()
    assert method.name == "darts"
    with pytest.raises(ConfigError, match="order must be 1 or 2"):
        DARTS(order=3)
    with pytest.raises(ConfigError, match="data_fraction"):
        DARTS(data_fraction=0.0)
    assert DARTS().hparams("classification")["learning_rate"] == 0.025
    assert DARTS(learning_rate=0.1).hparams("classification")["learning_rate"] == 0.1
    assert DARTS().hparams("language_model")["grad_clip"] == 0.25


def test_cosine_schedule_runs_from_the_high_to_the_low_rate() -> None:
    assert cosine_lr(0.025, 0.001, 0, 100) == pytest.approx(0.025)
    assert cosine_lr(0.025, 0.001, 50, 100) == pytest.approx(0.013)
    assert cosine_lr(0.025, 0.001, 100, 100) == pytest.approx(0.001)


def test_training_split_is_halved_between_weights_and_alpha(digits: Dataset) -> None:
    task = ImageTask(digits, CPU, batch_size=32, data_fraction=0.5, max_valid=None, seed=0)
    rows = round(0.5 * len(digits.train))
    assert len(task.weight_y) + len(task.arch_y) == rows
    assert abs(len(task.weight_y) - len(task.arch_y)) <= 1
    weight_rows = {tuple(r) for r in task.weight_x.reshape(len(task.weight_x), -1).tolist()}
    arch_rows = {tuple(r) for r in task.arch_x.reshape(len(task.arch_x), -1).tolist()}
    assert len(weight_rows & arch_rows) <= 3  # the digits set has a few duplicate images, nothing more
    assert len(task.valid_y) == len(digits.valid)


def test_first_order_step_moves_alpha_against_its_validation_gradient(digits: Dataset) -> None:
    torch.manual_seed(0)
    method = DARTS(order=1, batch_size=16, supernet=TINY)
    net = method.build_network(DARTSSpace(num_nodes=2), digits)
    assert isinstance(net, Supernet)
    task = method.make_task(digits, CPU, seed=0)
    weight_batch, arch_batch = next(task.weight_batches()), next(task.arch_batches())
    grads = method.arch_grads(net, task, weight_batch, arch_batch, xi=0.025)
    alphas = net.arch_parameters()
    expected = torch.autograd.grad(task.loss(net, arch_batch), alphas)
    for g, e in zip(grads, expected):
        assert torch.allclose(g, e, atol=1e-6), "first order: ∇α of the α-half loss, nothing else"
        assert float(g.abs().max()) > 0
    before = [a.detach().clone() for a in alphas]
    optimizer = torch.optim.Adam(alphas, lr=3e-4, betas=(0.5, 0.999))
    for alpha, grad in zip(alphas, grads):
        alpha.grad = grad
    optimizer.step()
    for alpha, old, grad in zip(alphas, before, grads):
        moved = alpha.detach() - old
        big = grad.abs() > 1e-4
        assert torch.all(torch.sign(moved[big]) == -torch.sign(grad[big]))
        assert float(moved.abs().max()) == pytest.approx(3e-4, rel=0.05)  # Adam's first step: lr per coordinate


@pytest.mark.parametrize("order", [1, 2])
def test_tiny_search_on_digits_returns_a_buildable_cell(digits: Dataset, order: int) -> None:
    space = DARTSSpace(num_nodes=2)  # 5 edges per cell instead of 14: the same code, a third of the time
    reports: list[tuple[int, dict[str, float]]] = []
    method = DARTS(order=order, epochs=2, batch_size=32, data_fraction=0.1, max_valid=64, supernet=TINY)
    result = method.search(space, digits, seed=0, device=CPU, progress=lambda e, m: reports.append((e, m)))
    assert [e for e, _ in reports] == [1, 2]
    for _, row in reports:
        assert {"train_loss", "valid_accuracy", "alpha_entropy"} <= set(row)
        assert 0.0 <= row["valid_accuracy"] <= 1.0
        assert 0.0 < row["alpha_entropy"] <= math.log(len(DARTS_OPS)) + 1e-6
    arch = result.arch
    assert space.from_json(json.loads(json.dumps(space.to_json(arch)))) == arch
    assert space.build(arch, digits.spec)(torch.zeros(2, 1, 8, 8)).shape == (2, 10)
    for key in ("valid_accuracy", "supernet_valid_accuracy", "search_seconds", "peak_memory_mb"):
        assert math.isfinite(result.metrics[key])
    assert result.metrics["steps"] == 4.0  # 72 rows per half / 32 per batch = 2 steps, 2 epochs
    assert result.state["genotype"] == space.describe(arch)
    assert result.state["order"] == order
    for cell in ("normal", "reduce"):
        table = torch.tensor(result.state["alphas"][cell])
        assert table.shape == (5, len(DARTS_OPS))
        assert torch.allclose(table.sum(dim=1), torch.ones(5))
    json.dumps(result.state)


def test_search_stops_at_max_steps_and_refuses_unknown_supernet_options(digits: Dataset) -> None:
    result = DARTS(epochs=5, max_steps=1, batch_size=16, data_fraction=0.1, max_valid=32,
                   supernet={"channels": 2}).search(NB201Space(), digits, seed=1, device=CPU,
                                                   progress=lambda e, m: None)
    assert result.metrics["steps"] == 1.0 and result.metrics["epochs"] == 1.0
    assert result.arch.space == "nb201"
    with pytest.raises(ConfigError, match="bad options"):
        DARTS(supernet={"layers": 2}).search(NB201Space(), digits, seed=0, device=CPU, progress=lambda e, m: None)


def test_tiny_search_on_ptb_searches_the_recurrent_cell(shared_data: Path) -> None:
    data = TextProvider(shared_data / "ptb", max_tokens=2000, max_vocab=200).load()
    data.valid.x, data.valid.y = data.valid.x[:500], data.valid.y[:500]
    space = RNNCellSpace(num_nodes=3, embedding_size=8, hidden_size=8)
    reports: list[dict[str, float]] = []
    result = DARTS(order=2, epochs=1, max_steps=3, batch_size=4, bptt=8).search(
        space, data, seed=0, device=CPU, progress=lambda e, m: reports.append(m))
    assert len(reports) == 1 and math.isfinite(reports[0]["valid_perplexity"])
    vocab = data.spec.num_outputs
    assert 1.0 < result.metrics["valid_perplexity"] < 2 * vocab  # near-uniform after 3 steps: about `vocab`
    assert 1.0 < result.metrics["supernet_valid_perplexity"] < 2 * vocab
    assert result.arch == space.assemble(result.arch.tokens)
    assert space.build(result.arch, data.spec) is not None
