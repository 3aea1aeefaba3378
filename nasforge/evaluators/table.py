"""Benchmark-table lookup: an architecture's metrics read from a CSV instead of trained.

A benchmark run makes thousands of lookups a second, so the table is loaded once per process
and turned into a dict keyed by the architecture string.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Any

from nasforge.core import registry
from nasforge.core.errors import DataError
from nasforge.core.types import Architecture, Result, TrialSpec, TrialState, canonical_json

ARCH_COLUMN = "arch_str"
Row = tuple[float, float, float | None]


@lru_cache(maxsize=8)
def _read(path: str, mtime: float) -> Any:
    import pandas as pd

    try:
        return pd.read_csv(path)
    except Exception as exc:  # pandas raises many kinds; the user needs one line
        raise DataError(f"table {path}: cannot read CSV ({exc})") from exc


def datasets_in(columns: list[str]) -> list[str]:
    """Names `d` for which both `d_valid` and `d_test` columns exist."""
    cols = set(columns)
    return sorted(c[: -len("_valid")] for c in cols if c.endswith("_valid") and c[: -len("_valid")] + "_test" in cols)


@lru_cache(maxsize=16)
def _lookup(path: str, mtime: float, valid: str, test: str, cost: str | None,
            dataset: str) -> dict[str, Row]:
    frame = _read(path, mtime)
    columns = [str(c) for c in frame.columns]
    if ARCH_COLUMN not in columns:
        raise DataError(f"table {path}: no {ARCH_COLUMN!r} column (columns: {', '.join(columns)})")
    for col, given in ((valid, f"{dataset}_valid"), (test, f"{dataset}_test")):
        if col not in columns:
            if col == given:
                found = ", ".join(datasets_in(columns)) or "none"
                raise DataError(f"table {path}: unknown dataset {dataset!r}; datasets found: {found} "
                                "(or pass valid_column/test_column)")
            raise DataError(f"table {path}: no column {col!r} (columns: {', '.join(columns)})")
    if cost is not None and cost not in columns:
        raise DataError(f"table {path}: no cost column {cost!r} (columns: {', '.join(columns)})")
    archs = frame[ARCH_COLUMN].astype(str).tolist()
    v = frame[valid].astype(float).tolist()
    t = frame[test].astype(float).tolist()
    c = frame[cost].astype(float).tolist() if cost is not None else [None] * len(archs)
    return {a: (vv, tt, cc) for a, vv, tt, cc in zip(archs, v, t, c)}


def load_table(table: str | os.PathLike[str], dataset: str = "cifar10", cost_column: str | None = None,
               valid_column: str | None = None, test_column: str | None = None) -> dict[str, Row]:
    """arch string -> (valid accuracy, test accuracy, cost or None); cached per process."""
    path = Path(table).expanduser()
    if not path.is_file():
        raise DataError(f"table {table}: file not found")
    resolved = str(path.resolve())
    mtime = path.stat().st_mtime
    valid = valid_column or f"{dataset}_valid"
    test = test_column or f"{dataset}_test"
    return _lookup(resolved, mtime, valid, test, cost_column, dataset)


class TableEvaluator:
    """Looks an architecture up in a benchmark table (accuracy in %): NAS-Bench-201 style CSVs."""

    def __init__(self, table: str, dataset: str = "cifar10", cost_column: str | None = None,
                 valid_column: str | None = None, test_column: str | None = None) -> None:
        self.table = str(table)
        self.dataset = dataset
        self.cost_column = cost_column
        self.valid_column = valid_column
        self.test_column = test_column
        self.rows = load_table(table, dataset, cost_column, valid_column, test_column)
        self._spaces: dict[tuple[str, str], Any] = {}

    def config(self) -> dict[str, Any]:
        return {"table": self.table, "dataset": self.dataset, "cost_column": self.cost_column,
                "valid_column": self.valid_column, "test_column": self.test_column}

    def _space(self, name: str, config: dict[str, Any]) -> Any:
        key = (name, canonical_json(config))
        space = self._spaces.get(key)
        if space is None:
            space = registry.create("space", name, **config)
            if not hasattr(space, "to_string"):
                raise DataError(f"space {name!r} has no architecture strings, so it cannot be looked up in a table")
            self._spaces[key] = space
        return space

    def lookup(self, arch_str: str) -> dict[str, float]:
        row = self.rows.get(arch_str)
        if row is None:
            raise DataError(f"table {self.table}: no row for architecture {arch_str!r}")
        metrics = {"valid_accuracy": row[0], "test_accuracy": row[1]}
        if row[2] is not None:
            metrics["cost"] = row[2]
        return metrics

    def evaluate(self, arch: Architecture, spec: TrialSpec, reporter: Any = None) -> Result:
        space = self._space(spec.space, dict(spec.space_config))
        # A missing (NaN) objective is turned into a failed trial by the worker, like any evaluator's.
        return Result(TrialState.COMPLETE, metrics=self.lookup(space.to_string(arch)))
