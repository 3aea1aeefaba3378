"""What the bench scripts share: timestamps, logged subprocess runs of the `nasforge` CLI, result files."""

from __future__ import annotations

import csv
import subprocess
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any


def now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def run_logged(cmd: list[str], log: Path) -> float:
    """Run a command with its output in `log`; seconds of wall time; exit on failure, naming the log."""
    print("$ " + " ".join(cmd), flush=True)
    start = time.perf_counter()
    with open(log, "w") as fh:
        rc = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT).returncode
    if rc != 0:
        raise SystemExit(f"command failed ({rc}); see {log}")
    return time.perf_counter() - start


def num(value: Any) -> str:
    """A metric for a markdown table: four decimals, or "-" when missing."""
    return "-" if value is None else f"{float(value):.4f}"


def write_csv(rows: list[dict[str, Any]], path: Path) -> None:
    """Rows (dicts with the same keys) as a CSV file with a header, its folder made if missing."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def work_storage(work: str | Path) -> tuple[Path, str]:
    """A bench run's work folder (made if missing) and the SQLite URL of the database inside it."""
    folder = Path(work)
    folder.mkdir(parents=True, exist_ok=True)
    return folder, f"sqlite:///{folder / 'nasforge.db'}"
