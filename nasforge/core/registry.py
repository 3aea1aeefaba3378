"""Names to factories, so a worker rebuilds a trial from (space, evaluator, config) alone.

Besides the built-in names, a factory may come from user code in three ways: an import path
(`mypkg.spaces:MySpace`), `register(kind, name, factory)`, or an installed package's entry point in
the group `ENTRY_POINT_GROUPS[kind]` (e.g. `nasforge.spaces`, `nasforge.strategies`). A stored study
always keeps the import path (see `canonical`), never a pickled object, so worker processes, Ray workers
and resume rebuild it."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from importlib import metadata
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
    "sequence": "nasforge.spaces.sequence:SequenceSpace",
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
    "proxy_bananas": "nasforge.strategies.proxy_bananas:ProxyBananas",
    "npenas": "nasforge.strategies.npenas:NPENAS",
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
# User data providers and dnn/cnn blocks: no built-in entries, filled by register() and entry points.
PROVIDERS: dict[str, str] = {}
BLOCKS: dict[str, str] = {}
_KINDS = {"space": SPACES, "strategy": STRATEGIES, "evaluator": EVALUATORS, "oneshot": ONESHOT,
          "provider": PROVIDERS, "block": BLOCKS}
USER_KINDS = ("space", "strategy", "evaluator", "provider", "block")
_BUILTIN = {kind: frozenset(table) for kind, table in _KINDS.items()}
_loaded_entry_points: set[str] = set()


ENTRY_POINT_GROUPS = {"space": "nasforge.spaces", "strategy": "nasforge.strategies", "evaluator": "nasforge.evaluators",
                      "provider": "nasforge.providers", "block": "nasforge.blocks"}


def entry_point_group(kind: str) -> str:
    return ENTRY_POINT_GROUPS[kind]


def _load_entry_points(kind: str) -> None:
    """Add installed plugins' names (their import paths only: nothing is imported until used)."""
    if kind in _loaded_entry_points or kind not in USER_KINDS:
        return
    _loaded_entry_points.add(kind)
    table = _KINDS[kind]
    for ep in metadata.entry_points(group=entry_point_group(kind)):
        if ep.name not in _BUILTIN[kind]:
            table.setdefault(ep.name, ep.value.replace(" ", ""))


def plugins(kind: str) -> list[str]:
    """Names added by register() or entry points, for help listings."""
    _load_entry_points(kind)
    return sorted(set(_KINDS[kind]) - _BUILTIN[kind])


def register(kind: str, name: str, factory: Callable[..., Any]) -> str:
    """Make `name` usable wherever a built-in name is; returns the import path the store keeps."""
    if kind not in USER_KINDS:
        raise ConfigError(f"cannot register a {kind!r}; kinds are: {', '.join(USER_KINDS)}")
    if not name or ":" in name:
        raise ConfigError(f"a registered {kind} name must be non-empty and have no ':' (got {name!r})")
    if name in _BUILTIN[kind] or (kind == "strategy" and name in ONESHOT):
        raise ConfigError(f"{kind} {name!r} is built in; register it under another name")
    path = import_path(factory)
    _KINDS[kind][name] = path
    return path


def import_path(factory: Callable[..., Any]) -> str:
    """`module:qualname` of a class or function, checked to import back to the same object."""
    module = getattr(factory, "__module__", None)
    qualname = getattr(factory, "__qualname__", None)
    if not module or not qualname or "<" in qualname:
        raise ConfigError(f"{factory!r} has no import path (a lambda or a local object); define it at the top "
                          "level of a module")
    path = f"{module}:{qualname}"
    if _import(path, "factory") is not factory:
        raise ConfigError(f"{path} does not import back to {factory!r}; define it at the top level of a module")
    return path


def is_import_path(name: str) -> bool:
    return ":" in name


def _import(path: str, kind: str) -> Any:
    module_name, _, attr = path.partition(":")
    if not module_name or not attr:
        raise ConfigError(f"bad {kind} import path {path!r}; write it as package.module:Name")
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"{kind} plugin {path!r} cannot be imported ({exc}); install the package that "
                          "provides it or add it to PYTHONPATH") from exc
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise ConfigError(f"{kind} plugin {path!r}: module {module_name!r} has no {attr!r}")
        obj = getattr(obj, part)
    return obj


def canonical(kind: str, name: str) -> str:
    """The name a study stores: built-in names as they are, user names as their import path."""
    resolve(kind, name)
    if kind not in USER_KINDS or is_import_path(name) or name in _BUILTIN[kind]:  # one-shot names stay names
        return name
    return _KINDS[kind][name]


def available(kind: str) -> list[str]:
    _load_entry_points(kind)
    return sorted(_KINDS[kind])


def known(kind: str, name: str) -> bool:
    """Whether `name` is a name or import path this kind may use (import paths are checked on resolve)."""
    return is_import_path(name) or name in available(kind)


def tables() -> dict[str, dict[str, str]]:
    """Every kind's names and factories, as plain JSON: what a worker process needs to resolve the same names."""
    return {kind: dict(table) for kind, table in _KINDS.items()}


def load_tables(given: dict[str, dict[str, str]]) -> None:
    """Make this process's names those of `tables()` in another (entries a parent process added included)."""
    for kind, table in given.items():
        _KINDS[kind].clear()
        _KINDS[kind].update(table)


def resolve(kind: str, name: str) -> Callable[..., Any]:
    if is_import_path(name):
        return _import(name, kind)  # type: ignore[no-any-return]
    _load_entry_points(kind)
    table = _KINDS[kind]
    if name not in table:
        raise ConfigError(f"unknown {kind} {name!r}; choose one of: {', '.join(sorted(table))}, or give an "
                          "import path package.module:Name")
    return _import(table[name], kind)  # type: ignore[no-any-return]


def create(kind: str, name: str, **config: Any) -> Any:
    factory = resolve(kind, name)
    try:
        return factory(**config)
    except (TypeError, ValueError) as exc:  # constructors reject bad option values with ValueError
        if isinstance(exc, ConfigError):
            raise
        raise ConfigError(f"bad options for {kind} {name!r}: {exc}") from exc
