"""Names to factories, so a worker rebuilds a trial from (space, evaluator, config) alone."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from nasforge.core.errors import ConfigError

# name -> "module:attribute"; imported lazily so the CLI starts fast and optional parts stay optional.
SPACES: dict[str, str] = {
    "dnn": "nasforge.spaces.dnn:DNNSpace",
    "nb201": "nasforge.spaces.nb201:NB201Space",
    "chain_cnn": "nasforge.spaces.chain_cnn:ChainCNNSpace",
    "metaqnn": "nasforge.spaces.metaqnn:MetaQNNSpace",
    "nasnet": "nasforge.spaces.nasnet:NASNetSpace",
    "darts": "nasforge.spaces.darts:DARTSSpace",
    "enas_macro": "nasforge.spaces.enas_macro:ENASMacroSpace",
    "rnn_cell": "nasforge.spaces.rnn_cell:RNNCellSpace",
    "cnn": "nasforge.spaces.cnn:CNNSpace",
}
STRATEGIES: dict[str, str] = {
    "random": "nasforge.strategies.random_search:RandomSearch",
    "model_search": "nasforge.strategies.model_search:ModelSearch",
    "evolution": "nasforge.strategies.evolution:RegularizedEvolution",
    "reinforce": "nasforge.strategies.reinforce:Reinforce",
    "qlearning": "nasforge.strategies.qlearning:QLearning",
    "local": "nasforge.strategies.local_search:LocalSearch",
    "bananas": "nasforge.strategies.bananas:Bananas",
    "nsga2": "nasforge.strategies.nsga2:NSGA2",
}
# One-shot methods (weight sharing): selected with --strategy like the ask/tell strategies, run by
# nasforge.oneshot.study instead of the runner.
ONESHOT: dict[str, str] = {
    "darts": "nasforge.oneshot.darts:DARTS",
    "enas": "nasforge.oneshot.enas:ENAS",
    "smash": "nasforge.oneshot.smash:SMASH",
}
EVALUATORS: dict[str, str] = {
    "train": "nasforge.evaluators.train:TrainEvaluator",
    "table": "nasforge.evaluators.table:TableEvaluator",
    "synthetic": "nasforge.evaluators.synthetic:SyntheticEvaluator",
}
_KINDS = {"space": SPACES, "strategy": STRATEGIES, "evaluator": EVALUATORS, "oneshot": ONESHOT}


def available(kind: str) -> list[str]:
    return sorted(_KINDS[kind])


def tables() -> dict[str, dict[str, str]]:
    """Every kind's names and factories, as plain JSON: what a worker process needs to resolve the same names."""
    return {kind: dict(table) for kind, table in _KINDS.items()}


def load_tables(given: dict[str, dict[str, str]]) -> None:
    """Make this process's names those of `tables()` in another (entries a parent process added included)."""
    for kind, table in given.items():
        _KINDS[kind].clear()
        _KINDS[kind].update(table)


def resolve(kind: str, name: str) -> Callable[..., Any]:
    table = _KINDS[kind]
    if name not in table:
        raise ConfigError(f"unknown {kind} {name!r}; choose one of: {', '.join(sorted(table))}")
    module_name, attr = table[name].split(":")
    module = importlib.import_module(module_name)
    return getattr(module, attr)  # type: ignore[no-any-return]


def create(kind: str, name: str, **config: Any) -> Any:
    factory = resolve(kind, name)
    try:
        return factory(**config)
    except (TypeError, ValueError) as exc:  # constructors reject bad option values with ValueError
        if isinstance(exc, ConfigError):
            raise
        raise ConfigError(f"bad options for {kind} {name!r}: {exc}") from exc
