"""From a user's `--data` value to a JSON config, and from that config to a loaded Dataset.

The config is what a study stores and what a worker process gets, so it is plain JSON with
absolute paths; `load_dataset` caches by its canonical text so each process loads a file once.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from typing import Any

from nasforge.core.errors import ConfigError, DataError
from nasforge.core.types import canonical_json
from nasforge.data.base import Dataset
from nasforge.data.builtin import PREFIX, BuiltinProvider
from nasforge.data.csv import CSVProvider

CSV_OPTIONS = ("label", "header", "sep", "task", "valid_file", "valid_fraction", "test_file", "test_fraction",
               "seed", "max_rows", "max_categories")
BUILTIN_OPTIONS = ("valid_fraction", "test_fraction", "seed")
CACHE_SIZE = 4

_cache: OrderedDict[str, Dataset] = OrderedDict()


def data_config(data: str, **options: Any) -> dict[str, Any]:
    """`builtin:NAME` or a file path plus options -> a validated JSON config with a `"kind"`.

    Options left as None take their defaults (so CLI flags can be passed straight through); an
    option that does not apply (e.g. `label` for a builtin dataset) or a bad value is a ConfigError;
    a path that does not exist is a DataError.
    """
    if not isinstance(data, str | os.PathLike) or not str(data).strip():
        raise ConfigError(f"--data must be a file path or builtin:NAME, got {data!r}")
    given = {key: value for key, value in options.items() if value is not None}
    text = str(data).strip()
    if text.startswith(PREFIX):
        if str(given.get("header", "")).lower() == "auto":
            del given["header"]  # the CSV default, harmless to pass along
        allowed = BUILTIN_OPTIONS
        _reject_unknown(given, allowed, f"builtin dataset {text!r}")
        return BuiltinProvider(text, **given).config()
    _reject_unknown(given, CSV_OPTIONS, "a CSV/TSV file")
    for key in ("valid_file", "test_file"):
        if key in given:
            given[key] = _existing_file(given[key], key)
    return CSVProvider(_existing_file(text, "--data"), **given).config()


def _reject_unknown(given: dict[str, Any], allowed: tuple[str, ...], what: str) -> None:
    unknown = sorted(set(given) - set(allowed))
    if unknown:
        raise ConfigError(f"option(s) {', '.join(unknown)} do not apply to {what}; "
                          f"allowed: {', '.join(allowed)}")


def _existing_file(path: str | os.PathLike[str], what: str) -> str:
    full = os.path.abspath(os.path.expanduser(os.fspath(path)))
    if not os.path.exists(full):
        raise DataError(f"{path}: file not found ({what})")
    if os.path.isdir(full):
        raise DataError(f"{path}: is a directory, not a file ({what})")
    return full


def provider(config: dict[str, Any]) -> CSVProvider | BuiltinProvider:
    """The provider a config describes (the inverse of `provider.config()`)."""
    options = dict(config)
    kind = options.pop("kind", None)
    try:
        if kind == "csv":
            return CSVProvider(options.pop("path"), **options)
        if kind == "builtin":
            return BuiltinProvider(options.pop("name"), **options)
    except (KeyError, TypeError) as exc:
        raise ConfigError(f"bad {kind} data config {config!r}: {exc}") from None
    raise ConfigError(f"data config kind must be 'csv' or 'builtin', got {kind!r}")


def load_dataset(config: dict[str, Any]) -> Dataset:
    """Load (or reuse) the dataset of a config; the returned object is shared, so do not modify it."""
    key = canonical_json(config)
    if key in _cache:
        _cache.move_to_end(key)
        return _cache[key]
    dataset = provider(config).load()
    _cache[key] = dataset
    while len(_cache) > CACHE_SIZE:
        _cache.popitem(last=False)
    return dataset


def clear_cache() -> None:
    _cache.clear()
