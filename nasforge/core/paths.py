"""Files a command will write, checked before any work: the one place every `--out`-style flag goes through."""

from __future__ import annotations

import os
from pathlib import Path

from nasforge.core.errors import ConfigError


def check_output(out: str | Path, flag: str = "--out") -> Path:
    """The path, refused with one line unless its folder exists and is writable and it is not a folder."""
    path = Path(out).expanduser()
    folder = path.parent
    if not folder.exists():
        raise ConfigError(f"{flag} {out}: folder {folder} does not exist")
    if not folder.is_dir():
        raise ConfigError(f"{flag} {out}: {folder} is not a folder")
    if path.is_dir():
        raise ConfigError(f"{flag} {out}: is a folder")
    if not os.access(folder, os.W_OK | os.X_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise ConfigError(f"{flag} {out}: not writable (permission denied)")
    return path


def write_failed(out: str | Path, exc: OSError, flag: str = "--out") -> ConfigError:
    """The one-line error for a write that failed anyway (disk full, a race): never `cannot write: None`."""
    reason = exc.strerror or str(exc) or type(exc).__name__
    return ConfigError(f"{flag} {out}: cannot write: {reason}")
