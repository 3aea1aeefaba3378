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
from nasforge.data.images import IDXProvider, ImageFolderProvider, NPZProvider, is_idx_folder, is_image_folder
from nasforge.data.sequence import SequenceProvider
from nasforge.data.text import TextProvider, is_corpus

CSV_OPTIONS = ("label", "header", "sep", "task", "valid_file", "valid_fraction", "test_file", "test_fraction",
               "seed", "max_rows", "max_categories")
BUILTIN_OPTIONS = ("valid_fraction", "test_fraction", "seed", "as_images")
_SPLIT_OPTIONS = ("valid_fraction", "test_fraction", "seed", "max_train")
IDX_OPTIONS = (*_SPLIT_OPTIONS, "class_names", "train_labels", "test_images", "test_labels")
NPZ_OPTIONS = (*_SPLIT_OPTIONS, "class_names")
FOLDER_OPTIONS = (*_SPLIT_OPTIONS, "size", "channels")
TEXT_OPTIONS = ("valid_file", "test_file", "valid_fraction", "test_fraction", "bptt", "max_tokens", "max_vocab")
SEQUENCE_OPTIONS = ("test_file", "valid_fraction", "test_fraction", "seed", "id_column", "time_column", "label", "sep",
                    "step_labels")
FORMATS = ("csv", "idx", "npz", "images", "text", "sequence")
Provider = (CSVProvider | BuiltinProvider | IDXProvider | NPZProvider | ImageFolderProvider | TextProvider
            | SequenceProvider)
CACHE_SIZE = 4

_cache: OrderedDict[str, Dataset] = OrderedDict()


def data_config(data: str, **options: Any) -> dict[str, Any]:
    """`builtin:NAME`, a file or a folder plus options -> a validated JSON config with a `"kind"`.

    Kinds: `csv` (the default for files), `builtin`, `idx` (a folder of MNIST-format files, or one of
    them), `npz` (a `.npz` archive), `images` (class folders of image files), `text` (a PTB-style
    corpus folder or `*train.txt` file), `sequence` (a sktime/aeon `.ts` file, detected; or with
    `format="sequence"` an `.npz` of (cases, steps, channels) arrays or a long CSV of one row per step).
    Folders, `.ts` and `.npz` are detected; `format=` forces a kind.

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
    fmt = given.pop("format", None) or _detect_format(text)
    if fmt not in FORMATS:
        raise ConfigError(f"format must be one of {', '.join(FORMATS)} (or omitted to detect), got {fmt!r}")
    if fmt != "csv":
        return _file_config(fmt, text, given)
    _reject_unknown(given, CSV_OPTIONS, "a CSV/TSV file")
    for key in ("valid_file", "test_file"):
        if key in given:
            given[key] = _existing_file(given[key], key)
    return CSVProvider(_existing_file(text, "--data"), **given).config()


def _detect_format(text: str) -> str:
    """Folders: IDX files, a PTB-style corpus or class folders of images. Files: by name; else CSV."""
    full = os.path.abspath(os.path.expanduser(text))
    if os.path.isdir(full):
        if is_idx_folder(full):
            return "idx"
        if is_corpus(full):
            return "text"
        if is_image_folder(full):
            return "images"
        raise DataError(f"{text}: is a folder without IDX files (train-images-idx3-ubyte...), a corpus "
                        "(ptb.train.txt...) or class folders of images")
    lower = full.lower()
    if lower.endswith(".ts"):
        return "sequence"
    if lower.endswith(".npz"):
        return "npz"
    if lower.endswith(".npy"):
        raise DataError(f"{text}: a single .npy array carries no labels; give a CSV/TSV table, or an .npz with "
                        "x_train and y_train (images or, with --space sequence, sequences)")
    if "-ubyte" in lower or lower.endswith((".idx", ".idx.gz")):
        return "idx"
    if os.path.isfile(full) and is_corpus(full):
        return "text"
    return "csv"


def _file_config(fmt: str, text: str, given: dict[str, Any]) -> dict[str, Any]:
    """Options the CLI passes to every kind with CSV defaults (header=auto, no label) are dropped quietly."""
    if str(given.get("header", "")).lower() == "auto":
        del given["header"]
    if fmt == "text":
        given.pop("seed", None)  # a corpus is read in order: nothing to seed
        if given.get("task") == "language_model":
            del given["task"]
    elif given.get("task") == "classification":
        del given["task"]
    allowed = {"idx": IDX_OPTIONS, "npz": NPZ_OPTIONS, "images": FOLDER_OPTIONS, "text": TEXT_OPTIONS,
               "sequence": SEQUENCE_OPTIONS}[fmt]
    what = {"idx": "IDX image data", "npz": "an NPZ archive", "images": "an image folder",
            "text": "a text corpus", "sequence": "sequence data"}[fmt]
    _reject_unknown(given, allowed, what)
    full = os.path.abspath(os.path.expanduser(text))
    if not os.path.exists(full):
        raise DataError(f"{text}: not found (--data)")
    for key in ("valid_file", "test_file", "train_labels", "test_images", "test_labels"):
        if key in given:
            given[key] = _existing_file(given[key], key)
    return provider({"kind": fmt, "path": full, **given}).config()


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


def provider(config: dict[str, Any]) -> Provider | _Loaded:
    """The provider a config describes (the inverse of `provider.config()`)."""
    options = dict(config)
    kind = options.pop("kind", None)
    if kind in ("provider", "arrays"):  # a user Provider: rebuilt by import path, or materialised (data/memory.py)
        from nasforge.data import memory

        return _Loaded(config, memory.rebuild if kind == "provider" else memory.load_arrays)
    try:
        if kind == "csv":
            return CSVProvider(options.pop("path"), **options)
        if kind == "builtin":
            return BuiltinProvider(options.pop("name"), **options)
        if kind == "idx":
            return IDXProvider(options.pop("path", None), **options)
        if kind in ("npz", "images", "text", "sequence"):
            factory = {"npz": NPZProvider, "images": ImageFolderProvider, "text": TextProvider,
                       "sequence": SequenceProvider}[kind]
            return factory(options.pop("path"), **options)  # type: ignore[abstract, no-any-return]
    except (KeyError, TypeError) as exc:
        raise ConfigError(f"bad {kind} data config {config!r}: {exc}") from None
    raise ConfigError(f"data config kind must be 'csv' or 'builtin' (or {', '.join(map(repr, FORMATS[1:]))}), "
                      f"got {kind!r}")


class _Loaded:
    """A user provider's config behind the built-in providers' `load()`/`config()` interface."""

    def __init__(self, config: dict[str, Any], loader: Any) -> None:
        self._config = dict(config)
        self._loader = loader

    def config(self) -> dict[str, Any]:
        return dict(self._config)

    def load(self) -> Dataset:
        return self._loader(self._config)  # type: ignore[no-any-return]


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
