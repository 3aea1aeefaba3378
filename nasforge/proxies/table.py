"""Proxy values on disk: one CSV row per architecture, appended as they are computed, read back by key.

A row holds the architecture's string (or its JSON for spaces without strings), its canonical key,
every proxy in `COLUMNS` and the seconds its computation took, so a long run resumes where it stopped
and a search can look proxies up instead of computing them.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from nasforge.core.errors import DataError
from nasforge.core.types import Architecture
from nasforge.proxies.compute import COLUMNS

HEADER = ("arch", "key", *COLUMNS, "seconds")


def arch_text(space: Any, arch: Architecture) -> str:
    if callable(getattr(space, "to_string", None)):
        return str(space.to_string(arch))
    return json.dumps(space.to_json(arch), sort_keys=True, separators=(",", ":"))


def arch_from_text(space: Any, text: str) -> Architecture:
    if callable(getattr(space, "from_string", None)) and not text.startswith("{"):
        return space.from_string(text)  # type: ignore[no-any-return]
    return space.from_json(json.loads(text))  # type: ignore[no-any-return]


def append_rows(path: str | Path, rows: Iterable[dict[str, Any]]) -> None:
    """Append rows (arch, key, proxies, seconds), writing the header to a new file."""
    path = Path(path)
    new = not path.exists() or path.stat().st_size == 0
    with open(path, "a", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(HEADER), extrasaction="ignore")
        if new:
            writer.writeheader()
        for row in rows:
            writer.writerow({k: (f"{v:.10g}" if isinstance(v, float) else v) for k, v in row.items()})


class ProxyTable:
    """Proxy values read from such a CSV, by architecture string and by canonical key."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise DataError(f"proxy table {path}: file not found")
        self.by_arch: dict[str, dict[str, float]] = {}
        self.by_key: dict[str, dict[str, float]] = {}
        self.seconds = 0.0  # what computing every row took (the proxies' cost)
        with open(self.path, newline="") as f:
            reader = csv.DictReader(f)
            missing = [c for c in ("arch", "key") if c not in (reader.fieldnames or [])]
            if missing:
                raise DataError(f"proxy table {path}: no {', '.join(missing)} column (made by nasforge proxies?)")
            self.columns = [c for c in reader.fieldnames or [] if c in COLUMNS]
            for line in reader:
                try:
                    values = {c: _number(line[c]) for c in self.columns}
                except (TypeError, ValueError) as exc:
                    raise DataError(f"proxy table {path}: line {reader.line_num}: {exc}") from None
                self.by_arch[line["arch"]] = values
                seconds = _number(line.get("seconds"))
                self.seconds += seconds if math.isfinite(seconds) else 0.0
                self.by_key.setdefault(line["key"], values)

    def __len__(self) -> int:
        return len(self.by_arch)


def _number(text: str | None) -> float:
    return math.nan if text in (None, "", "nan") else float(text)  # type: ignore[arg-type]
