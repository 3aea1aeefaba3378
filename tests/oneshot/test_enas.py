"""ENAS: the shared-weight phase, the controller phase, and tiny searches on PTB and digits."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from nasforge.core.errors import ConfigError
from nasforge.data.base import Dataset
from nasforge.data.loader import data_config, load_dataset
from nasforge.data.text import TextProvider
from nasforge.oneshot.base import OneShotMethod
from nasforge.oneshot.enas import ENAS, ControllerAgent, LanguageChild
from nasforge.spaces.enas_macro import ENASMacroSpace
from nasforge.spaces.nb201 import NB201Space
from nasforge.spaces.rnn_cell import RNNCellSpace

CPU = torch.device("cpu")
TINY_LM = {"batch_size": 4, "bptt": 8, "train_steps": 4, "controller_steps": 4, "derive_samples": 3,
           "derive_batches": 2}


@pytest.fixture(scope="module")
def ptb(shared_data: Path) -> Dataset:
    """A few thousand PTB tokens and a 300-word vocabulary; validation cut to 2,000 tokens."""
    data = TextProvider(shared_data / "ptb", max_tokens=3000, max_vocab=300).load()
    data.valid.x, data.valid.y = data.valid.x[:2000], data.valid.y[:2000]
    return data


@pytest.fixture(scope="module")
def digits() -> Dataset:
    return load_dataset(data_config("builtin:digits", as_images=True))


def _space() -> RNNCellSpace:
    return RNNCellSpace(num_nodes=4, embedding_size=8, hidden_size=8)


def _agent(space: RNNCellSpace) -> ControllerAgent:
    return ControllerAgent(space, seed=0, hidden=16, embed=8, lr=0.01, entropy_weight=1e-4, baseline_decay=0.95,
                           init_range=0.1)


def test_is_a_one_shot_method() -> None:
    method: OneShotMethod = ENAS()
    assert method.name == "enas"


def test_shared_weight_step_changes_the_weights(ptb: Dataset) -> None:
    child = ENAS(**TINY_LM).make_child(_space(), ptb, CPU)
    assert isinstance(child, LanguageChild)
    before = [p.detach().clone() for p in child.weights]
    agent = _agent(_space())
    loss = child.train_epoch(agent.draw, epoch=1)
    assert math.isfinite(loss) and loss > 0
    changed = [not torch.equal(b, p) for b, p in zip(before, child.weights)]
    assert changed[0]  # the embedding (tied to the decoder) always trains
    assert sum(changed) < len(changed)  # edges no sampled path used stay untouched (M = 1 paths only)
    assert all(alpha.grad is None for alpha in child.net.arch_parameters())  # type: ignore[operator]


def test_controller_step_changes_the_controller(ptb: Dataset) -> None:
    space = _space()
    agent = _agent(space)
    arch = agent.draw()
    before = {k: v.detach().clone() for k, v in agent.controller.params.items()}
    entropy = agent.update(arch, reward=0.3)
    agent.update(agent.draw(), reward=0.9)
    assert entropy > 0 and agent.baseline is not None and 0.3 < agent.baseline < 0.9
    moved = [k for k, v in agent.controller.params.items() if not torch.equal(before[k], v)]
    assert "lstm.w_ih" in moved and any(k.startswith("head.") for k in moved)


def test_controller_learns_to_prefer_the_rewarded_choice() -> None:
    """REINFORCE end to end: reward = 1 when node 1's activation is relu, else 0."""
    space = _space()
    agent = ControllerAgent(space, seed=0, hidden=16, embed=8, lr=0.02, entropy_weight=1e-4, baseline_decay=0.9,
                            init_range=0.1)
    draws = [agent.draw() for _ in range(200)]
    before = np.mean([a.tokens[0] == 1 for a in draws])
    for _ in range(150):
        arch = agent.draw()
        agent.update(arch, float(arch.tokens[0] == 1))
    after = np.mean([agent.draw().tokens[0] == 1 for _ in range(200)])
    assert after > max(0.6, before + 0.3)


def test_tiny_search_on_ptb_returns_a_valid_arch_and_reports_progress(ptb: Dataset) -> None:
    space = _space()
    seen: list[tuple[int, dict[str, float]]] = []
    result = ENAS(epochs=2, **TINY_LM).search(space, ptb, seed=0, device=CPU,
                                               progress=lambda epoch, m: seen.append((epoch, m)))
    assert space.assemble(result.arch.tokens) == result.arch
    assert [epoch for epoch, _ in seen] == [1, 2]
    for _, metrics in seen:
        assert {"train_loss", "valid_reward", "controller_entropy", "valid_perplexity"} <= set(metrics)
        assert all(math.isfinite(v) for v in metrics.values())
        assert metrics["valid_reward"] == pytest.approx(80.0 / metrics["valid_perplexity"], rel=0.5)
    assert 1 <= len(result.candidates) <= 3 and result.candidates[0][0] == result.arch
    scores = [score for _, score in result.candidates]
    assert scores == sorted(scores)  # perplexity: best (lowest) first
    assert result.metrics["valid_perplexity"] == scores[0]
    assert result.metrics["valid_reward"] == pytest.approx(80.0 / scores[0])
    assert scores[0] <= result.metrics["policy_mean_valid_perplexity"] <= scores[-1]
    assert all(math.isfinite(v) for v in result.metrics.values())
    assert result.metrics["random_mean_valid_perplexity"] > 1.0
    assert result.state["reward_curve"] == [m["valid_reward"] for _, m in seen]
    assert space.build(result.arch, ptb.spec)(torch.zeros(2, 5, dtype=torch.long)).shape == (2, 5, 300)


def test_same_seed_same_search(ptb: Dataset) -> None:
    runs = [ENAS(epochs=1, **TINY_LM).search(_space(), ptb, seed=7, device=CPU, progress=lambda e, m: None)
            for _ in range(2)]
    assert runs[0].arch == runs[1].arch
    assert runs[0].metrics["valid_perplexity"] == runs[1].metrics["valid_perplexity"]


@pytest.mark.parametrize("space", [ENASMacroSpace(num_layers=3, channels=4), NB201Space()], ids=["enas_macro", "nb201"])
def test_tiny_search_on_digits(digits: Dataset, space: ENASMacroSpace | NB201Space) -> None:
    seen: list[dict[str, float]] = []
    method = ENAS(epochs=2, train_steps=3, controller_steps=3, derive_samples=2, derive_batches=1, batch_size=16,
                  supernet={"channels": 4})
    result = method.search(space, digits, seed=0, device=CPU, progress=lambda e, m: seen.append(m))
    assert space.assemble(result.arch.tokens) == result.arch
    assert len(seen) == 2 and all(math.isfinite(v) for m in seen for v in m.values())
    assert all(0.0 <= m["valid_accuracy"] <= 1.0 and m["valid_reward"] == m["valid_accuracy"] for m in seen)
    assert 0.0 <= result.metrics["valid_accuracy"] <= 1.0
    assert space.build(result.arch, digits.spec)(torch.zeros(2, 1, 8, 8)).shape == (2, 10)


def test_micro_space_searches_enas_own_five_ops_by_default(digits: Dataset) -> None:
    from nasforge.oneshot.enas import ENAS_MICRO_OPS
    from nasforge.spaces.darts import DARTSSpace

    space = DARTSSpace(num_nodes=2, layers=3, channels=4)
    searched = ENAS().searched_space(space)
    assert sorted(searched.ops) == sorted(ENAS_MICRO_OPS) and len(ENAS_MICRO_OPS) == 5
    assert ENAS(micro_ops="space").searched_space(space) is space
    chosen = DARTSSpace(num_nodes=2, layers=3, channels=4, ops=["sep_conv_3x3", "skip_connect"])
    assert ENAS().searched_space(chosen) is chosen  # the user's own ops win
    method = ENAS(epochs=1, train_steps=2, controller_steps=3, derive_samples=3, derive_batches=1, batch_size=16,
                  supernet={"channels": 4})
    result = method.search(space, digits, seed=0, device=CPU, progress=lambda e, m: None)
    ops = {op for cell in ("normal", "reduce") for op, _ in space.describe(result.arch)[cell]}
    assert ops <= set(ENAS_MICRO_OPS)
    assert space.assemble(result.arch.tokens) == result.arch  # retrained in the study's own space
    with pytest.raises(ConfigError, match="micro_ops"):
        ENAS(micro_ops="nasnet")


def test_bad_inputs_are_config_errors(ptb: Dataset, digits: Dataset) -> None:
    with pytest.raises(ConfigError, match="epochs"):
        ENAS(epochs=0)
    with pytest.raises(ConfigError, match="baseline_decay"):
        ENAS(baseline_decay=1.0)
    with pytest.raises(ConfigError, match="dag"):
        ENAS(**TINY_LM).make_child(RNNCellSpace(cell="tree", embedding_size=8, hidden_size=8), ptb, CPU)
    with pytest.raises(ConfigError, match="rnn_cell"):
        ENAS(**TINY_LM).make_child(NB201Space(), ptb, CPU)
    with pytest.raises(ConfigError, match="image data"):
        ENAS().make_child(_space(), digits, CPU)


def test_a_diverged_child_is_skipped_not_propagated(ptb: Dataset) -> None:
    child = ENAS(**TINY_LM).make_child(_space(), ptb, CPU)
    assert isinstance(child, LanguageChild)
    with torch.no_grad():
        child.net.w0.bias.fill_(math.nan)  # every path reads w0: every loss is NaN
    before = child.net.embedding.weight.detach().clone()
    assert math.isnan(child.train_epoch(_agent(_space()).draw, epoch=1))
    assert torch.equal(before, child.net.embedding.weight)  # no NaN step was taken
    reward, ppl = child.reward(_agent(_space()).draw())
    assert math.isfinite(reward) and reward < 1e-15 and ppl == pytest.approx(math.exp(50.0))
    assert child.valid_state is None
