"""A study stays inside its folder, and a store on a read-only filesystem can still be read (issue 17,
items 9 and 10)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from nasforge.api import Study
from nasforge.cli.main import main
from nasforge.core.errors import ConfigError
from nasforge.launch import build_config, run
from nasforge.runner import artifact_dir_for
from nasforge.storage.sql import Store


def _options(tmp_path: Path, study: str = "s") -> dict[str, object]:
    return {"space": "nb201", "strategy": "random", "evaluator": "synthetic", "trials": 3, "workers": 1,
            "study": study, "storage": f"sqlite:///{tmp_path / 'db.sqlite'}", "progress": False}


@pytest.mark.parametrize("name", ["..", ".", "a/b", "..\\up", "tab\there"])
def test_a_study_name_that_would_leave_its_folder_is_one_line_before_anything_is_written(
        name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "db.sqlite"
    code = main(["search", "--space", "nb201", "--evaluator", "synthetic", "--trials", "1", "--study", name,
                 "--storage", f"sqlite:///{db}"])
    err = capsys.readouterr().err
    assert code == 2 and "is not a usable study name" in err and len(err.strip().splitlines()) == 1
    assert not db.exists() and not (tmp_path / "db-studies").exists()


def test_a_study_folder_that_a_link_points_elsewhere_is_refused(tmp_path: Path) -> None:
    root, elsewhere = tmp_path / "root", tmp_path / "elsewhere"
    root.mkdir()
    elsewhere.mkdir()
    (root / "linked").symlink_to(elsewhere, target_is_directory=True)
    store = Store(f"sqlite:///{tmp_path / 'db.sqlite'}")
    assert artifact_dir_for(build_config(**_options(tmp_path), root=str(root)), store) == root.resolve() / "s"
    with pytest.raises(ConfigError, match="would not be inside"):
        artifact_dir_for(build_config(**_options(tmp_path, "linked"), root=str(root)), store)


def test_a_store_that_cannot_be_written_is_read_without_writing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    cfg = build_config(**_options(tmp_path))
    store = Store(cfg.storage)
    run(cfg, store)
    store.dispose()
    db = tmp_path / "db.sqlite"
    before = (sorted(p.name for p in tmp_path.iterdir()), db.read_bytes())
    access = os.access

    def read_only_fs(path: object, mode: int, **kw: object) -> bool:  # what a read-only mount answers root too
        if mode & os.W_OK and str(path).startswith(str(tmp_path)):
            return False
        return access(path, mode, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "access", read_only_fs)
    reader = Store(cfg.storage, create=False)
    assert reader.read_only == "mode=ro&immutable=1"
    assert len(Study("s", store=reader).trials) == 3
    assert main(["trials", "--study", "s", "--storage", cfg.storage]) == 0
    assert "s" in capsys.readouterr().out
    reader.dispose()
    assert (sorted(p.name for p in tmp_path.iterdir()), db.read_bytes()) == before, "reading wrote nothing"
