from __future__ import annotations

import itertools

import numpy as np
import pytest

from nasforge.core import registry
from nasforge.core.types import Result, TrialState
from nasforge.strategies.bananas import GaussianProcess, MLPEnsemble
from nasforge.strategies.common import TokenEncoder
from tests.strategies import checks

NAME = "bananas"


def test_mlp_ensemble_option_runs() -> None:
    checks.check_determinism(NAME, predictor="mlp", epochs=30)


def _data(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    space = registry.create("space", "nb201")
    rng = np.random.default_rng(seed)
    archs = [space.sample(rng) for _ in range(n + 200)]
    x = TokenEncoder(space).fit(archs)
    y = np.array([checks.objective(a.tokens) for a in archs])
    y = (y - y.mean()) / y.std()
    return x[:n], y[:n], x[n:], y[n:]


def test_predictors_learn_a_landscape() -> None:
    x, y, x_test, y_test = _data(80, 0)
    mean, std = GaussianProcess().fit(x, y, np.random.default_rng(0)).predict(x_test)
    assert np.corrcoef(mean, y_test)[0, 1] > 0.8 and (std > 0).all()
    preds = MLPEnsemble(members=3, epochs=150).fit(x, y, np.random.default_rng(0)).predict(x_test)
    assert preds.shape == (3, len(y_test))
    assert np.corrcoef(preds.mean(0), y_test)[0, 1] > 0.6


def test_encoder_is_generic() -> None:
    """One-hot columns come from the decision walk, so any space works (dnn has no `encode`)."""
    space = registry.create("space", "dnn")
    rng = np.random.default_rng(0)
    archs = [space.sample(rng) for _ in range(20)]
    enc = TokenEncoder(space)
    x = enc.fit(archs)
    assert x.shape[0] == 20 and set(np.unique(x)) <= {0.0, 1.0}
    assert (x.sum(1) == [len(a.tokens) for a in archs]).all()
    strategy = checks.make(NAME, space="dnn", initial=5)
    for _ in range(12):
        for p in strategy.ask(1):
            strategy.tell(p, Result(TrialState.COMPLETE, score=float(len(p.arch.tokens))))


def test_beats_random_on_nas_bench_201(shared_data) -> None:
    table = shared_data / checks.TABLE
    if not table.is_file():
        pytest.skip(f"{table} not found")
    seeds = range(3)
    ours = checks.mean_final_test(NAME, table, "cifar10", 60, seeds)
    random = checks.mean_final_test("random", table, "cifar10", 60, seeds)
    assert ours > random + 0.3


def test_the_gp_grid_search_runs_every_hyper_every_results_and_resumes_exactly(monkeypatch: pytest.MonkeyPatch) -> None:
    strategy = checks.make(NAME, hyper_every=4, exhaustive=0, random_candidates=30, parents=2, mutations=2)
    grid_at = []
    fit = GaussianProcess.fit

    def counting(self, x, y, rng, hyper=None):  # type: ignore[no-untyped-def]
        if hyper is None:
            grid_at.append(len(y))
        else:
            assert hyper == strategy.hyper  # the last grid search's choice, reused as it is
        return fit(self, x, y, rng, hyper)

    monkeypatch.setattr(GaussianProcess, "fit", counting)
    checks.drive(strategy, 30, batch=1, fail_every=0)
    monkeypatch.undo()
    assert len(grid_at) >= 3 and all(b - a >= 4 for a, b in itertools.pairwise(grid_at))
    assert strategy.fitted_on > grid_at[-1]  # fits in between reused the choice
    checks.check_resume_with_pending(NAME, hyper_every=4, exhaustive=0, random_candidates=30, parents=2,
                                     mutations=2)
