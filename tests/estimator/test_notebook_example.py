"""examples/estimator_notebook.py, the notebook-style estimator walkthrough, runs as a script."""

from __future__ import annotations

import runpy
from pathlib import Path

import pytest

NOTEBOOK = Path(__file__).resolve().parents[2] / "examples" / "estimator_notebook.py"


def test_estimator_notebook_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    namespace = runpy.run_path(str(NOTEBOOK), run_name="__main__")
    out = capsys.readouterr().out
    assert "test accuracy:" in out and "3-fold accuracy:" in out
    clf, x_test, y_test = namespace["clf"], namespace["X_test"], namespace["y_test"]
    assert len(namespace["scores"]) == 3 and 0.0 <= clf.score(x_test, y_test) <= 1
    assert list(namespace["trials"]["state"]) == ["complete", "complete"]
    assert not list(tmp_path.iterdir())  # the default store is temporary, and removed
