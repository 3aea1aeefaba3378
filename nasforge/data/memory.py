"""A provider's data as a study's data config: rebuilt by import path, or written once to the study folder.

Worker processes and resumed searches only ever get JSON (docs/architecture.md), so a `Provider` instance
becomes one of two data configs:
- `{"kind": "provider", "factory": "pkg.mod:Cls", "options": {...}}` when its `config()` gives options and
  its class imports back (workers call `Cls(**options).load()`);
- otherwise `{"kind": "arrays", "path": "<study folder>/data/<digest>.npz", "sha256": ...}`: the calling
  process loads it, and the launch writes the model-ready splits there (NumPy, no pickles) once the study
  is open; workers, `nasforge train`, ensembles and a resume read that file. The digest covers the splits
  and the preprocessing, so the same data resumes the same study and other data is a different study.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from nasforge.core.errors import ConfigError, DataError
from nasforge.data.base import Dataset, DataSpec, Split
from nasforge.data.provider import Provider

FORMAT = "nasforge.arrays"
VERSION = 1
_PARTS = ("train", "valid", "test")
_pending: dict[str, Dataset] = {}  # path -> dataset loaded here, written by `write_pending`


def provider_config(provider: Provider, folder_of: Any) -> tuple[dict[str, Any], Dataset]:
    """The data config of a provider instance and its loaded dataset.

    `folder_of(digest)` gives the study folder where materialised data goes (the default study name may
    depend on the digest)."""
    if not isinstance(provider, Provider):
        raise ConfigError(f"provider must be a nasforge Provider instance, got {type(provider).__name__}")
    options = provider.config()
    if options is not None:
        from nasforge.core import registry

        if not isinstance(options, dict):
            raise ConfigError(f"{provider.name}.config() must return a dict of options or None")
        try:
            json.dumps(options)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{provider.name}.config() must be plain JSON ({exc})") from None
        config = {"kind": "provider", "factory": registry.import_path(type(provider)), "options": options}
        return config, provider.load()
    dataset = provider.load()
    digest = dataset_digest(dataset)
    path = Path(folder_of(digest)) / "data" / f"{digest[:16]}.npz"
    config = {"kind": "arrays", "path": str(path), "sha256": digest}
    _pending[str(path)] = dataset
    return config, dataset


def rebuild(config: dict[str, Any]) -> Dataset:
    """A `provider` data config -> its dataset, in whatever process this runs."""
    from nasforge.core import registry

    factory = registry.resolve("provider", str(config.get("factory")))
    try:
        provider = factory(**dict(config.get("options") or {}))
    except TypeError as exc:
        raise ConfigError(f"provider {config.get('factory')!r}: cannot rebuild it from its config() ({exc})") from None
    if not isinstance(provider, Provider):
        raise ConfigError(f"provider {config.get('factory')!r} is not a nasforge Provider")
    return provider.load()


def dataset_digest(dataset: Dataset) -> str:
    hasher = hashlib.sha256(_meta_text(dataset).encode())
    for part in _PARTS:
        split = getattr(dataset, part)
        if split is not None:
            for array in (split.x, split.y):
                contiguous = np.ascontiguousarray(array)
                hasher.update(f"{part}:{contiguous.dtype.str}:{contiguous.shape}".encode())
                hasher.update(contiguous.tobytes())
    return hasher.hexdigest()


def _meta_text(dataset: Dataset) -> str:
    meta = {"format": FORMAT, "version": VERSION, "spec": dataclasses.asdict(dataset.spec),
            "preprocessor": dataset.preprocessor.to_json() if dataset.preprocessor is not None else None,
            "source": dataset.source}
    return json.dumps(meta, sort_keys=True, default=str)


def write_pending(data_config: dict[str, Any] | None) -> None:
    """Write a materialised dataset this process loaded, once (atomic, so a reader never sees half a file)."""
    if not data_config or data_config.get("kind") != "arrays":
        return
    path = Path(str(data_config["path"]))
    dataset = _pending.get(str(path))
    if dataset is None or path.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {"meta": np.array(_meta_text(dataset))}
    for part in _PARTS:
        split = getattr(dataset, part)
        if split is not None:
            arrays[f"{part}_x"], arrays[f"{part}_y"] = split.x, split.y
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(temp, "wb") as f:
        np.savez(f, **arrays)  # type: ignore[arg-type]
    os.replace(temp, path)


def load_arrays(config: dict[str, Any]) -> Dataset:
    """The dataset of an `arrays` config: from this process's memory, else from its file (digest checked)."""
    path = str(config.get("path"))
    if path in _pending:
        return _pending[path]
    if not os.path.isfile(path):
        raise DataError(f"{path}: the study's in-memory data file is missing (it is written to the study "
                        "folder when the search starts); run the search again with the same data")
    try:
        with np.load(path, allow_pickle=False) as archive:
            meta = json.loads(str(archive["meta"]))
            splits = {part: Split(archive[f"{part}_x"], archive[f"{part}_y"]) for part in _PARTS
                      if f"{part}_x" in archive}
    except (OSError, ValueError, KeyError) as exc:
        raise DataError(f"{path}: not a readable nasforge data file ({exc})") from None
    fields: dict[str, Any] = {key: tuple(value) if isinstance(value, list) else value
                              for key, value in meta["spec"].items()}
    spec = DataSpec(**fields)
    dataset = Dataset(spec, splits["train"], splits["valid"], splits.get("test"),
                      preprocessor=_preprocessor(meta["preprocessor"]), source=dict(meta["source"]))
    if config.get("sha256") and dataset_digest(dataset) != config["sha256"]:
        raise DataError(f"{path}: the data file does not match the study's data (changed since the search began)")
    return dataset


def _preprocessor(data: dict[str, Any] | None) -> Any:
    if data is None:
        return None
    from nasforge.data.images import FORMAT as IMAGES
    from nasforge.data.images import ImagePreprocessor
    from nasforge.data.tabular import FORMAT as TABULAR
    from nasforge.data.tabular import TabularPreprocessor

    if data.get("format") == TABULAR:
        return TabularPreprocessor.from_json(data)
    if data.get("format") == IMAGES:
        return ImagePreprocessor.from_json(data)
    raise DataError(f"unknown preprocessor format {data.get('format')!r} in a data file")


def study_folder(storage: str | None, root: str | None, study: str) -> Path:
    """The folder `runner.artifact_dir_for` gives the study, known before any store is opened."""
    if root:
        return Path(root).expanduser().resolve() / study
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    from nasforge.core.errors import StorageError
    from nasforge.storage.sql import default_storage_url, user_data_dir

    try:
        url = make_url(storage or default_storage_url())
    except ArgumentError:
        raise StorageError(f"storage URL {storage!r} is not a valid SQLAlchemy URL") from None
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
        db = Path(str(url.database)).expanduser().resolve()
        return db.parent / f"{db.stem}-studies" / study
    return user_data_dir() / "studies" / study
