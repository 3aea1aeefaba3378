from __future__ import annotations

import pytest

from nasforge.core.types import Result, TrialState
from tests.strategies import checks

NAME = "qlearning"


def test_same_seed_same_proposals() -> None:
    checks.check_determinism(NAME, replay=20)


def test_resume_with_trials_in_flight() -> None:
    checks.check_resume_with_pending(NAME, replay=20)


def test_failures_and_strangers() -> None:
    checks.check_failures(NAME, replay=20)
    checks.check_ignores_strangers(NAME, replay=20)


def test_epsilon_anneals_from_one_to_a_tenth_over_the_budget() -> None:
    strategy = checks.make(NAME, max_trials=100, explore_fraction=0.1)
    values = []
    for k in range(0, 130, 5):
        strategy.proposed = {f"k{i}" for i in range(k)}
        values.append(strategy.epsilon())
    assert values[0] == 1.0 and values[1] == 1.0
    assert values == sorted(values, reverse=True)
    assert values[-1] == pytest.approx(0.1)
    assert {round(v, 1) for v in values} == {1.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1}


def test_greedy_policy_follows_the_best_remembered_architecture() -> None:
    strategy = checks.make(NAME, learning_rate=0.5, replay=50)
    proposals = strategy.ask(6)
    for i, p in enumerate(proposals):
        strategy.tell(p, Result(TrialState.COMPLETE, score=float(i)))
    assert strategy._sample(0.0).tokens == proposals[-1].arch.tokens
    assert strategy.q, "the Q table is filled by replay"


def test_q_table_is_rebuilt_exactly_on_load() -> None:
    import json

    a = checks.make(NAME, seed=3)
    checks.drive(a, 30)
    b = checks.make(NAME, seed=3)
    b.load_state_dict(json.loads(json.dumps(a.state_dict())))
    assert b.q == a.q


def test_beats_random_on_nas_bench_201(shared_data) -> None:
    table = shared_data / checks.TABLE
    if not table.is_file():
        pytest.skip(f"{table} not found")
    seeds = range(4)
    ours = checks.mean_final_test(NAME, table, "cifar100", 150, seeds)
    random = checks.mean_final_test("random", table, "cifar100", 150, seeds)
    assert ours > random


def _metaqnn_tokens(space, *names: str) -> tuple[int, ...]:
    from nasforge.spaces.metaqnn import LAYER_STATES

    return space.assemble([LAYER_STATES.index(n) for n in names]).tokens


def test_metaqnn_layer_states_share_q_values_across_networks() -> None:
    """The paper's state is the layer (type, parameters), its depth and size, not the prefix that led there:
    what is learned about C(3,128) at depth 2 holds in every network that reaches it."""
    from nasforge.core.types import Architecture

    space_states = checks.make(NAME, space="metaqnn", replay=50, learning_rate=0.5)
    prefix_states = checks.make(NAME, space="metaqnn", replay=50, learning_rate=0.5, states="prefix")
    space = space_states.space
    good = _metaqnn_tokens(space, "conv_1x1_64", "conv_3x3_128", "softmax")
    other = _metaqnn_tokens(space, "conv_5x5_256", "conv_3x3_128", "gap")
    assert space.state_key(good[:2]) == space.state_key(other[:2])
    assert space.state_key(good[:1]) != space.state_key(other[:1])
    for strategy in (space_states, prefix_states):
        for tokens, score in ((good, 1.0), (other, 0.0)):  # episodes as the runner plays them: ask, train, tell
            proposal = strategy._propose(Architecture("metaqnn", tokens))
            strategy.tell(proposal, Result(TrialState.COMPLETE, score=score))
    softmax, gap = good[-1], other[-1]
    shared = space_states.q[space.state_key(other[:2])]
    assert shared[softmax] > shared[gap], "the better network's last move is preferred from either prefix"
    # with prefix states the two networks' last states are separate entries, each knowing one move only
    assert prefix_states._state(good[:2]) != prefix_states._state(other[:2])
    assert prefix_states.q[prefix_states._state(other[:2])][softmax] == pytest.approx(0.5)


def test_states_option_is_checked() -> None:
    from nasforge.core.errors import ConfigError

    with pytest.raises(ConfigError, match="states must be 'space' or 'prefix'"):
        checks.make(NAME, states="tree")


def test_replay_follows_each_new_network_and_a_repeat_updates_its_own_walk() -> None:
    strategy = checks.make(NAME, replay=7)
    updates: list[tuple[int, ...]] = []
    update = strategy._update
    strategy._update = lambda tokens: (updates.append(tuple(tokens)), update(tokens))[1]
    first, second = strategy.ask(2)
    strategy.tell(first, Result(TrialState.COMPLETE, score=1.0))
    assert len(updates) == 7 and set(updates) == {first.arch.tokens}  # the memory holds one network
    strategy.tell(second, Result(TrialState.COMPLETE, score=2.0))
    assert len(updates) == 14 and set(updates[7:]) <= {first.arch.tokens, second.arch.tokens}
    repeat = strategy._propose(first.arch)
    strategy.tell(repeat, Result(TrialState.COMPLETE, score=1.0))  # looked up, not trained
    assert updates[14:] == [first.arch.tokens]
    assert len(strategy.memory) == 3 and [m[2] for m in strategy.memory] == [True, True, False]


def _saved(strategy) -> dict:
    import json

    return json.loads(json.dumps(strategy.state_dict()))


def test_memory_is_saved_packed_and_the_list_format_before_still_loads() -> None:
    """A converged policy plays mostly repeats and the runner saves after every trial: the memory is one
    packed string, not a list per episode; a state saved by the code before (a "memory" list) loads to
    the same Q table and the same next proposals."""
    a = checks.make(NAME, seed=4, replay=20)
    checks.drive(a, 40)
    repeats = [p for p in a.ask(30) if p.key in a.results]
    for p in repeats:  # episodes of known networks, as the runner answers them from the store
        a.tell(p, Result(TrialState.COMPLETE, score=a.results[p.key]))
    assert any(not new for _, _, new in a.memory)
    state = _saved(a)
    assert isinstance(state["episodes"], str) and "memory" not in state
    old = {k: v for k, v in state.items() if k != "episodes"}
    old["memory"] = [[list(t), k, new] for t, k, new in a.memory]
    for saved in (state, old):
        b = checks.make(NAME, seed=4, replay=20)
        b.load_state_dict(saved)
        assert b.memory == a.memory and b.q == a.q
        assert _saved(b)["episodes"] == state["episodes"], "an old state is saved packed from then on"
    b = checks.make(NAME, seed=4, replay=20)
    b.load_state_dict(old)
    assert [p.key for p in b.ask(5)] == [p.key for p in a.ask(5)]


def test_a_repeat_walked_another_way_keeps_its_own_tokens() -> None:
    """Two token sequences can name one architecture (the key is canonical); a repeat's Q update follows
    the walk it took, so a reload must give that walk back, not the first one's tokens."""
    a = checks.make(NAME, seed=1, replay=5)
    (first,) = a.ask(1)
    a.tell(first, Result(TrialState.COMPLETE, score=1.0))
    other = tuple(reversed(first.arch.tokens))
    if other == first.arch.tokens:
        other = tuple((t + 1) % 5 for t in other)
    from nasforge.core.types import Architecture, Proposal

    stranger = Proposal(arch=Architecture(first.arch.space, other), key=first.key, seed=0,
                        info={"id": a.next_id})
    a.pending[a.next_id] = list(other)
    a.next_id += 1
    a.tell(stranger, Result(TrialState.COMPLETE, score=1.0))  # a repeat by key, walked as `other`
    assert a.memory[-1] == (list(other), 1, False)
    b = checks.make(NAME, seed=1, replay=5)
    b.load_state_dict(_saved(a))
    assert b.memory == a.memory and b.q == a.q
