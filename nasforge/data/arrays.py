"""NumPy `.npy`/`.npz` files read with one check first: a file that is not what its name says gets a line
saying so, not NumPy's guess that it holds pickled data. NumPy only (the ONNX runtime path imports it)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from nasforge.core.errors import DataError

_MAGIC = {".npz": (b"PK\x03\x04", b"PK\x05\x06"), ".npy": (b"\x93NUMPY",)}
_WHAT = {".npz": "a NumPy .npz archive (a zip file)", ".npy": "a NumPy .npy array file"}


def load_numpy(path: str | Path) -> Any:
    """`np.load(path, allow_pickle=False)`: an ndarray for .npy, an NpzFile (a context manager) for .npz."""
    p = Path(path)
    suffix = p.suffix.lower()
    try:
        with open(p, "rb") as f:
            head = f.read(8)
    except OSError as exc:
        raise DataError(f"{path}: cannot read file ({exc.strerror or exc})") from None
    magics = _MAGIC.get(suffix, _MAGIC[".npz"] + _MAGIC[".npy"])
    if not any(head.startswith(m) for m in magics):
        what = _WHAT.get(suffix, "a NumPy .npy or .npz file")
        raise DataError(f"{path}: not {what}" + (" (the file is empty)" if not head else ""))
    try:
        return np.load(p, allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        raise DataError(f"{path}: cannot read as {_WHAT.get(suffix, 'a NumPy file')} "
                        f"({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})") from None
