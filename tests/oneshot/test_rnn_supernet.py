"""The rnn_cell supernet: shapes, state carry, single paths, the DARTS mixture and derivation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nasforge.core.errors import ConfigError
from nasforge.core.types import Architecture
from nasforge.data.base import LANGUAGE_MODEL, DataSpec
from nasforge.evaluators.train import lm_forward
from nasforge.oneshot.rnn_supernet import RNNSupernet
from nasforge.spaces.rnn_cell import ACTIVATIONS, RNNCellSpace

VOCAB = 30


def _space(**options: object) -> RNNCellSpace:
    return RNNCellSpace(num_nodes=4, embedding_size=8, hidden_size=8, **options)  # type: ignore[arg-type]


def _supernet(**options: object) -> RNNSupernet:
    torch.manual_seed(0)
    return RNNSupernet(_space(**options), VOCAB)


def _ids(batch: int = 3, seq: int = 6) -> torch.Tensor:
    return torch.randint(0, VOCAB, (batch, seq), generator=torch.Generator().manual_seed(1))


# node 1 tanh; node 2 <- 1 relu; node 3 <- 1 sigmoid; node 4 <- 3 identity  (loose ends: 2, 4)
FIXED_TOKENS = (0, 0, 1, 0, 2, 2, 3)


def _fixed(space: RNNCellSpace) -> Architecture:
    return space.assemble(FIXED_TOKENS)


@pytest.mark.parametrize("single_path", [False, True])
def test_shapes_and_state_carry_across_windows(single_path: bool) -> None:
    net = _supernet()
    arch = _fixed(net.space) if single_path else None
    ids = _ids(seq=8)
    logits, state = net.run(ids, arch=arch)
    assert logits.shape == (3, 8, VOCAB)
    assert len(state) == 1 and state[0].shape == (3, 8)
    first, mid = net.run(ids[:, :5], arch=arch)
    second, _ = net.run(ids[:, 5:], mid, arch=arch)
    torch.testing.assert_close(torch.cat([first, second], dim=1), logits)
    fresh = net.run(ids[:, 5:], net.init_state(3, logits), arch=arch)[0]
    assert not torch.allclose(fresh, second)  # the carried state matters


def test_single_path_trains_only_the_chosen_weights() -> None:
    net = _supernet()
    arch = _fixed(net.space)
    logits, _ = net.run(_ids(), arch=arch)
    logits.sum().backward()
    chosen = {(2, 1), (3, 1), (4, 3)}  # (node, source)
    for node in range(2, 5):
        for source in range(1, node):
            assert (net.edge(node, source).weight.grad is not None) == ((node, source) in chosen), (node, source)
    assert net.w0.weight.grad is not None
    assert all(alpha.grad is None for alpha in net.arch_parameters())


def test_single_path_is_the_built_cell_with_the_same_weights() -> None:
    net = _supernet()
    space = net.space
    arch = _fixed(space)
    model = space.build(arch, DataSpec(LANGUAGE_MODEL, (6,), VOCAB))
    _, nodes = space.dag(arch)
    with torch.no_grad():
        model.embedding.weight.copy_(net.embedding.weight)
        model.decoder.bias.copy_(net.decoder.bias)
        model.cell.w0.load_state_dict(net.w0.state_dict())
        for i, (src, _) in enumerate(nodes):
            model.cell.ws[i].weight.copy_(net.edge(i + 2, src).weight)
    ids = _ids()
    torch.testing.assert_close(model(ids), net(ids, arch=arch))


def test_mixture_works_with_lm_forward_and_trains_alpha() -> None:
    net = _supernet()
    logits, state = lm_forward(net, _ids(), None)
    assert logits.shape == (3, 6, VOCAB) and state[0].shape == (3, 8)
    logits.pow(2).mean().backward()
    assert all(alpha.grad is not None and alpha.grad.abs().sum() > 0 for alpha in net.arch_parameters())
    arch_ids = {id(p) for p in net.arch_parameters()}
    assert len(net.weight_parameters()) == len(list(net.parameters())) - len(arch_ids)
    assert not arch_ids & {id(p) for p in net.weight_parameters()}


def test_path_view_runs_its_architecture_through_lm_forward() -> None:
    net = _supernet()
    arch = _fixed(net.space)
    via_view, _ = lm_forward(net.path(arch), _ids(), None)
    torch.testing.assert_close(via_view, net(_ids(), arch=arch))
    with pytest.raises(ValueError):
        net.path(Architecture("nb201", (0,) * 6))


def test_derive_takes_each_nodes_strongest_pair_and_builds() -> None:
    net = _supernet()
    acts = len(ACTIVATIONS)
    with torch.no_grad():
        net.alpha_first[2] = 5.0
        for i, alpha in enumerate(net.alpha_nodes):  # node i + 2 favours reading node i + 1 through relu
            alpha[i * acts + 1] = 5.0
    arch = net.derive()
    assert arch.tokens == (2, 0, 1, 1, 1, 2, 1)
    spec = DataSpec(LANGUAGE_MODEL, (6,), VOCAB)
    assert net.space.build(arch, spec)(_ids()).shape == (3, 6, VOCAB)


def test_derive_is_always_valid_for_random_alphas() -> None:
    net = _supernet()
    gen = torch.Generator().manual_seed(3)
    for _ in range(20):
        with torch.no_grad():
            for alpha in net.arch_parameters():
                alpha.copy_(torch.randn(alpha.shape, generator=gen))
        arch = net.derive()
        assert net.space.assemble(arch.tokens) == arch


def test_alpha_entropy_starts_uniform_and_falls_when_decided() -> None:
    net = _supernet()
    assert net.alpha_entropy() == pytest.approx(net.max_alpha_entropy(), abs=1e-4)
    with torch.no_grad():
        for alpha in net.arch_parameters():
            alpha[0] = 20.0
    assert net.alpha_entropy() < 1e-3


def test_tree_cell_and_other_spaces_are_refused() -> None:
    with pytest.raises(ConfigError, match="dag"):
        RNNSupernet(RNNCellSpace(cell="tree", embedding_size=8, hidden_size=8), VOCAB)
    with pytest.raises(ConfigError, match="rnn_cell"):
        RNNSupernet(object(), VOCAB)  # type: ignore[arg-type]


def test_single_node_cell() -> None:
    net = RNNSupernet(RNNCellSpace(num_nodes=1, embedding_size=8, hidden_size=8), VOCAB)
    arch = net.space.sample(np.random.default_rng(0))
    assert net(_ids(), arch=arch).shape == (3, 6, VOCAB)
    assert net(_ids()).shape == (3, 6, VOCAB)
    assert net.derive().tokens == (int(torch.argmax(net.alpha_first)),)
