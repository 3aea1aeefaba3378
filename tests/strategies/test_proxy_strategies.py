"""proxy_bananas and npenas with a proxy table: warm start, proxy features, determinism, state, learning."""

from __future__ import annotations

import json

import numpy as np
import pytest

from nasforge.core import registry
from nasforge.core.errors import ConfigError
from nasforge.core.types import Result, TrialState
from nasforge.evaluators.synthetic import SyntheticEvaluator
from nasforge.proxies.compute import COLUMNS
from nasforge.proxies.report import sample_archs
from nasforge.proxies.table import append_rows, arch_text
from nasforge.strategies.proxy_features import ProxyFeatures
from nasforge.testing.strategies import drive

OBJECTIVE = SyntheticEvaluator()
PROXY_STRATEGIES = ("proxy_bananas", "npenas")


@pytest.fixture(scope="module")
def proxy_csv(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A proxy table over 2,000 nb201 cells whose proxies are the objective plus noise (a good proxy)."""
    space = registry.create("space", "nb201")
    rng = np.random.default_rng(0)
    rows = []
    for arch in sample_archs(space, 2000, seed=0):
        value = OBJECTIVE.value(arch)
        rows.append({"arch": arch_text(space, arch), "key": space.key(arch), "seconds": 0.01,
                     **{c: value + float(rng.normal(0, 0.05)) for c in COLUMNS}})
    path = tmp_path_factory.mktemp("proxies") / "nb201.csv"
    append_rows(path, rows)
    return str(path)


def make(name: str, proxies: str | None, seed: int = 0, **options):
    space = registry.create("space", "nb201")
    return registry.create("strategy", name, space=space, seed=seed, max_trials=60, proxies=proxies, **options)


@pytest.mark.parametrize("name", PROXY_STRATEGIES)
def test_warm_start_trains_the_best_by_proxy_first(name: str, proxy_csv: str) -> None:
    strategy = make(name, proxy_csv, initial=5)
    ranked = ProxyFeatures(strategy.space, proxy_csv).ranked()
    asked = [p.key for p in strategy.ask(5)]
    assert asked == [strategy.space.key(a) for a in ranked[:5]]


@pytest.mark.parametrize("name", PROXY_STRATEGIES)
def test_same_seed_same_proposals_and_state_round_trip(name: str, proxy_csv: str) -> None:
    assert drive(make(name, proxy_csv, seed=3), 25) == drive(make(name, proxy_csv, seed=3), 25)
    a = make(name, proxy_csv, seed=5)
    drive(a, 20)
    b = make(name, proxy_csv, seed=99)
    b.load_state_dict(json.loads(json.dumps(a.state_dict())))
    assert drive(a, 15, start=100) == drive(b, 15, start=100)


@pytest.mark.parametrize("name", PROXY_STRATEGIES)
def test_proxies_help_on_a_landscape_they_predict(name: str, proxy_csv: str) -> None:
    """With proxies that track the objective, 12 queries find better cells than without them (3 seeds)."""
    def best_after(proxies: str | None, seed: int) -> float:
        strategy = make(name, proxies, seed=seed)
        best = -1.0
        for _ in range(12):
            for p in strategy.ask(1):
                score = OBJECTIVE.value(p.arch)
                strategy.tell(p, Result(TrialState.COMPLETE, metrics={"valid_accuracy": score}, score=score))
                best = max(best, score)
        return best

    with_proxies = np.mean([best_after(proxy_csv, s) for s in range(3)])
    without = np.mean([best_after(None, s) for s in range(3)])
    assert with_proxies > without


def test_proxy_features_are_percentiles_and_unknown_cells_are_neutral(proxy_csv: str) -> None:
    space = registry.create("space", "nb201")
    features = ProxyFeatures(space, proxy_csv)
    x = features.matrix(features.archs)
    assert x.shape == (len(features.archs), len(COLUMNS)) and x.min() == 0.0 and x.max() == 1.0
    unknown = next(a for a in sample_archs(space, 2000, seed=9) if not features.covers(a))
    assert np.all(features.matrix([unknown]) == 0.5)


def test_unknown_proxy_name_is_a_config_error(proxy_csv: str) -> None:
    with pytest.raises(ConfigError, match="unknown proxies"):
        make("proxy_bananas", proxy_csv, proxy_vote="naswot,magic")


def test_bench_hands_the_proxy_csv_to_every_strategy_that_takes_it() -> None:
    from nasforge.bench.compare import takes_proxies

    assert takes_proxies("proxy_bananas") and takes_proxies("npenas")  # npenas takes it through **options
    assert not takes_proxies("bananas") and not takes_proxies("random")


def test_npenas_evaluates_the_mutant_with_the_best_upper_confidence_bound(proxy_csv: str) -> None:
    """npenas' default acquisition is UCB: its model pick is the candidate whose mean + kappa * std is largest."""
    strategy = make("npenas", proxy_csv, seed=4)
    assert strategy.acquisition == "ucb"
    drive(strategy, 15)
    strategy._ensure_model()
    state = strategy.rng.bit_generator.state
    cands = strategy._candidates()
    mean, std = strategy.model.predict(strategy.encoder.encode(cands))
    expected = strategy.space.key(cands[int(np.argmax(mean + strategy.ucb_kappa * std))])
    strategy.rng.bit_generator.state = state  # the same draws: the same parent and mutants
    (picked,) = strategy.ask(1)
    assert picked.key == expected
