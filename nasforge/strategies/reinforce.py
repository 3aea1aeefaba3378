"""NAS-RL (Zoph & Le, 2017): an LSTM controller trained with REINFORCE.

The controller walks the space's decisions; at each step its input is the embedding of the
previous choice and a per-decision-name softmax head picks the next token (disallowed tokens
masked). Skip-connection decisions (`kind == "anchor"`) are scored with the paper's anchor-point
attention, P(layer j feeds layer i) = sigmoid(v . tanh(W_prev h_j + W_curr h_i)), where h_j is
the controller's hidden state at layer j's anchor. Updates use a batch of results, an
exponential-moving-average baseline and an entropy bonus, with Adam.

Parameters are created the first time a decision name is met, each from its own seeded
generator, so the controller works for any space without knowing its names in advance and
stays reproducible. Sampling draws from the strategy's NumPy generator (torch's global RNG is
never touched), so `state_dict` needs only the parameters, Adam's moments and the bookkeeping.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import zlib
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch

from nasforge.core.seeding import derive_seed
from nasforge.core.types import Architecture, Decision, JSONDict, Proposal, Result
from nasforge.strategies.common import BaseStrategy
from nasforge.strategies.packing import Packer, Unpacker


@contextlib.contextmanager
def _one_thread() -> Iterator[None]:
    """Tiny tensors: extra threads only add overhead, and workers may share the machine."""
    before = torch.get_num_threads()
    if before != 1:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        if before != 1:
            torch.set_num_threads(before)


# a sampling step: (decision index, h, c, probabilities, their running sum, anchor states, layer states)
_WalkStep = tuple[int, np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[int, np.ndarray], dict[int, np.ndarray]]


class Controller:
    """The LSTM policy, as a flat dict of named tensors (easy to serialise and to grow)."""

    def __init__(self, seed: int, hidden: int, embed: int, init_range: float = 0.1) -> None:
        self.seed, self.hidden, self.embed, self.init_range = seed, hidden, embed, init_range
        self.params: dict[str, torch.Tensor] = {}
        self._numpy: dict[str, np.ndarray] = {}
        # prefix -> the step computed after it, for the space `_walk_space` and the current weights: a
        # converged policy draws the same few walks again and again between two updates
        self._walks: dict[tuple[int, ...], _WalkStep | None] = {}
        self._walk_space: Any = None
        self.names: dict[str, int] = {}  # decision name -> index in params' names
        self._add("lstm.w_ih", (4 * hidden, embed))
        self._add("lstm.w_hh", (4 * hidden, hidden))
        self._add("lstm.bias", (4 * hidden,))
        self._add("start", (embed,))
        self._add("anchor.w_prev", (hidden, hidden))
        self._add("anchor.w_curr", (hidden, hidden))
        self._add("anchor.v", (hidden,))

    def _add(self, name: str, shape: tuple[int, ...]) -> None:
        gen = torch.Generator().manual_seed(derive_seed(self.seed, zlib.crc32(name.encode())))
        tensor = (torch.rand(shape, generator=gen) * 2 - 1) * self.init_range
        self.params[name] = tensor.requires_grad_(True)

    def ensure(self, dec: Decision) -> int:
        """Index of the decision name's embedding and head, creating them when first seen."""
        idx = self.names.get(dec.name)
        if idx is None:
            idx = self.names[dec.name] = len(self.names)
            self._add(f"embed.{idx}", (len(dec.choices), self.embed))
            self._add(f"head.{idx}.w", (len(dec.choices), self.hidden))
            self._add(f"head.{idx}.b", (len(dec.choices),))
        return idx

    def _np(self, name: str) -> np.ndarray:
        arr = self._numpy.get(name)
        if arr is None:
            arr = self._numpy[name] = self.params[name].detach().numpy().astype(np.float64)
        return arr

    def changed(self) -> None:
        """Parameters were updated: drop the NumPy copies and the cached steps used for sampling."""
        self._numpy.clear()
        self._walks.clear()

    def _np_step(self, dec: Decision, idx: int, x: np.ndarray, h: np.ndarray, c: np.ndarray,
                 anchors: dict[int, np.ndarray], layer_state: dict[int, np.ndarray]
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """One LSTM step in NumPy and the decision's logits (anchor attention or its head); a new anchor
        state is recorded in `anchors`."""
        n = self.hidden
        gates = self._np("lstm.w_ih") @ x + self._np("lstm.w_hh") @ h + self._np("lstm.bias")
        c = _sigmoid(gates[n:2 * n]) * c + _sigmoid(gates[:n]) * np.tanh(gates[2 * n:3 * n])
        h = _sigmoid(gates[3 * n:]) * np.tanh(c)
        if _is_anchor(dec):
            h_i = anchors.setdefault(dec.layer, h)  # type: ignore[arg-type]
            h_j = anchors.get(dec.source, layer_state.get(dec.source, np.zeros(n)))  # type: ignore[arg-type]
            score = self._np("anchor.v") @ np.tanh(self._np("anchor.w_prev") @ h_j + self._np("anchor.w_curr") @ h_i)
            return h, c, np.array([0.0, score])
        return h, c, self._np(f"head.{idx}.w") @ h + self._np(f"head.{idx}.b")

    def sample(self, space: Any, rng: np.random.Generator) -> list[int]:
        """One walk drawn from the policy, computed in NumPy (no autograd: several times faster). The
        LSTM state after a prefix does not depend on the draw, so each prefix's step is computed once per
        weight update and reused; the draws themselves (one uniform per decision) are unchanged."""
        if space is not self._walk_space:
            self._walks.clear()
            self._walk_space = space
        n = self.hidden
        h = np.zeros(n)
        c = np.zeros(n)
        x = self._np("start")
        anchors: dict[int, np.ndarray] = {}
        layer_state: dict[int, np.ndarray] = {}
        out: list[int] = []
        while True:
            key = tuple(out)
            if key in self._walks:
                step = self._walks[key]
            else:
                dec = space.decision(out)
                step = None if dec is None else self._step(dec, x, h, c, anchors, layer_state)
                self._walks[key] = step
            if step is None:
                return out
            idx, h, c, probs, cdf, anchors, layer_state = step
            token = min(int(np.searchsorted(cdf, rng.random() * cdf[-1], side="right")), len(probs) - 1)
            while probs[token] == 0.0:  # never land on a masked option through rounding
                token -= 1
            out.append(token)
            x = self._np(f"embed.{idx}")[token]

    def _step(self, dec: Decision, x: np.ndarray, h: np.ndarray, c: np.ndarray, anchors: dict[int, np.ndarray],
              layer_state: dict[int, np.ndarray]) -> _WalkStep:
        """A decision's step from the state before it; the dicts given are left as they were (cached
        steps share them)."""
        idx = self.ensure(dec)
        anchors = dict(anchors)
        h, c, logits = self._np_step(dec, idx, x, h, c, anchors, layer_state)
        if dec.allowed is not None:
            masked = np.full(len(dec.choices), -np.inf)
            masked[list(dec.allowed)] = logits[list(dec.allowed)]
            logits = masked
        probs = np.exp(logits - logits.max())
        if dec.layer is not None:
            layer_state = {**layer_state, dec.layer: h}
        return idx, h, c, probs, np.cumsum(probs), anchors, layer_state

    def sample_new(self, space: Any, rng: np.random.Generator, is_new: Callable[[list[int]], bool],
                   limit: int = 100_000) -> list[int] | None:
        """A walk drawn from the policy among those `is_new` accepts: depth first, each decision's tokens
        tried in the order of a draw without replacement from its softmax (Gumbel top-k), so the first
        walk reached is an ordinary draw from the policy and a known one moves to the next most likely
        token at the deepest step; None when no new walk is found within `limit` decisions."""
        n = self.hidden
        budget = [limit]

        def visit(prefix: list[int], h: np.ndarray, c: np.ndarray, x: np.ndarray,
                  anchors: dict[int, np.ndarray], layer_state: dict[int, np.ndarray]) -> list[int] | None:
            dec = space.decision(prefix)
            if dec is None:
                return prefix if is_new(prefix) else None
            budget[0] -= 1
            if budget[0] < 0:
                return None
            idx = self.ensure(dec)
            anchors = dict(anchors)
            h, c, logits = self._np_step(dec, idx, x, h, c, anchors, layer_state)
            allowed = [int(o) for o in dec.options]
            keys = logits[allowed] + rng.gumbel(size=len(allowed))
            if dec.layer is not None:
                layer_state = {**layer_state, dec.layer: h}
            for k in np.argsort(-keys, kind="stable"):
                token = allowed[int(k)]
                found = visit([*prefix, token], h, c, self._np(f"embed.{idx}")[token], anchors, layer_state)
                if found is not None or budget[0] < 0:
                    return found
            return None

        return visit([], np.zeros(n), np.zeros(n), self._np("start"), {}, {})

    def score(self, decisions: list[Decision], batch: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        """Log-probability and entropy (per walk) of walks that share one decision sequence, batched."""
        p = self.params
        b, n = len(batch), self.hidden
        tokens = torch.tensor(batch, dtype=torch.long)
        h = torch.zeros(b, n)
        c = torch.zeros(b, n)
        x = p["start"].expand(b, -1)
        anchors: dict[int, torch.Tensor] = {}
        layer_state: dict[int, torch.Tensor] = {}
        logp = torch.zeros(b)
        entropy = torch.zeros(b)
        for t, dec in enumerate(decisions):
            idx = self.ensure(dec)
            gates = x @ p["lstm.w_ih"].T + h @ p["lstm.w_hh"].T + p["lstm.bias"]
            i, f, g, o = gates.chunk(4, dim=1)
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
            h = torch.sigmoid(o) * torch.tanh(c)
            if _is_anchor(dec):
                assert dec.layer is not None and dec.source is not None
                h_i = anchors.setdefault(dec.layer, h)
                h_j = anchors.get(dec.source, layer_state.get(dec.source, torch.zeros(b, n)))
                att = torch.tanh(h_j @ p["anchor.w_prev"].T + h_i @ p["anchor.w_curr"].T) @ p["anchor.v"]
                logits = torch.stack([torch.zeros(b), att], dim=1)  # softmax of (0, s): P(yes) = sigmoid(s)
            else:
                logits = h @ p[f"head.{idx}.w"].T + p[f"head.{idx}.b"]
            if dec.allowed is not None:
                mask = torch.full((len(dec.choices),), -math.inf)
                mask[list(dec.allowed)] = 0.0
                logits = logits + mask
            logprobs = torch.log_softmax(logits, dim=1)
            probs = logprobs.exp()
            entropy = entropy - (probs * torch.where(probs > 0, logprobs, torch.zeros(()))).sum(1)
            logp = logp + logprobs.gather(1, tokens[:, t:t + 1]).squeeze(1)
            if dec.layer is not None:
                layer_state[dec.layer] = h
            x = p[f"embed.{idx}"][tokens[:, t]]
        return logp, entropy


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def _is_anchor(dec: Decision) -> bool:
    """A yes/no skip decision that names both ends: scored by anchor attention, not a softmax head."""
    return dec.kind == "anchor" and dec.layer is not None and dec.source is not None and len(dec.choices) == 2


class Adam:
    """Adam over a dict of named tensors whose set may grow (new decision names)."""

    def __init__(self, lr: float, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8) -> None:
        self.lr, self.betas, self.eps = lr, betas, eps
        self.m: dict[str, torch.Tensor] = {}
        self.v: dict[str, torch.Tensor] = {}
        self.t: dict[str, int] = {}

    def step(self, params: dict[str, torch.Tensor]) -> None:
        b1, b2 = self.betas
        with torch.no_grad():
            for name, p in params.items():
                if p.grad is None:
                    continue
                m = self.m.setdefault(name, torch.zeros_like(p))
                v = self.v.setdefault(name, torch.zeros_like(p))
                t = self.t[name] = self.t.get(name, 0) + 1
                m.mul_(b1).add_(p.grad, alpha=1 - b1)
                v.mul_(b2).addcmul_(p.grad, p.grad, value=1 - b2)
                denom = (v / (1 - b2**t)).sqrt_().add_(self.eps)
                p.addcdiv_(m, denom, value=-self.lr / (1 - b1**t))
                p.grad = None


class DepthSchedule:
    """NAS-RL's growing depth: the controller does not choose the number of layers, it is given one that
    rises by `step` every `every` sampled networks, from `start` (default: the space's smallest depth)."""

    def __init__(self, space: Any, start: int | None = None, step: int = 2, every: int = 1600) -> None:
        dec = _depth_decision(space)
        if dec is None:
            raise ValueError("reinforce: depth_schedule needs a space with a 'depth' decision (chain_cnn with "
                             "min_layers, dnn, cnn)")
        self.depths = sorted(int(dec.choices[i]) for i in dec.options)
        self.start = int(start) if start is not None else self.depths[0]
        self.step, self.every = int(step), int(every)
        if self.step < 1 or self.every < 1:
            raise ValueError("reinforce: depth_schedule needs step >= 1 and every >= 1")

    def depth(self, sampled: int) -> int:
        """The allowed depth nearest below the scheduled one (the smallest allowed when none is below)."""
        want = self.start + self.step * (sampled // self.every)
        below = [d for d in self.depths if d <= want]
        return below[-1] if below else self.depths[0]

    def config(self) -> JSONDict:
        return {"start": self.start, "step": self.step, "every": self.every}


def _depth_decision(space: Any) -> Decision | None:
    """The first 'depth' decision met on a walk of the space (its position may depend on nothing before it)."""
    prefix: list[int] = []
    while (dec := space.decision(prefix)) is not None:
        if dec.name == "depth":
            return dec  # type: ignore[no-any-return]
        prefix.append(int(dec.options[0]))
    return None


class _PinnedDepth:
    """The space seen by the controller under a depth schedule: the depth decision allows one value."""

    def __init__(self, space: Any, depth: int) -> None:
        self.space, self.depth = space, depth

    def decision(self, prefix: list[int]) -> Decision | None:
        dec = self.space.decision(prefix)
        if dec is None or dec.name != "depth":
            return dec  # type: ignore[no-any-return]
        return dataclasses.replace(dec, allowed=(dec.choices.index(self.depth),))


class Reinforce(BaseStrategy):
    """Options: `hidden` (64) LSTM units, `embed` (32), `lr` (0.005) for Adam, `batch_size` (5) results per
    update, `entropy_weight` (0.01), `baseline_decay` (0.9), `init_range` (0.1), `resample` (10) redraws
    when the controller samples an architecture it proposed before, then a draw among the architectures not
    proposed yet (`Controller.sample_new`; `resample` 0: the policy's draw as it is), `depth_schedule` (None; e.g.
    `{"start": 6, "step": 2, "every": 1600}`: NAS-RL's depth growing with the number of sampled networks,
    see DepthSchedule)."""

    def __init__(self, space: Any, *, seed: int = 0, max_trials: int | None = None, hidden: int = 64,
                 embed: int = 32, lr: float = 0.005, batch_size: int = 5, entropy_weight: float = 0.01,
                 baseline_decay: float = 0.9, init_range: float = 0.1, resample: int = 10,
                 depth_schedule: JSONDict | None = None) -> None:
        super().__init__(space, seed=seed, max_trials=max_trials)
        if hidden < 1 or embed < 1 or batch_size < 1 or lr <= 0 or not 0.0 <= baseline_decay < 1.0:
            raise ValueError("reinforce: need hidden, embed, batch_size >= 1, lr > 0, 0 <= baseline_decay < 1")
        if depth_schedule is not None and not isinstance(depth_schedule, dict):
            raise ValueError("reinforce: depth_schedule must be a mapping such as {start: 6, step: 2, every: 1600}")
        unknown = set(depth_schedule or {}) - {"start", "step", "every"}
        if unknown:
            raise ValueError(f"reinforce: depth_schedule takes start, step and every, not {sorted(unknown)}")
        self.schedule = DepthSchedule(space, **depth_schedule) if depth_schedule is not None else None
        self.hidden, self.embed, self.lr = int(hidden), int(embed), float(lr)
        self.batch_size, self.entropy_weight = int(batch_size), float(entropy_weight)
        self.baseline_decay, self.init_range = float(baseline_decay), float(init_range)
        self.resample = max(0, int(resample))
        self.controller = Controller(self.seed, self.hidden, self.embed, self.init_range)
        self.optim = Adam(self.lr)
        self.baseline: float | None = None
        self.buffer: list[tuple[list[int], float | None]] = []  # (tokens, score) awaiting an update
        self.log: list[tuple[list[list[int]], list[float], float]] = []  # (batch, rewards, scale) per update
        self._packed_log = Packer()  # the log as saved, grown with it

    def ask(self, n: int) -> list[Proposal]:
        out = []
        with _one_thread(), torch.no_grad():
            for _ in range(n):
                walk, info = self.space, {}
                if self.schedule is not None:
                    depth = self.schedule.depth(self.next_id)
                    walk, info = _PinnedDepth(self.space, depth), {"scheduled_depth": depth}
                # A converged controller keeps drawing what it already has (answered for free, but
                # no progress): redraw a few times for something new, as NAS does not re-train; then
                # draw from the policy among the architectures not proposed yet, while there are any.
                for _ in range(self.resample + 1):
                    tokens = self.controller.sample(walk, self.rng)
                    arch = Architecture(self.space.name, tuple(tokens))
                    if self.space.key(arch) not in self.proposed:
                        break
                else:
                    if self.resample:
                        new = self.controller.sample_new(walk, self.rng, self._is_new)
                        arch = Architecture(self.space.name, tuple(new)) if new is not None else arch
                out.append(self._propose(arch, **info))
        return out

    def _is_new(self, tokens: list[int]) -> bool:
        return self.space.key(Architecture(self.space.name, tuple(tokens))) not in self.proposed

    def tell(self, proposal: Proposal, result: Result) -> None:
        pid, score = self._record(proposal, result)
        if pid is None:
            return
        self.buffer.append((list(proposal.arch.tokens), score))
        if len(self.buffer) >= self.batch_size:
            self._update()

    def _update(self) -> None:
        scores = [s for s in self.results.values() if s is not None]
        worst = min(scores) if scores else 0.0
        scale = float(np.std(scores)) if len(scores) > 1 else 1.0
        scale = scale if scale > 0 else 1.0
        batch = [tokens for tokens, _ in self.buffer]
        rewards = [worst if s is None else s for _, s in self.buffer]
        self._log(batch, rewards, scale)
        self.buffer = []
        self._apply(batch, rewards, scale)

    def _log(self, batch: list[list[int]], rewards: list[float], scale: float) -> None:
        self.log.append((batch, rewards, scale))
        out = self._packed_log
        out.uint(len(batch))
        for tokens, reward in zip(batch, rewards):
            out.tokens(tokens)
            out.float(reward)
        out.float(scale)

    def _apply(self, batch: list[list[int]], rewards: list[float], scale: float) -> None:
        """One REINFORCE step: advantage against the moving-average baseline, plus entropy bonus."""
        if self.baseline is None:
            self.baseline = float(np.mean(rewards))
        advantages = []
        for reward in rewards:
            advantages.append((reward - self.baseline) / scale)
            self.baseline = self.baseline_decay * self.baseline + (1 - self.baseline_decay) * reward
        # walks with the same decision sequence are scored together, as one batch
        groups: dict[tuple[Any, ...], tuple[list[Decision], list[int]]] = {}
        for k, tokens in enumerate(batch):
            decisions = [dec for dec, _ in self.space.walk(tokens)]
            if self.schedule is not None:  # the depth was given, not chosen: no gradient through it
                decisions = [dataclasses.replace(dec, allowed=(tokens[t],)) if dec.name == "depth" else dec
                             for t, dec in enumerate(decisions)]
            sig = tuple((d.name, d.kind, d.layer, d.source, d.allowed, len(d.choices)) for d in decisions)
            groups.setdefault(sig, (decisions, []))[1].append(k)
        with _one_thread():
            loss = torch.zeros(())
            for decisions, members in groups.values():
                logp, entropy = self.controller.score(decisions, [batch[k] for k in members])
                adv = torch.tensor([advantages[k] for k in members], dtype=torch.float32)
                loss = loss - (adv * logp).sum() - self.entropy_weight * entropy.sum()
            (loss / len(batch)).backward()
            self.optim.step(self.controller.params)
        self.controller.changed()

    # ---- state -------------------------------------------------------------------------
    # The controller's weights (and Adam's moments) are a deterministic function of the seed and
    # the update log, so they are rebuilt on load rather than stored: the runner saves the state
    # after every trial, and ~100k floats each time would dominate a table benchmark's run time.
    # The log grows by one batch per update and is saved twice per trial, so it is saved packed
    # (`packing`): per update the batch size, each walk's tokens and reward, then the scale. The
    # list format before ("log") still loads.
    def state_dict(self) -> JSONDict:
        return {**self.base_state(), "updates": self._packed_log.text(),
                "buffer": [[t, s] for t, s in self.buffer]}

    def load_state_dict(self, state: JSONDict) -> None:
        self.load_base_state(state)
        self.controller = Controller(self.seed, self.hidden, self.embed, self.init_range)
        self.optim = Adam(self.lr)
        self.baseline = None
        self.log, self._packed_log = [], Packer()
        if "updates" in state:
            read = Unpacker(Packer.from_text(str(state["updates"])).data)
            while not read.done():
                batch, rewards = [], []
                for _ in range(read.uint()):
                    batch.append(read.tokens())
                    rewards.append(read.float())
                self._log(batch, rewards, read.float())
        else:
            for b, r, sc in state["log"]:
                self._log([[int(x) for x in t] for t in b], [float(x) for x in r], float(sc))
        for batch, rewards, scale in self.log:
            self._apply(batch, rewards, scale)
        self.buffer = [([int(x) for x in t], None if s is None else float(s)) for t, s in state["buffer"]]
