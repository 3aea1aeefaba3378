"""The user modules a study names, as local sources, so the Ray backend ships them to its workers.

A study names user code only by import path (its space, strategy, evaluator, the dnn/cnn `user_blocks`, a
provider rebuilt by import path). Ray workers on other nodes do not share this process's `sys.path`, so the
top-level package (or single-file module) of each is added to the job's `py_modules`. Code that is installed
(site-packages) or part of Python or nasforge is not shipped: installed packages, like torch, must be installed
on every node; what is shipped is code on `PYTHONPATH`, in the working folder or installed editable.
"""

from __future__ import annotations

import importlib.util
import sys
import sysconfig
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from nasforge.core import registry


def study_import_paths(config: Any) -> list[str]:
    """Every `module:attr` import path a SearchConfig names."""
    names = [config.space, config.strategy, config.evaluator]
    names += [str(b) for b in (config.space_config or {}).get("user_blocks") or []]
    data = (config.evaluator_config or {}).get("data")
    if isinstance(data, dict) and data.get("kind") == "provider":
        names.append(str(data.get("factory")))
    return [n for n in names if isinstance(n, str) and registry.is_import_path(n)]


def module_sources(paths: Iterable[str]) -> list[str]:
    """The folder (package) or file (module) of each import path's top-level module that is user code."""
    installed = {Path(p).resolve() for key in ("stdlib", "platstdlib", "purelib", "platlib")
                 if (p := sysconfig.get_paths().get(key))}
    sources: list[str] = []
    for path in paths:
        top = path.partition(":")[0].split(".")[0]
        if not top or top in ("nasforge", "__main__") or top in sys.builtin_module_names:
            continue
        try:
            spec = importlib.util.find_spec(top)
        except (ImportError, ValueError):
            continue  # reported, with its one line, when the study resolves the name
        if spec is None:
            continue
        if spec.submodule_search_locations:  # a package (a namespace package: its first folder)
            locations = list(spec.submodule_search_locations)
            source = Path(locations[0]) if locations else None
        else:
            source = Path(spec.origin) if spec.origin and spec.origin.endswith(".py") else None
        if source is None or any(_under(source, root) for root in installed):
            continue
        if str(source) not in sources:
            sources.append(str(source))
    return sources


def _under(path: Path, root: Path) -> bool:
    try:
        path.resolve().relative_to(root)
    except ValueError:
        return False
    return True
