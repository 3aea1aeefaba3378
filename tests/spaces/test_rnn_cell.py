"""Recurrent cells: DAG loose ends averaged into h_t, NAS-RL tree cells, the language model."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from nasforge.core.errors import ConfigError
from nasforge.core.types import Architecture
from nasforge.data.base import DataSpec
from nasforge.models.flops import count_flops
from nasforge.models.rnn import DAGCell, LanguageModel, LSTMCell, TreeCell, TreeNode
from nasforge.spaces.rnn_cell import ACTIVATIONS, RNNCellSpace

VOCAB = 13
LM = DataSpec("language_model", (6,), VOCAB)


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensors: threads only add overhead


def dag_arch(space: RNNCellSpace, first: str, nodes: list[tuple[int, str]]) -> Architecture:
    tokens = [ACTIVATIONS.index(first)]
    for src, act in nodes:
        tokens += [src - 1, ACTIVATIONS.index(act)]
    return space.assemble(tokens)


def test_dag_decisions_read_earlier_nodes_only() -> None:
    space = RNNCellSpace(num_nodes=8)
    arch = space.sample(np.random.default_rng(0))
    decisions = [dec for dec, _ in space.walk(arch.tokens)]
    assert len(decisions) == 1 + 2 * 7
    inputs = [d for d in decisions if d.name == "input"]
    assert [len(d.options) for d in inputs] == list(range(1, 8))  # node i reads one of nodes 1..i-1


def test_loose_ends_are_averaged_into_h() -> None:
    space = RNNCellSpace(num_nodes=4, embedding_size=5, hidden_size=5)
    arch = dag_arch(space, "tanh", [(1, "relu"), (1, "sigmoid"), (2, "identity")])
    assert space.loose_ends(arch) == [3, 4]
    model = space.build(arch, LM)
    cell = model.cell
    assert isinstance(cell, DAGCell)
    x, h = torch.randn(2, 5), torch.randn(2, 5)
    s1 = cell._highway(h, cell.w0(torch.cat([x, h], dim=-1)), "tanh")
    s2 = cell._highway(s1, cell.ws[0](s1), "relu")
    s3 = cell._highway(s1, cell.ws[1](s1), "sigmoid")
    s4 = cell._highway(s2, cell.ws[2](s2), "identity")
    out, state = cell(x, (h,))
    torch.testing.assert_close(out, (s3 + s4) / 2)
    assert state[0] is out


def test_language_model_shapes_tied_weights_and_training() -> None:
    space = RNNCellSpace(num_nodes=4, embedding_size=8, hidden_size=8)
    rng = np.random.default_rng(1)
    ids = torch.randint(0, VOCAB, (3, 6))
    for _ in range(20):  # what the conformance build test does for image spaces
        model = space.build(space.sample(rng), LM)
        assert isinstance(model, LanguageModel)
        logits = model(ids)
        assert logits.shape == (3, 6, VOCAB)
        torch.nn.functional.cross_entropy(logits.reshape(-1, VOCAB), ids.reshape(-1)).backward()
    assert model.decoder.weight is model.embedding.weight
    logits, state = model.run(ids)
    again, _ = model.run(ids, state)  # state carried across batches
    assert again.shape == logits.shape
    assert count_flops(model, (6,), dtype=torch.long) > 0
    untied = RNNCellSpace(embedding_size=4, hidden_size=8, tie_weights=False).build(
        RNNCellSpace(embedding_size=4, hidden_size=8, tie_weights=False).sample(rng), LM)
    assert untied(ids).shape == (3, 6, VOCAB)
    with pytest.raises(ConfigError):
        RNNCellSpace(embedding_size=4, hidden_size=8)
    with pytest.raises(ValueError, match="seq_len"):
        space.build(space.sample(rng), DataSpec("classification", (3, 8, 8), 10))


@pytest.mark.parametrize("base", [2, 8])
def test_tree_cell(base: int) -> None:
    space = RNNCellSpace(cell="tree", base=base, embedding_size=6, hidden_size=6)
    rng = np.random.default_rng(base)
    arch = space.sample(rng)
    assert len(arch.tokens) == 2 * (2 * base - 1) + 4
    desc = space.describe(arch)
    assert len(desc["nodes"]) == 2 * base - 1 and 0 <= desc["inject"]["node"] < 2 * base - 2
    ids = torch.randint(0, VOCAB, (2, 6))
    for _ in range(5):
        model = space.build(space.sample(rng), LM)
        assert isinstance(model.cell, TreeCell)
        out = model(ids)
        assert out.shape == (2, 6, VOCAB)
        out.sum().backward()
    assert RNNCellSpace(**json.loads(json.dumps(space.config()))).config() == space.config()


def test_tree_cell_memory_and_inject() -> None:
    # base 2: leaves 0, 1 and root 2; c_{t-1} injected at leaf 0, c_t read from leaf 1's pre-activation
    cell = TreeCell(3, 3, 2, [TreeNode("add", "tanh"), TreeNode("elem_mult", "relu"), TreeNode("elem_mult", "sigmoid")],
                    TreeNode("add", "relu"), inject_node=0, memory_node=1)
    x, h, c = torch.randn(1, 3), torch.randn(1, 3), torch.randn(1, 3)
    wx, wh = cell.wx(x).chunk(2, -1), cell.wh(h).chunk(2, -1)
    a0 = torch.relu(torch.tanh(wx[0] + wh[0]) + c)
    pre1 = wx[1] * wh[1]
    out, (_, c_new) = cell(x, (h, c))
    torch.testing.assert_close(out, torch.sigmoid(a0 * torch.relu(pre1)))
    torch.testing.assert_close(c_new, pre1)


def test_lstm_baseline_cell_carries_state() -> None:
    """The LSTM baseline runs behind the same LanguageModel interface as the searched cells."""
    torch.manual_seed(0)
    model = LanguageModel(LSTMCell(16, 16), vocab_size=30, embedding_size=16, tie_weights=True)
    ids = torch.randint(0, 30, (3, 5))
    logits, state = model.run(ids)
    assert logits.shape == (3, 5, 30) and len(state) == 2 and state[1].shape == (3, 16)
    whole = model(torch.cat([ids, ids], dim=1))
    again, _ = model.run(ids, state)
    assert torch.allclose(whole[:, 5:], again, atol=1e-6)  # state carried across windows
