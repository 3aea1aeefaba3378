"""Generic machinery every space gets from its `decision(prefix)` walk."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from nasforge.core.types import Architecture, Decision, JSONDict

if TYPE_CHECKING:
    import torch

    from nasforge.data.base import DataSpec


class InvalidArchitecture(ValueError):
    """Tokens that do not form a complete architecture of the space."""


class TokenSpace:
    """Base class: a space defines `name` and `decision(prefix)`; the rest follows from it.

    Subclasses override `key` to merge equivalent architectures, `describe`/`parse` for a
    readable JSON form, and `build` for the PyTorch module.
    """

    name: str = "base"
    max_tokens: int = 10_000

    # ---- the one method a space must define -------------------------------------------
    def decision(self, prefix: Sequence[int]) -> Decision | None:
        raise NotImplementedError

    # ---- derived ---------------------------------------------------------------------
    def walk(self, tokens: Sequence[int]) -> Iterator[tuple[Decision, int]]:
        """Each decision with its token; raises InvalidArchitecture on a bad or short sequence."""
        for i, token in enumerate(tokens):
            dec = self.decision(tokens[:i])
            if dec is None:
                raise InvalidArchitecture(f"{self.name}: {len(tokens)} tokens, architecture ends after {i}")
            if token not in dec.options:
                raise InvalidArchitecture(f"{self.name}: token {token} not allowed for decision {dec.name!r}")
            yield dec, int(token)
        if self.decision(tokens) is not None:
            raise InvalidArchitecture(f"{self.name}: architecture incomplete after {len(tokens)} tokens")

    def assemble(self, tokens: Sequence[int]) -> Architecture:
        tokens = tuple(int(t) for t in tokens)
        for _ in self.walk(tokens):
            pass
        return Architecture(self.name, tokens)

    def complete(self, prefix: Sequence[int], rng: np.random.Generator) -> Architecture:
        """Fill in the rest of `prefix` uniformly at random."""
        tokens = list(prefix)
        while (dec := self.decision(tokens)) is not None:
            options = dec.options
            tokens.append(int(options[rng.integers(len(options))]))
            if len(tokens) > self.max_tokens:
                raise RuntimeError(f"{self.name}: decision walk did not terminate")
        return Architecture(self.name, tuple(tokens))

    def sample(self, rng: np.random.Generator) -> Architecture:
        return self.complete((), rng)

    def repair(self, tokens: Sequence[int], start: int, rng: np.random.Generator | None) -> Architecture:
        """Keep tokens from `start` on while they stay valid; re-draw (or take the first option) otherwise."""
        out = list(tokens[:start])
        rest = list(tokens[start:])
        while (dec := self.decision(out)) is not None:
            want = rest.pop(0) if rest else None
            if want is not None and want in dec.options:
                out.append(int(want))
            elif rng is None:
                out.append(int(dec.options[0]))
            else:
                out.append(int(dec.options[rng.integers(len(dec.options))]))
        return Architecture(self.name, tuple(out))

    def mutate(self, arch: Architecture, rng: np.random.Generator) -> Architecture:
        """Change one token to another allowed value; later tokens are kept where still valid."""
        decisions = [dec for dec, _ in self.walk(arch.tokens)]
        mutable = [i for i, dec in enumerate(decisions) if len(dec.options) > 1]
        if not mutable:
            return arch
        own_key = self.key(arch)
        child = arch
        for _ in range(20):
            i = mutable[rng.integers(len(mutable))]
            others = [o for o in decisions[i].options if o != arch.tokens[i]]
            tokens = list(arch.tokens)
            tokens[i] = int(others[rng.integers(len(others))])
            child = self.repair(tokens, i + 1, rng)
            if self.key(child) != own_key:
                return child
        return child

    def crossover(self, a: Architecture, b: Architecture, rng: np.random.Generator) -> Architecture:
        """Uniform crossover: each decision takes the token of `a` or of `b` at that position (even odds)
        where it is allowed after the tokens chosen so far, else a random allowed token, so the child is
        always valid even where the parents' walks differ in length or meaning."""
        out: list[int] = []
        while (dec := self.decision(out)) is not None:
            i = len(out)
            offered = [t[i] for t in (a.tokens, b.tokens) if i < len(t) and t[i] in dec.options]
            if len(offered) == 2:
                out.append(int(offered[int(rng.integers(2))]))
            elif offered:
                out.append(int(offered[0]))
            else:
                out.append(int(dec.options[rng.integers(len(dec.options))]))
            if len(out) > self.max_tokens:
                raise RuntimeError(f"{self.name}: decision walk did not terminate")
        return Architecture(self.name, tuple(out))

    def neighbours(self, arch: Architecture) -> list[Architecture]:
        """Every architecture one token away (suffix repaired deterministically), without duplicates."""
        seen = {self.key(arch)}
        out = []
        for i, (dec, token) in enumerate(self.walk(arch.tokens)):
            for option in dec.options:
                if option == token:
                    continue
                tokens = list(arch.tokens)
                tokens[i] = int(option)
                child = self.repair(tokens, i + 1, None)
                k = self.key(child)
                if k not in seen:
                    seen.add(k)
                    out.append(child)
        return out

    def key(self, arch: Architecture) -> str:
        return f"{self.name}:" + ".".join(str(t) for t in arch.tokens)

    def state_key(self, prefix: Sequence[int]) -> str:
        """The state a tabular learner (Q-learning) keys on after `prefix`: by default the prefix itself.

        A space whose next decision depends on less than the whole prefix (MetaQNN's layer states) returns
        that smaller description, so values learned for it are shared by every network that reaches it.
        Whatever it returns must determine `decision(prefix)`.
        """
        return ".".join(str(t) for t in prefix)

    def describe(self, arch: Architecture) -> JSONDict:
        return {dec.name: _jsonable(dec.choices[t]) for dec, t in self.walk(arch.tokens)}

    def summary(self, arch: Architecture) -> str:
        return " ".join(f"{k}={v}" for k, v in self.describe(arch).items())

    def to_json(self, arch: Architecture) -> JSONDict:
        return {"space": self.name, "tokens": list(arch.tokens), "description": self.describe(arch)}

    def from_json(self, data: JSONDict) -> Architecture:
        """Tokens when present; otherwise, for a space with a readable form (a `parse(description)`
        method), the `describe()` form, bare or under "description"."""
        if data.get("space", self.name) != self.name:
            raise InvalidArchitecture(f"architecture is for space {data.get('space')!r}, not {self.name!r}")
        if "tokens" in data:
            return self.assemble(data["tokens"])
        parse = getattr(self, "parse", None)
        if parse is None:
            raise InvalidArchitecture(f"{self.name}: architecture JSON has no 'tokens'")
        return parse(data.get("description", data))

    def config(self) -> JSONDict:
        return {}

    def build(self, arch: Architecture, data: DataSpec) -> torch.nn.Module:
        raise NotImplementedError(f"space {self.name!r} has no PyTorch builder")

    def size(self, limit: int = 10**7) -> int | None:
        """Number of token sequences when small enough to count by walking, else None."""
        count = 0
        for _ in self._sequences():
            count += 1
            if count > limit:
                return None
        return count

    def enumerate(self, limit: int) -> list[Architecture] | None:
        """Every architecture, one per canonical key, when the space has at most `limit` token sequences."""
        if self.size(limit) is None:
            return None
        seen: set[str] = set()
        out = []
        for tokens in self._sequences():
            arch = Architecture(self.name, tokens)
            key = self.key(arch)
            if key not in seen:
                seen.add(key)
                out.append(arch)
        return out

    def _sequences(self) -> Iterator[tuple[int, ...]]:
        stack: list[tuple[int, ...]] = [()]
        while stack:
            prefix = stack.pop()
            dec = self.decision(prefix)
            if dec is None:
                yield prefix
                continue
            stack.extend((*prefix, o) for o in reversed(dec.options))


def _jsonable(value: Any) -> Any:
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    return value
