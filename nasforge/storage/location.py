"""Where the default database lives, and how a SQLite file this process cannot write is opened."""

from __future__ import annotations

import os
from pathlib import Path


def user_data_dir() -> Path:
    """Where nasforge keeps its default database and artifacts (XDG data home)."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "nasforge"


def _read_only_mode(path: Path) -> str:
    """How to open a database this process cannot write: "" when it can. A writable folder still holds the
    WAL's shared-memory file (mode=ro); a read-only folder or filesystem cannot, and nobody can be writing
    there either, so the file is read as it stands (immutable=1)."""
    folder = path.resolve().parent
    if not os.access(folder, os.W_OK):
        return "mode=ro&immutable=1"
    if not os.access(path, os.W_OK):
        return "mode=ro"
    return ""


def default_storage_url() -> str:
    return f"sqlite:///{user_data_dir() / 'nasforge.db'}"
