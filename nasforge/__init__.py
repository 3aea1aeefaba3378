"""nasforge: neural architecture search on PyTorch, from a CSV file to a shipped model."""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["NASClassifier", "NASRegressor", "Provider", "Study", "TrialRecord", "__version__", "load_study", "register",
           "search"]


def __getattr__(name: str) -> Any:
    # Lazy, so `import nasforge.core...` in workers and the CLI's --help stay light.
    if name in ("Study", "TrialRecord", "load_study", "search"):
        from nasforge import api

        return getattr(api, name)
    if name in ("NASClassifier", "NASRegressor"):
        from nasforge import estimator

        return getattr(estimator, name)
    if name == "Provider":
        from nasforge.data.provider import Provider

        return Provider
    if name == "register":
        from nasforge.core.registry import register

        return register
    raise AttributeError(name)
