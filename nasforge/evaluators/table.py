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
from nasforge.data.base import DataSpec

ARCH_COLUMN = "arch_str"
Row = tuple[float, float, float | None]
# The networks the NAS-Bench-201 tables were trained as, so a cell's costs can be computed by building it
# with the space's own builder: dataset -> (input shape, classes).
DATASET_INPUTS: dict[str, tuple[tuple[int, ...], int]] = {
    "cifar10": ((3, 32, 32), 10), "cifar10-valid": ((3, 32, 32), 10), "cifar100": ((3, 32, 32), 100),
    "ImageNet16-120": ((3, 16, 16), 120)}


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


@lru_cache(maxsize=8)
def _cost_table(path: str, mtime: float, dataset: str) -> dict[str, dict[str, float]]:
    """arch string -> {cost: value} from a cost CSV: column `<dataset>_<cost>`, else `<cost>`."""
    from nasforge.objectives.spec import COSTS

    frame = _read(path, mtime)
    columns = [str(c) for c in frame.columns]
    if ARCH_COLUMN not in columns:
        raise DataError(f"cost table {path}: no {ARCH_COLUMN!r} column (columns: {', '.join(columns)})")
    found = {cost: f"{dataset}_{cost}" if f"{dataset}_{cost}" in columns else cost for cost in COSTS}
    found = {cost: col for cost, col in found.items() if col in columns}
    if not found:
        raise DataError(f"cost table {path}: no cost columns for {dataset!r} (want {dataset}_params, params, "
                        f"{dataset}_flops, ...; columns: {', '.join(columns)})")
    archs = frame[ARCH_COLUMN].astype(str).tolist()
    values = {cost: frame[col].astype(float).tolist() for cost, col in found.items()}
    return {a: {cost: values[cost][i] for cost in found} for i, a in enumerate(archs)}


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
                 valid_column: str | None = None, test_column: str | None = None, costs: str | None = None) -> None:
        self.table = str(table)
        self.dataset = dataset
        self.cost_column = cost_column
        self.valid_column = valid_column
        self.test_column = test_column
        self.rows = load_table(table, dataset, cost_column, valid_column, test_column)
        self.costs = None if costs is None else str(Path(costs).expanduser().resolve())
        self._costs = self._load_costs()
        self._spaces: dict[tuple[str, str], Any] = {}

    def _load_costs(self) -> dict[str, dict[str, float]] | None:
        if self.costs is None:
            return None
        path = Path(self.costs)
        if not path.is_file():
            raise DataError(f"cost table {self.costs}: file not found")
        return _cost_table(self.costs, path.stat().st_mtime, self.dataset)

    def config(self) -> dict[str, Any]:
        return {"table": self.table, "dataset": self.dataset, "cost_column": self.cost_column,
                "valid_column": self.valid_column, "test_column": self.test_column, "costs": self.costs}

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

    # ---- costs (nasforge.objectives.costs): a cost table's values, else the cell built as the table trained it
    def known_costs(self, arch: Architecture, spec: TrialSpec) -> dict[str, float]:
        if self._costs is None:
            return {}
        arch_str = self._space(spec.space, dict(spec.space_config)).to_string(arch)
        row = self._costs.get(arch_str)
        if row is None:
            raise DataError(f"cost table {self.costs}: no row for architecture {arch_str!r}")
        return dict(row)

    def cost_inputs(self, spec: TrialSpec) -> tuple[DataSpec, str]:
        if self.dataset not in DATASET_INPUTS:
            raise DataError(f"table evaluator: no input shape known for dataset {self.dataset!r} (known: "
                            f"{', '.join(DATASET_INPUTS)}); give a cost table with the costs option")
        shape, classes = DATASET_INPUTS[self.dataset]
        return DataSpec(task="classification", input_shape=shape, num_outputs=classes), "cpu"

    def evaluate(self, arch: Architecture, spec: TrialSpec, reporter: Any = None) -> Result:
        space = self._space(spec.space, dict(spec.space_config))
        # A missing (NaN) objective is turned into a failed trial by the worker, like any evaluator's.
        return Result(TrialState.COMPLETE, metrics=self.lookup(space.to_string(arch)))
