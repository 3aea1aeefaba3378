"""Bayesian optimisation with a learned predictor, after BANANAS (White et al., 2021).

A Gaussian process (or BANANAS' ensemble of small MLPs), fitted on every result so far, predicts
the score of candidates: every architecture of a small space, else mutants of the best found
plus random ones; independent Thompson sampling over its uncertainty picks what to evaluate.
The predictor is plain NumPy/SciPy, refitted from a seed derived from the number of results, so
it is never stored: a resumed strategy refits it and continues with the very same proposals.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np
from scipy.linalg import solve_triangular

from nasforge.core.seeding import derive_seed
from nasforge.core.types import Architecture, JSONDict, Proposal, Result
from nasforge.strategies.common import BaseStrategy, TokenEncoder


class MLPEnsemble:
    """`members` ReLU MLPs trained at once as batched matrices with Adam on the squared error."""

    def __init__(self, members: int = 5, hidden: int = 32, layers: int = 2, epochs: int = 200,
                 lr: float = 0.01, weight_decay: float = 1e-4) -> None:
        self.members, self.hidden, self.layers = members, hidden, layers
        self.epochs, self.lr, self.weight_decay = epochs, lr, weight_decay
        self.params: list[np.ndarray] = []

    def fit(self, x: np.ndarray, y: np.ndarray, rng: np.random.Generator) -> MLPEnsemble:
        e, (n, d) = self.members, x.shape
        sizes = [d] + [self.hidden] * self.layers + [1]
        shapes = []
        for a, b in itertools.pairwise(sizes):
            shapes += [(e, a, b), (e, 1, b)]
        # one flat buffer for parameters and one for gradients: Adam is then a handful of array ops
        total = sum(int(np.prod(s)) for s in shapes)
        flat, gflat = np.zeros(total), np.zeros(total)
        decay = np.zeros(total)
        self.params, grads, offset = [], [], 0
        for i, shape in enumerate(shapes):
            size = int(np.prod(shape))
            self.params.append(flat[offset:offset + size].reshape(shape))
            grads.append(gflat[offset:offset + size].reshape(shape))
            if i % 2 == 0:
                self.params[-1][...] = rng.normal(0.0, math.sqrt(2.0 / shape[1]), size=shape)
                decay[offset:offset + size] = self.weight_decay
            offset += size
        m, v = np.zeros(total), np.zeros(total)
        target = y.reshape(1, n, 1)
        b1, b2 = 0.9, 0.999
        for step in range(1, self.epochs + 1):
            acts, pre = self._forward(x)
            self._backward(acts, pre, (2.0 / n) * (acts[-1] - target), grads)
            g = gflat + decay * flat
            m *= b1
            m += (1 - b1) * g
            v *= b2
            v += (1 - b2) * g * g
            flat -= (self.lr / (1 - b1**step)) * m / (np.sqrt(v / (1 - b2**step)) + 1e-8)
        return self

    def _forward(self, x: np.ndarray) -> tuple[list[np.ndarray], list[np.ndarray]]:
        h: np.ndarray = np.broadcast_to(x, (self.members, *x.shape))
        acts, pre = [h], []
        n_layers = len(self.params) // 2
        for i in range(n_layers):
            z = np.matmul(h, self.params[2 * i]) + self.params[2 * i + 1]
            pre.append(z)
            h = np.maximum(z, 0.0) if i < n_layers - 1 else z
            acts.append(h)
        return acts, pre

    def _backward(self, acts: list[np.ndarray], pre: list[np.ndarray], grad: np.ndarray,
                  out: list[np.ndarray]) -> None:
        n_layers = len(self.params) // 2
        for i in reversed(range(n_layers)):
            if i < n_layers - 1:
                grad = grad * (pre[i] > 0)
            np.matmul(acts[i].transpose(0, 2, 1), grad, out=out[2 * i])
            out[2 * i + 1][...] = grad.sum(axis=1, keepdims=True)
            if i > 0:
                grad = np.matmul(grad, self.params[2 * i].transpose(0, 2, 1))

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Predictions of every member: shape (members, len(x))."""
        return self._forward(x)[0][-1][..., 0]


class GaussianProcess:
    """Exact GP regression on the encodings with kernel w_lin * <x, x'> / d + w_rbf * RBF(x, x').

    The linear part extrapolates trends ("more of this op helps") to regions far from any
    data, which a pure RBF kernel cannot; the RBF part models interactions near the data.
    Kernel weights, length-scale and noise are chosen by the marginal likelihood on a small grid.
    """

    def __init__(self, lengthscales: tuple[float, ...] = (1.5, 3.0, 6.0),
                 noises: tuple[float, ...] = (0.03, 0.1, 0.3),
                 linear: tuple[float, ...] = (0.0, 0.3, 1.0)) -> None:
        self.lengthscales, self.noises, self.linear = lengthscales, noises, linear

    def _kernel_from(self, dot: np.ndarray, sq_a: np.ndarray, sq_b: np.ndarray, d: int, ls: float,
                     lin: float) -> np.ndarray:
        """The kernel given inner products and squared norms (so callers can reuse them)."""
        d2 = np.maximum(sq_a[:, None] + sq_b[None, :] - 2 * dot, 0.0)
        return (1.0 - lin) * np.exp(-d2 / (2 * ls * ls)) + lin * dot / max(d, 1) * self.scale

    def fit(self, x: np.ndarray, y: np.ndarray, rng: np.random.Generator,
            hyper: tuple[float, float, float] | None = None) -> GaussianProcess:
        """The grid's most likely (length-scale, linear weight, noise), or exactly `hyper` when given."""
        self.x = x
        n = len(y)
        self.scale = 1.0 / max(float(np.mean((x * x).sum(1))) / max(x.shape[1], 1), 1e-12)
        best = None
        dot, sq = x @ x.T, (x * x).sum(1)
        for ls in self.lengthscales if hyper is None else (hyper[0],):
            for lin in self.linear if hyper is None else (hyper[1],):
                k = self._kernel_from(dot, sq, sq, x.shape[1], ls, lin)
                for noise in self.noises if hyper is None else (hyper[2],):
                    chol = np.linalg.cholesky(k + noise * np.eye(n))
                    alpha = solve_triangular(chol.T, solve_triangular(chol, y, lower=True), lower=False)
                    evidence = -0.5 * y @ alpha - np.log(np.diag(chol)).sum()
                    if best is None or evidence > best[0]:
                        best = (evidence, ls, lin, noise, chol, alpha)
        assert best is not None
        _, self.ls, self.lin, self.noise, self.chol, self.alpha = best
        return self

    def predict(self, x: np.ndarray, dot: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Mean and standard deviation at `x`; `dot`, when given, is `x @ self.x.T` computed already."""
        sq = (x * x).sum(1)
        ks = self._kernel_from(x @ self.x.T if dot is None else dot, sq, (self.x * self.x).sum(1), x.shape[1],
                               self.ls, self.lin)
        mean = ks @ self.alpha
        v = solve_triangular(self.chol, ks.T, lower=True)
        prior = (1.0 - self.lin) + self.lin * sq / max(x.shape[1], 1) * self.scale
        var = np.maximum(prior - (v * v).sum(0), 1e-12)
        return mean, np.sqrt(var)


class Bananas(BaseStrategy):
    """Options (see docs/strategies.md): `initial` (10) random architectures first; `predictor` ("gp");
    `exhaustive` (20000): spaces with at most that many token sequences have every architecture
    scored; otherwise `parents` (10) best architectures' neighbourhoods and `mutations` (10) two-step
    mutants each, plus `random_candidates` (300); `acquisition` ("its"), `ucb_kappa` (1.0); `hyper_every` (10)
    results between the GP's grid searches for its kernel settings."""

    def __init__(self, space: Any, *, seed: int = 0, max_trials: int | None = None, initial: int = 10,
                 members: int = 5, hidden: int = 32, epochs: int = 200, lr: float = 0.01,
                 retrain_every: int = 1, parents: int = 10, mutations: int = 10,
                 random_candidates: int = 300, acquisition: str = "its", ucb_kappa: float = 1.0,
                 space_encoding: bool = True, predictor: str = "gp", transform: str = "rank",
                 climbs: int = 0, exhaustive: int = 20_000, hyper_every: int = 10) -> None:
        super().__init__(space, seed=seed, max_trials=max_trials)
        if acquisition not in ("its", "ucb", "ei"):
            raise ValueError(f"bananas: acquisition must be 'its', 'ucb' or 'ei', not {acquisition!r}")
        if predictor not in ("gp", "mlp"):
            raise ValueError(f"bananas: predictor must be 'gp' or 'mlp', not {predictor!r}")
        if transform not in ("rank", "standard", "clip"):
            raise ValueError(f"bananas: transform must be 'rank', 'standard' or 'clip', not {transform!r}")
        if initial < 1 or retrain_every < 1 or hyper_every < 1:
            raise ValueError("bananas: initial, retrain_every and hyper_every must be at least 1")
        self.initial = int(initial)
        self.members, self.hidden, self.epochs, self.lr = int(members), int(hidden), int(epochs), float(lr)
        self.retrain_every = int(retrain_every)
        # the GP's grid search (27 Cholesky factorisations) runs every `hyper_every` results; the fits in
        # between reuse its choice (one factorisation), which keeps 300 queries within a minute
        self.hyper_every = int(hyper_every)
        self.hyper: tuple[float, float, float] | None = None
        self.hyper_at = 0  # results the grid search last ran on
        self.parents, self.mutations, self.random_candidates = int(parents), int(mutations), int(random_candidates)
        self.acquisition, self.ucb_kappa = acquisition, float(ucb_kappa)
        self.predictor = predictor
        self.transform = transform
        self.climbs = int(climbs)
        self.exhaustive = int(exhaustive)
        self._pool: list[Architecture] | None = None  # every architecture, when the space is small enough
        self._pool_keys: list[str] = []
        self._pool_x: np.ndarray | None = None  # the pool's encodings, for the encoder's current columns
        self._pool_width = -1
        self._pool_dot = np.zeros((0, 0))  # pool encodings . training encodings, one column per result
        self.encoder = TokenEncoder(space, use_space_encoding=space_encoding)
        self.fitted_on = 0  # results used by the current model (the first `fitted_on` told)
        self.model: Any = None
        self.y_mean = 0.0
        self.y_std = 1.0

    # ---- the predictor -----------------------------------------------------------------
    def _training_set(self, count: int) -> tuple[list[Architecture], np.ndarray]:
        keys = list(self.results)[:count]
        scores = [self.results[k] for k in keys]
        good = [s for s in scores if s is not None]
        worst = min(good) if good else 0.0
        y = np.array([worst if s is None else s for s in scores], dtype=np.float64)
        return [self.arch_of(k) for k in keys], y

    def _fit(self, count: int) -> None:
        archs, y = self._training_set(count)
        x = self.encoder.fit(archs)  # columns in order of first appearance among results: reproducible
        self.y_mean = float(y.mean())
        self.y_std = float(y.std()) or 1.0
        if self.transform == "rank":
            from scipy.stats import norm, rankdata

            y = norm.ppf(rankdata(y) / (len(y) + 1))
            self.y_mean, self.y_std = 0.0, float(y.std()) or 1.0
        elif self.transform == "clip":
            y = np.maximum(y, np.quantile(y, 0.25))
            self.y_mean = float(y.mean())
            self.y_std = float(y.std()) or 1.0
        self._best_transformed = float(((y - self.y_mean) / self.y_std).max())
        rng = np.random.default_rng(derive_seed(self.seed, count, 17))
        if self.predictor == "gp":
            search = self.hyper is None or count - self.hyper_at >= self.hyper_every
            self.model = GaussianProcess().fit(x, (y - self.y_mean) / self.y_std, rng,
                                               None if search else self.hyper)
            if search:
                self.hyper, self.hyper_at = (self.model.ls, self.model.lin, self.model.noise), count
        else:
            self.model = MLPEnsemble(self.members, self.hidden, 2, self.epochs, self.lr).fit(
                x, (y - self.y_mean) / self.y_std, rng)
        self.fitted_on = count

    def _ensure_model(self) -> None:
        n = self.queries
        if self.model is None and self.fitted_on > 0:
            self._fit(self.fitted_on)  # after load_state_dict: rebuild the same model
        if self.model is None or n - self.fitted_on >= self.retrain_every:
            self._fit(n)

    # ---- candidates ----------------------------------------------------------------------
    def _use_pool(self) -> bool:
        """Whether every architecture of the space is scored (small spaces, `exhaustive` > 0)."""
        if self.exhaustive and self._pool is None:
            self._pool = self.space.enumerate(self.exhaustive) or []
            self._pool_keys = [self.space.key(a) for a in self._pool]
        return bool(self._pool)

    def _pick_from_pool(self) -> Proposal | None:
        """The best unevaluated architecture of the whole space by the acquisition function."""
        assert self._pool is not None
        todo = np.flatnonzero([k not in self.proposed for k in self._pool_keys])
        if not len(todo):
            return None
        if self._pool_x is None or self._pool_width != len(self.encoder.index):
            self._pool_x = self.encoder.encode(self._pool)
            self._pool_width = len(self.encoder.index)
            self._pool_dot = np.zeros((len(self._pool), 0))
        if self.predictor != "gp":
            value, mean = self._value(self._pool_x[todo])
        else:
            # the training rows only ever grow at the end (results in order), so only new columns are computed
            train = self.model.x
            have = self._pool_dot.shape[1]
            if have > len(train):
                self._pool_dot, have = self._pool_dot[:, :0], 0
            if have < len(train):
                self._pool_dot = np.hstack([self._pool_dot, self._pool_x @ train[have:].T])
            value, mean = self._value(self._pool_x[todo], self._pool_dot[todo])
        take = int(np.argmax(value))
        return self._propose(self._pool[int(todo[take])], role="model", local=False,
                             predicted=float(mean[take] * self.y_std + self.y_mean))

    def _candidates(self) -> list[Architecture]:
        seen: set[str] = set()
        out: list[Architecture] = []

        def add(arch: Architecture) -> None:
            key = self.space.key(arch)
            if key not in seen and key not in self.proposed:
                seen.add(key)
                out.append(arch)

        for key, _ in self.best(self.parents):
            parent = self.arch_of(key)
            for nb in self.space.neighbours(parent):
                add(nb)
            for _ in range(self.mutations):
                add(self.space.mutate(self.space.mutate(parent, self.rng), self.rng))
        self._n_local = len(out)
        for _ in range(self.random_candidates):
            add(self.space.sample(self.rng))
        return out

    def ask(self, n: int) -> list[Proposal]:
        out: list[Proposal] = []
        while len(out) < n:
            asked = len(self.proposed)
            if asked < self.initial:
                out.append(self._propose(self.fresh_sample(), role="initial"))
                continue
            if self.queries == 0 or all(s is None for s in self.results.values()):
                if self.pending:
                    break  # wait for a first usable result
                out.append(self._propose(self.fresh_sample(), role="random"))
                continue
            self._ensure_model()
            assert self.model is not None
            if self._use_pool():
                picked = self._pick_from_pool()
                out.append(picked if picked is not None else self._propose(self.fresh_sample(), role="random"))
                continue
            cands = self._candidates()
            if not cands:
                out.append(self._propose(self.fresh_sample(), role="random"))
                continue
            cache: dict[str, tuple[float, float]] = {}
            value, mean = self._acquire(cands, cache)
            local = self._n_local
            if self.climbs:
                cands, value, mean = self._climb(cands, value, mean, cache)
            take = int(np.argmax(value))
            out.append(self._propose(cands[take], role="model", local=bool(take < local),
                                     predicted=float(mean[take] * self.y_std + self.y_mean)))
        return out

    def _acquire(self, cands: list[Architecture], cache: dict[str, tuple[float, float]]
                 ) -> tuple[np.ndarray, np.ndarray]:
        """Acquisition value and predicted mean of each candidate (memoised per key within one pick)."""
        keys = [self.space.key(a) for a in cands]
        todo = [i for i, k in enumerate(keys) if k not in cache]
        if todo:
            value, mean = self._value(self.encoder.encode([cands[i] for i in todo]))
            for j, i in enumerate(todo):
                cache[keys[i]] = (float(value[j]), float(mean[j]))
        got = [cache[k] for k in keys]
        return np.array([g[0] for g in got]), np.array([g[1] for g in got])

    def _value(self, x: np.ndarray, dot: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Acquisition value and predicted (standardised) mean of each encoded candidate."""
        if self.predictor == "gp":
            mean, std = self.model.predict(x, dot)
        else:
            preds = self.model.predict(x)
            mean, std = preds.mean(axis=0), preds.std(axis=0)
        if self.acquisition == "its":
            return mean + std * self.rng.standard_normal(len(x)), mean
        if self.acquisition == "ei":
            from scipy.stats import norm

            z = (mean - self._best_transformed) / std
            return (mean - self._best_transformed) * norm.cdf(z) + std * norm.pdf(z), mean
        return mean + self.ucb_kappa * std, mean

    def _climb(self, cands: list[Architecture], value: np.ndarray, mean: np.ndarray,
               cache: dict[str, tuple[float, float]]) -> tuple[list[Architecture], np.ndarray, np.ndarray]:
        """Hill-climb the acquisition from random starts (neighbour moves); add what the climbs meet."""
        extra: list[Architecture] = []
        for _ in range(self.climbs):
            cur = self.space.sample(self.rng)
            cur_v = self._acquire([cur], cache)[0][0]
            for _ in range(20):
                nbs = self.space.neighbours(cur)
                if not nbs:
                    break
                v, _ = self._acquire(nbs, cache)
                extra.extend(nbs)
                j = int(np.argmax(v))
                if v[j] <= cur_v:
                    break
                cur, cur_v = nbs[j], v[j]
        seen = {self.space.key(a) for a in cands}
        add = []
        for a in extra:
            k = self.space.key(a)
            if k not in seen and k not in self.proposed:
                seen.add(k)
                add.append(a)
        if not add:
            return cands, value, mean
        v2, m2 = self._acquire(add, cache)
        return cands + add, np.concatenate([value, v2]), np.concatenate([mean, m2])

    def tell(self, proposal: Proposal, result: Result) -> None:
        self._record(proposal, result)

    def state_dict(self) -> JSONDict:
        return {**self.base_state(), "fitted_on": self.fitted_on,
                "hyper": None if self.hyper is None else [*self.hyper, self.hyper_at]}

    def load_state_dict(self, state: JSONDict) -> None:
        self.load_base_state(state)
        self.fitted_on = int(state["fitted_on"])
        hyper = state.get("hyper")  # absent in states saved before hyper_every: the grid runs again
        self.hyper = None if hyper is None else (float(hyper[0]), float(hyper[1]), float(hyper[2]))
        self.hyper_at = 0 if hyper is None else int(hyper[3])
        self.model = None
