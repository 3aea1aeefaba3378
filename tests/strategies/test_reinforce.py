from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest
import torch

from nasforge.core.types import Decision, Result, TrialState
from nasforge.spaces.base import TokenSpace
from nasforge.strategies.reinforce import Reinforce
from tests.strategies import checks

NAME = "reinforce"


class AnchorSpace(TokenSpace):
    """NAS-RL's layout in miniature: per layer, yes/no anchors to every earlier layer, then an op.

    Layer 0's op may not be "c" (a masked option), to check that masks are obeyed.
    """

    name = "anchors"

    def __init__(self, layers: int = 4) -> None:
        self.layout: list[Decision] = []
        for i in range(layers):
            self.layout += [Decision("anchor", (False, True), kind="anchor", layer=i, source=j) for j in range(i)]
            self.layout.append(Decision("op", ("a", "b", "c"), allowed=(0, 1) if i == 0 else None, layer=i))

    def decision(self, prefix: Sequence[int]) -> Decision | None:
        return self.layout[len(prefix)] if len(prefix) < len(self.layout) else None


def anchors_on(tokens: Sequence[int], space: AnchorSpace) -> int:
    return sum(t for t, d in zip(tokens, space.layout) if d.kind == "anchor")


def test_masks_and_one_head_per_decision_name() -> None:
    space = AnchorSpace()
    strategy = Reinforce(space, seed=0, batch_size=4)
    for p in strategy.ask(40):
        space.assemble(p.arch.tokens)
        assert p.arch.tokens[0] != 2, "masked option sampled"
    assert sorted(strategy.controller.names) == ["anchor", "op"]
    op = strategy.controller.names["op"]
    assert strategy.controller.params[f"head.{op}.w"].shape == (3, strategy.hidden)


def test_anchor_probability_is_the_attention_sigmoid() -> None:
    """With v = 0 every skip is a coin flip, whatever the LSTM says: the anchor head is the attention."""
    space = AnchorSpace(layers=6)
    strategy = Reinforce(space, seed=1)
    with torch.no_grad():
        strategy.controller.params["anchor.v"].zero_()
    strategy.controller.changed()
    rng = np.random.default_rng(0)
    total = sum(anchors_on(strategy.controller.sample(space, rng), space) for _ in range(400))
    assert abs(total / (400 * 15) - 0.5) < 0.03
    # the autograd path (used for updates) agrees: each anchor's log-probability is log(1/2)
    tokens = strategy.controller.sample(space, rng)
    with torch.no_grad():
        decisions = [d for d, _ in space.walk(tokens)]
        logp_all, _ = strategy.controller.score(decisions, [tokens])
        strategy.controller.params["anchor.w_curr"].mul_(7.0)  # attention inputs do not matter now
        logp_again, _ = strategy.controller.score(decisions, [tokens])
    assert torch.allclose(logp_all, logp_again)


def test_learns_to_add_skip_connections() -> None:
    """Reward = number of anchors on: REINFORCE (through the attention weights) raises it."""
    space = AnchorSpace(layers=5)
    strategy = Reinforce(space, seed=2, batch_size=5, lr=0.01, resample=0)
    before = strategy.controller.params["anchor.w_prev"].detach().clone()
    counts = []
    for _ in range(60):
        batch = strategy.ask(5)
        for p in batch:
            counts.append(anchors_on(p.arch.tokens, space))
            strategy.tell(p, Result(TrialState.COMPLETE, score=float(counts[-1])))
    assert not torch.equal(before, strategy.controller.params["anchor.w_prev"])
    assert np.mean(counts[-50:]) > np.mean(counts[:50]) + 2


def test_beats_random_on_nas_bench_201(shared_data) -> None:
    table = shared_data / checks.TABLE
    if not table.is_file():
        pytest.skip(f"{table} not found")
    seeds = range(4)
    ours = checks.mean_final_test(NAME, table, "cifar100", 150, seeds)
    random = checks.mean_final_test("random", table, "cifar100", 150, seeds)
    assert ours > random


def test_depth_schedule_grows_the_depth_and_trains_no_depth_head() -> None:
    """NAS-RL's schedule: the depth is given (start 2, +2 every 4 networks), never learnt."""
    from nasforge.core import registry
    from nasforge.core.errors import ConfigError
    from nasforge.spaces.chain_cnn import ChainCNNSpace

    space = ChainCNNSpace(num_layers=6, min_layers=2)
    strategy = Reinforce(space, seed=0, batch_size=4, resample=0,
                         depth_schedule={"start": 2, "step": 2, "every": 4})
    depths = []
    for _ in range(4):
        batch = strategy.ask(4)
        for p in batch:
            depths.append(space.depth(p.arch))
            assert p.info["scheduled_depth"] == depths[-1]
            strategy.tell(p, Result(TrialState.COMPLETE, score=float(sum(p.arch.tokens) % 7)))
        if len(depths) == 4:
            depth_head = strategy.controller.names["depth"]
            head = strategy.controller.params[f"head.{depth_head}.w"].detach().clone()
    assert depths == [2] * 4 + [4] * 4 + [6] * 8  # capped at num_layers
    assert torch.equal(head, strategy.controller.params[f"head.{depth_head}.w"])  # given, not chosen
    assert len(strategy.log) == 4
    # the schedule resumes where it was
    again = Reinforce(space, seed=0, batch_size=4, resample=0, depth_schedule={"start": 2, "step": 2, "every": 4})
    again.load_state_dict(strategy.state_dict())
    assert [space.depth(p.arch) for p in again.ask(2)] == [6, 6]
    with pytest.raises(ConfigError, match="depth_schedule needs a space with a 'depth' decision"):
        registry.create("strategy", "reinforce", space=ChainCNNSpace(num_layers=3), depth_schedule={"step": 1})
    with pytest.raises(ConfigError, match="start, step and every"):
        registry.create("strategy", "reinforce", space=space, depth_schedule={"rate": 1})


class Grid(TokenSpace):
    """Three decisions of three choices: 27 architectures."""

    name = "grid"

    def decision(self, prefix: Sequence[int]) -> Decision | None:
        return Decision(f"d{len(prefix)}", ("a", "b", "c")) if len(prefix) < 3 else None


def test_a_converged_controller_still_proposes_every_new_architecture() -> None:
    space = Grid()
    strategy = Reinforce(space, seed=0, batch_size=1000)  # no update within the test: the policy stays put
    for dec in (space.decision([]), space.decision([0]), space.decision([0, 0])):
        idx = strategy.controller.ensure(dec)
        strategy.controller.params[f"head.{idx}.b"].data[:] = torch.tensor([30.0, 0.0, 0.0])
    strategy.controller.changed()
    assert {tuple(strategy.controller.sample(space, strategy.rng)) for _ in range(50)} == {(0, 0, 0)}
    keys = []
    for _ in range(27):
        (p,) = strategy.ask(1)
        keys.append(p.key)
        strategy.tell(p, Result(TrialState.COMPLETE, score=1.0))
    assert keys[0] == space.key(space.assemble([0, 0, 0]))  # the policy's own choice first
    assert len(set(keys)) == 27  # then every other architecture, none proposed twice
    (again,) = strategy.ask(1)  # nothing new is left: a known one, answered from the store
    assert again.key in keys


def test_no_resample_means_the_policy_draw_as_it_is() -> None:
    space = Grid()
    strategy = Reinforce(space, seed=0, batch_size=1000, resample=0)
    for dec in (space.decision([]), space.decision([0]), space.decision([0, 0])):
        idx = strategy.controller.ensure(dec)
        strategy.controller.params[f"head.{idx}.b"].data[:] = torch.tensor([30.0, 0.0, 0.0])
    strategy.controller.changed()
    assert {strategy.ask(1)[0].arch.tokens for _ in range(5)} == {(0, 0, 0)}


def test_update_log_is_saved_packed_and_the_list_format_before_still_loads() -> None:
    """The log grows by one batch per update and is saved after every trial: it is saved packed, and a state
    with the list "log" of the code before rebuilds the same controller (the same next proposals)."""
    import json

    a = checks.make("reinforce", seed=2, batch_size=4)
    checks.drive(a, 30)
    state = json.loads(json.dumps(a.state_dict()))
    assert isinstance(state["updates"], str) and "log" not in state and len(a.log) >= 5
    old = {k: v for k, v in state.items() if k != "updates"}
    old["log"] = [[b, r, sc] for b, r, sc in a.log]
    expected = [p.key for p in a.ask(6)]
    for saved in (state, old):
        b = checks.make("reinforce", seed=2, batch_size=4)
        b.load_state_dict(saved)
        assert b.log == a.log
        assert b.state_dict()["updates"] == state["updates"]
        assert [p.key for p in b.ask(6)] == expected
