"""`predict --data builtin:NAME` (a study's model and an exported one), as `search --data builtin:NAME` takes."""

from __future__ import annotations

from pathlib import Path

from nasforge.cli.main import main


def test_predict_and_an_exported_model_accept_builtin_data(tmp_path: Path, capsys) -> None:
    storage = f"sqlite:///{tmp_path / 'db.sqlite'}"
    assert main(["search", "--data", "builtin:iris", "--trials", "1", "--epochs", "1", "--workers", "1",
                 "--study", "iris", "--storage", storage, "--no-progress", "--no-baseline"]) == 0
    capsys.readouterr()
    assert main(["predict", "--study", "iris", "--storage", storage, "--data", "builtin:iris"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0] == "prediction" and len(lines) == 151
    assert set(lines[1:]) <= {"setosa", "versicolor", "virginica"}
    model = tmp_path / "model.pt"
    assert main(["export", "--study", "iris", "--storage", storage, "--format", "torchscript",
                 "--out", str(model)]) == 0
    capsys.readouterr()
    assert main(["predict", "--model", str(model), "--data", "builtin:iris", "--evaluate"]) == 0
    assert capsys.readouterr().out.startswith("accuracy=")
    assert main(["predict", "--study", "iris", "--storage", storage, "--data", "builtin:no_such"]) == 2
    assert "unknown builtin dataset 'builtin:no_such'" in capsys.readouterr().err


def test_an_exported_file_follows_the_umask(tmp_path: Path, capsys) -> None:
    import os

    storage = f"sqlite:///{tmp_path / 'db.sqlite'}"
    assert main(["search", "--data", "builtin:iris", "--trials", "1", "--epochs", "1", "--workers", "1",
                 "--study", "iris", "--storage", storage, "--no-progress", "--no-baseline"]) == 0
    old = os.umask(0o022)
    try:
        assert main(["export", "--study", "iris", "--storage", storage, "--format", "torchscript",
                     "--out", str(tmp_path / "model.pt")]) == 0
    finally:
        os.umask(old)
    assert (tmp_path / "model.pt").stat().st_mode & 0o777 == 0o644


def test_the_onnx_install_hint_gives_the_clone_command_too() -> None:
    from nasforge.export.runtime import INSTALL_EXPORT

    assert "pip install 'nasforge[export]'" in INSTALL_EXPORT
    assert 'pip install -c constraints.txt -e ".[export]"' in INSTALL_EXPORT
