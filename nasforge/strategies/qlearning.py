"""MetaQNN (Baker et al., 2017): tabular Q-learning over the space's decision walk.

A state is what the space says the next decision depends on (`space.state_key(prefix)`): for
`metaqnn` the paper's layer state (the last layer, its depth, the representation size), so a
good layer is good in every network that reaches it; for the other spaces the whole prefix of
tokens chosen so far (`states="prefix"` forces that everywhere). An action is the next token. Architectures are
sampled epsilon-greedily with epsilon annealed from 1.0 to 0.1 over the budget, and after each
episode a batch of remembered (architecture, reward) pairs is replayed through the Q-learning
update (learning rate 0.01, no discounting, reward only at the end), as in the paper. A network
sampled again is looked up, not trained: it does not join the memory a second time, and instead of
a replay its own walk gets one Q-learning update (so the greedy policy still learns from it). Replay
follows every newly trained network, the paper's "after each model is trained"; a converged policy
that draws thousands of known networks would otherwise spend almost all its time replaying.

Rewards are the result's percentile among all results so far (failures get 0): that keeps
them in [0, 1] like the paper's accuracies whatever the objective's scale, so the paper's
initial Q of 0.5 keeps its meaning ("as good as the median").
"""

from __future__ import annotations

import bisect
from typing import Any

import numpy as np

from nasforge.core.seeding import derive_seed
from nasforge.core.types import Architecture, Decision, JSONDict, Proposal, Result
from nasforge.strategies.common import BaseStrategy
from nasforge.strategies.packing import Packer, Unpacker

# one step of a remembered walk: (Q values, action, next state's Q values, next allowed options)
_Step = tuple[list[float], int, "list[float] | None", "tuple[int, ...] | None"]

PAPER_EPSILONS = (1.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1)


class QLearning(BaseStrategy):
    """Options: `learning_rate` (0.01), `discount` (1.0), `q_init` (0.5), `replay` (300) replayed samples
    per episode, `reward` ("rank" percentile or "minmax"), `explore_fraction` (0.25) of the budget at
    epsilon 1.0 (the rest split evenly over 0.9 ... 0.1), `horizon` (budget when `max_trials` is not
    given, 200), `states` ("space": the space's own states, MetaQNN's layer states on `metaqnn`;
    "prefix": every prefix its own state, a tree search)."""

    def __init__(self, space: Any, *, seed: int = 0, max_trials: int | None = None, learning_rate: float = 0.01,
                 discount: float = 1.0, q_init: float = 0.5, replay: int = 300, explore_fraction: float = 0.25,
                 horizon: int = 200, reward: str = "rank", states: str = "space") -> None:
        super().__init__(space, seed=seed, max_trials=max_trials)
        if not 0.0 < learning_rate <= 1.0 or not 0.0 <= discount <= 1.0 or replay < 0:
            raise ValueError("qlearning: need 0 < learning_rate <= 1, 0 <= discount <= 1, replay >= 0")
        if reward not in ("rank", "minmax"):
            raise ValueError(f"qlearning: reward must be 'rank' or 'minmax', not {reward!r}")
        if not 0.0 <= explore_fraction <= 1.0:
            raise ValueError("qlearning: explore_fraction must be in [0, 1]")
        if states not in ("space", "prefix"):
            raise ValueError(f"qlearning: states must be 'space' or 'prefix', not {states!r}")
        self.states = states
        self.learning_rate, self.discount, self.q_init = float(learning_rate), float(discount), float(q_init)
        self.replay = int(replay)
        self.reward = reward
        self.explore_fraction = float(explore_fraction)
        self.horizon = int(max_trials or horizon)
        self.q: dict[str, list[float]] = {}  # state -> one Q value per choice of its decision
        # one entry per episode; with the results' order this rebuilds the Q table on load, so the
        # table itself is never stored
        self.memory: list[tuple[list[int], int, bool]] = []  # (tokens, results known, new network?)
        self._replayable: list[int] = []  # indices of memory entries that were new networks
        self._packed = Packer()  # the memory as saved (`_pack_episode`), grown with it
        self._keys: list[str] = []  # the results' keys in the order they came
        self._index: dict[str, int] = {}  # key -> its place in `_keys`
        self._sorted: list[float] = []  # scores so far, for percentile rewards
        self._rewards: dict[str, float] = {}  # key -> reward against `_sorted` as it is now
        self._decisions: dict[tuple[int, ...], Decision | None] = {}  # prefix -> its decision
        # remembered walks resolved to their Q-value lists (the lists live in self.q)
        self._paths: dict[tuple[int, ...], tuple[str, list[_Step]]] = {}

    # ---- schedule ----------------------------------------------------------------------
    def epsilon(self) -> float:
        """Epsilon for the next proposal: 1.0 for the first part of the budget, then 0.9 ... 0.1."""
        done = len(self.proposed)
        explore = self.explore_fraction * self.horizon
        if done < explore:
            return 1.0
        rest = PAPER_EPSILONS[1:]
        step = (self.horizon - explore) / len(rest)
        i = int((done - explore) // step) if step > 0 else len(rest) - 1
        return rest[min(i, len(rest) - 1)]

    # ---- Q table -----------------------------------------------------------------------
    def _state(self, prefix: list[int] | tuple[int, ...]) -> str:
        state_key = getattr(self.space, "state_key", None) if self.states == "space" else None
        if state_key is None:
            return ".".join(str(t) for t in prefix)
        return str(state_key(tuple(prefix)))

    def _decision(self, prefix: list[int]) -> Decision | None:
        sig = tuple(prefix)
        if sig not in self._decisions:
            self._decisions[sig] = self.space.decision(prefix)
        return self._decisions[sig]

    def _values(self, state: str, dec: Decision) -> list[float]:
        values = self.q.get(state)
        if values is None:
            values = self.q[state] = [self.q_init] * len(dec.choices)
        return values

    def _sample(self, epsilon: float) -> Architecture:
        tokens: list[int] = []
        while (dec := self._decision(tokens)) is not None:
            options = dec.options
            if self.rng.random() < epsilon:
                tokens.append(int(options[self.rng.integers(len(options))]))
            else:
                values = self.q.get(self._state(tokens))
                if values is None:
                    best = list(options)
                else:
                    top = max(values[o] for o in options)
                    best = [o for o in options if values[o] == top]
                tokens.append(int(best[self.rng.integers(len(best))]) if len(best) > 1 else int(best[0]))
        return Architecture(self.space.name, tuple(tokens))

    def _reward(self, key: str) -> float:
        score = self.results.get(key)
        if score is None or not self._sorted:
            return 0.0
        if self.reward == "minmax":
            lo, hi = self._sorted[0], self._sorted[-1]
            return 1.0 if hi <= lo else (score - lo) / (hi - lo)
        below = bisect.bisect_left(self._sorted, score)
        ties = bisect.bisect_right(self._sorted, score) - below
        return (below + 0.5 * ties) / len(self._sorted)

    def _path(self, tokens: list[int]) -> tuple[str, list[_Step]]:
        """A remembered walk, resolved once: its key, and its steps from the last decision back, each
        (Q values, action, the next state's Q values or None after the last, the next allowed options or
        None when every choice is allowed)."""
        sig = tuple(tokens)
        path = self._paths.get(sig)
        if path is None:
            steps: list[_Step] = []
            next_values: list[float] | None = None
            for i in reversed(range(len(tokens))):
                dec = self._decision(tokens[:i])
                assert dec is not None
                nxt = self._decision(tokens[: i + 1])
                options: tuple[int, ...] | None = None
                if nxt is not None and len(nxt.options) < len(nxt.choices):
                    options = tuple(nxt.options)
                values = self._values(self._state(tokens[:i]), dec)
                steps.append((values, int(tokens[i]), next_values, options))
                next_values = values
            path = self._paths[sig] = (self.space.key(Architecture(self.space.name, sig)), steps)
        return path

    def _update(self, tokens: list[int]) -> None:
        """One Q-learning pass over a remembered trajectory, from the last decision back."""
        key, steps = self._path(tokens)
        alpha, gamma, keep = self.learning_rate, self.discount, 1 - self.learning_rate
        target = self._rewards.get(key)
        if target is None:
            target = self._rewards[key] = self._reward(key)
        for values, action, next_values, next_options in steps:
            if next_values is not None:  # bootstrap from the next state's best allowed action
                target = gamma * (max(next_values) if next_options is None
                                  else max([next_values[o] for o in next_options]))
            values[action] = keep * values[action] + alpha * target

    def _add_score(self, score: float) -> None:
        bisect.insort(self._sorted, score)
        self._rewards.clear()  # percentiles move with every new score

    # ---- ask/tell ----------------------------------------------------------------------
    def ask(self, n: int) -> list[Proposal]:
        out = []
        for _ in range(n):
            eps = self.epsilon()
            out.append(self._propose(self._sample(eps), epsilon=eps))
        return out

    def tell(self, proposal: Proposal, result: Result) -> None:
        known = proposal.key in self.results
        pid, _ = self._record(proposal, result)
        if proposal.key not in self._index:  # results only grow, and only here
            self._index[proposal.key] = len(self._keys)
            self._keys.append(proposal.key)
        if not known and self.results[proposal.key] is not None:
            self._add_score(float(self.results[proposal.key]))  # type: ignore[arg-type]
        if pid is None:
            return
        # an episode: only a newly trained network joins the replay memory and replays it (the paper
        # looks a repeated one up instead of training it); a repeated one updates its own walk once
        self._remember(list(proposal.arch.tokens), len(self.results), not known, proposal.key)
        self._replay(len(self.memory) - 1)

    def _remember(self, tokens: list[int], known: int, new: bool, key: str) -> None:
        previous = self.memory[-1][1] if self.memory else 0
        self.memory.append((tokens, known, new))
        self._pack_episode(tokens, known - previous, new, self._index.get(key))

    def _replay(self, i: int) -> None:
        """After the i-th episode: a new network adds itself to the memory and replays `replay` samples of
        it; a network sampled again updates only its own walk."""
        if not self.memory[i][2]:
            self._update(self.memory[i][0])
            return
        self._replayable.append(i)
        rng = np.random.default_rng(derive_seed(self.seed, i, 31))
        for j in rng.integers(len(self._replayable), size=self.replay):
            self._update(self.memory[self._replayable[int(j)]][0])

    # ---- state -------------------------------------------------------------------------
    # The runner saves the state twice per trial and a converged policy plays tens of thousands of
    # episodes (mostly repeats), so the memory is saved as varints in one base64 string, built as the
    # episodes come: per episode the growth of the results count, then 0 for a new network (its tokens
    # are the newest result's), 1 and a result index for a repeat walked as that result's tokens, or 2,
    # a length and the tokens otherwise (another walk to the same key). A list of [tokens, known, new]
    # under "memory", the format before, still loads.
    def _pack_episode(self, tokens: list[int], grown: int, new: bool, index: int | None) -> None:
        out = self._packed
        out.uint(grown)
        if new:
            out.uint(0)
        elif index is not None and self.tokens_of[self._keys[index]] == tokens:
            out.uint(1)
            out.uint(index)
        else:
            out.uint(2)
            out.tokens(tokens)

    def _unpack(self, packed: Packer) -> list[tuple[list[int], int, bool]]:
        memory: list[tuple[list[int], int, bool]] = []
        known, read = 0, Unpacker(packed.data)
        while not read.done():
            known += read.uint()
            flag = read.uint()
            if flag == 0:
                memory.append((list(self.tokens_of[self._keys[known - 1]]), known, True))
            elif flag == 1:
                memory.append((list(self.tokens_of[self._keys[read.uint()]]), known, False))
            else:
                memory.append((read.tokens(), known, False))
        return memory

    def state_dict(self) -> JSONDict:
        return {**self.base_state(), "episodes": self._packed.text()}

    def load_state_dict(self, state: JSONDict) -> None:
        self.load_base_state(state)
        self._keys = list(self.results)
        self._index = {k: i for i, k in enumerate(self._keys)}
        if "episodes" in state:
            self._packed = Packer.from_text(str(state["episodes"]))
            self.memory = self._unpack(self._packed)
        else:  # the format before: repack it, so that the next save is compact
            self.memory = [([int(x) for x in m[0]], int(m[1]), bool(m[2]) if len(m) > 2 else True)
                           for m in state["memory"]]
            self._packed = Packer()
            previous = 0
            for tokens, known, new in self.memory:
                index = None if new else self._index.get(self._key_of(tokens))
                self._pack_episode(tokens, known - previous, new, index)
                previous = known
        self.q = {}
        self._paths = {}
        self._replayable = []
        scores = list(self.results.values())
        self._sorted = []
        self._rewards = {}
        known = 0
        for i, (_, k, _) in enumerate(self.memory):
            while known < k:  # percentile rewards against the results known back then
                if scores[known] is not None:
                    self._add_score(float(scores[known]))  # type: ignore[arg-type]
                known += 1
            self._replay(i)
        for score in scores[known:]:
            if score is not None:
                self._add_score(float(score))

