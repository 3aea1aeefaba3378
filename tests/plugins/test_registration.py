"""Spaces, strategies and evaluators from user code: import paths, register(), entry points, resume."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

import nasforge
from nasforge.core import registry
from nasforge.core.errors import ConfigError

PLUGIN = '''
from nasforge.spaces.dnn import DNNSpace
from nasforge.strategies.random_search import RandomSearch


class TinySpace(DNNSpace):
    """A user space: the dnn space under another name, outside the package."""


class FirstFirst(RandomSearch):
    """A user strategy: random search that counts its proposals."""

    asked = 0

    def ask(self, n):
        FirstFirst.asked += n
        return super().ask(n)
'''


@pytest.fixture
def plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    package = tmp_path / "src" / "myplug"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "spaces.py").write_text(textwrap.dedent(PLUGIN))
    monkeypatch.syspath_prepend(str(tmp_path / "src"))
    yield tmp_path / "src"
    for name in [m for m in sys.modules if m == "myplug" or m.startswith("myplug.")]:
        del sys.modules[name]
    for kind in registry.USER_KINDS:
        for name in registry.plugins(kind):
            if registry.tables()[kind][name].startswith("myplug"):
                del registry._KINDS[kind][name]


def _search(tmp_path: Path, **options: object) -> nasforge.Study:
    return nasforge.search("builtin:iris", epochs=1, storage=f"sqlite:///{tmp_path / 'db.sqlite'}",
                           study="plug", **options)


@pytest.mark.parametrize("workers", [1, 2])
def test_import_path_space_and_strategy_search_and_resume(plugin: Path, tmp_path: Path, workers: int) -> None:
    study = _search(tmp_path, space="myplug.spaces:TinySpace", strategy="myplug.spaces:FirstFirst",
                    trials=2, workers=workers)
    assert len([t for t in study.trials if t.state.name == "COMPLETE"]) == 2
    assert study.config["space"] == "myplug.spaces:TinySpace"
    resumed = _search(tmp_path, space="myplug.spaces:TinySpace", strategy="myplug.spaces:FirstFirst",
                      trials=3, workers=workers)
    assert len([t for t in resumed.trials if t.state.name == "COMPLETE"]) == 3


def test_registered_names_are_stored_as_import_paths(plugin: Path, tmp_path: Path) -> None:
    from myplug.spaces import FirstFirst, TinySpace

    assert nasforge.register("space", "tiny", TinySpace) == "myplug.spaces:TinySpace"
    nasforge.register("strategy", "firstfirst", FirstFirst)
    assert "tiny" in registry.available("space") and "tiny" in registry.plugins("space")
    study = _search(tmp_path, space="tiny", strategy="firstfirst", trials=2, workers=2)
    assert study.config["space"] == "myplug.spaces:TinySpace"
    assert study.config["strategy"] == "myplug.spaces:FirstFirst"
    # a class given directly to search() is stored by its import path too
    study = nasforge.search("builtin:iris", epochs=1, storage=f"sqlite:///{tmp_path / 'b.sqlite'}",
                            space=TinySpace, trials=1, workers=1)
    assert study.config["space"] == "myplug.spaces:TinySpace"


def test_register_rejects_what_cannot_be_rebuilt(plugin: Path) -> None:
    from myplug.spaces import TinySpace

    with pytest.raises(ConfigError, match="no import path"):
        nasforge.register("space", "anon", lambda **kw: TinySpace(**kw))
    with pytest.raises(ConfigError, match="built in"):
        nasforge.register("space", "dnn", TinySpace)
    with pytest.raises(ConfigError, match="cannot register"):
        nasforge.register("store", "x", TinySpace)


def test_missing_plugin_is_one_line_on_resume(plugin: Path, tmp_path: Path) -> None:
    _search(tmp_path, space="myplug.spaces:TinySpace", trials=1, workers=1)
    (plugin / "myplug" / "spaces.py").unlink()
    for name in [m for m in sys.modules if m.startswith("myplug")]:
        del sys.modules[name]
    with pytest.raises(ConfigError, match=r"space plugin 'myplug\.spaces:TinySpace' cannot be imported"):
        _search(tmp_path, space="myplug.spaces:TinySpace", trials=2, workers=1)
    with pytest.raises(ConfigError, match="has no 'Nope'"):
        registry.resolve("space", "nasforge.spaces.dnn:Nope")


def test_cli_import_path_and_missing_plugin(plugin: Path, tmp_path: Path) -> None:
    env = {"PYTHONPATH": str(plugin), "PATH": "/usr/bin:/bin"}
    common = [sys.executable, "-m", "nasforge", "search", "--data", "builtin:iris", "--trials", "1",
              "--epochs", "1", "--storage", f"sqlite:///{tmp_path / 'cli.sqlite'}", "--workers", "1"]
    ok = subprocess.run([*common, "--space", "myplug.spaces:TinySpace"], capture_output=True, text=True,
                        env=env, timeout=120)
    assert ok.returncode == 0, ok.stderr
    bad = subprocess.run([*common, "--space", "nosuchplug.x:Space"], capture_output=True, text=True,
                         env=env, timeout=120)
    assert bad.returncode == 2
    assert bad.stderr.strip().count("\n") == 0 and "cannot be imported" in bad.stderr


def test_entry_points_are_listed_and_resolved(plugin: Path, tmp_path: Path) -> None:
    dist = plugin / "myplug-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: myplug\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[nasforge.spaces]\ntinyep = myplug.spaces:TinySpace\n")
    registry._loaded_entry_points.discard("space")
    try:
        assert "tinyep" in registry.plugins("space")
        assert registry.canonical("space", "tinyep") == "myplug.spaces:TinySpace"
        env = {"PYTHONPATH": str(plugin), "PATH": "/usr/bin:/bin"}
        out = subprocess.run([sys.executable, "-m", "nasforge", "search", "--help"], capture_output=True,
                             text=True, env=env, timeout=60)
        assert out.returncode == 0 and "tinyep" in out.stdout
    finally:
        registry._KINDS["space"].pop("tinyep", None)
        registry._loaded_entry_points.discard("space")


def test_config_file_names_a_plugin_by_import_path(plugin: Path, tmp_path: Path) -> None:
    from nasforge.api import Study
    from nasforge.cli.main import main

    storage = f"sqlite:///{tmp_path / 'cfg.sqlite'}"
    config = tmp_path / "search.yaml"
    config.write_text(f"data: builtin:iris\nspace: myplug.spaces:TinySpace\ntrials: 1\nepochs: 1\nworkers: 1\n"
                      f"study: fromfile\nstorage: {storage}\n")
    assert main(["search", "--config", str(config), "--no-progress"]) == 0
    assert Study("fromfile", storage).config["space"] == "myplug.spaces:TinySpace"
