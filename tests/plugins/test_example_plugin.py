"""examples/nasforge-plugin-example, made visible as pip would (its sources on the path, a dist-info with the entry
points of its pyproject.toml) and used only through its entry points: listed, conforming, searched with every kind
in-process, with two worker processes and on Ray, then resumed."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import nasforge
from nasforge.core import registry
from nasforge.execution.plugins import module_sources, study_import_paths
from tests.conftest import ray_address_or_skip

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "nasforge-plugin-example"
SOURCES = EXAMPLE / "src"
NAMES = {"space": "ladder", "strategy": "hill_climb", "block": "gated", "provider": "moons"}


def _entry_points_txt() -> str:
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    project = tomllib.loads((EXAMPLE / "pyproject.toml").read_text())["project"]
    lines = []
    for group, points in project["entry-points"].items():
        lines.append(f"[{group}]")
        lines += [f"{name} = {target}" for name, target in points.items()]
    return "\n".join(lines) + "\n"


@pytest.fixture
def example(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    site = tmp_path / "site"
    dist = site / "nasforge_plugin_example-0.1.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: nasforge-plugin-example\nVersion: 0.1.0\n")
    (dist / "entry_points.txt").write_text(_entry_points_txt())
    monkeypatch.syspath_prepend(str(SOURCES))
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setenv("PYTHONPATH", f"{SOURCES}:{site}")
    registry._loaded_entry_points.clear()
    yield site
    for kind in registry.USER_KINDS:
        for name in registry.plugins(kind):
            if registry.tables()[kind][name].startswith("nasforge_example"):
                del registry._KINDS[kind][name]
    registry._loaded_entry_points.clear()
    for name in [m for m in sys.modules if m == "nasforge_example" or m.startswith("nasforge_example.")]:
        del sys.modules[name]


def test_entry_points_are_listed_by_search_help(example: Path) -> None:
    for kind, name in NAMES.items():
        assert name in registry.plugins(kind), kind
    out = subprocess.run([sys.executable, "-m", "nasforge", "search", "--help"], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert "ladder" in out.stdout and "hill_climb" in out.stdout


def test_example_plugin_passes_nasforge_testing(example: Path) -> None:
    """The plugin's own test file: nasforge.testing's checks on its space and strategy, one call each."""
    spec = importlib.util.spec_from_file_location("example_conformance", EXAMPLE / "tests" / "test_conformance.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.test_space_conforms()
    module.test_strategy_conforms()


def _search(tmp_path: Path, trials: int, **options: Any) -> nasforge.Study:
    return nasforge.search(provider="moons", provider_options={"samples": 160}, strategy="hill_climb",
                           strategy_options={"warmup": 2}, trials=trials, epochs=1,
                           storage=f"sqlite:///{tmp_path / 'db.sqlite'}", baseline=False, **options)


def _complete(study: nasforge.Study) -> int:
    return sum(t.state.name == "COMPLETE" for t in study.trials)


def _every_kind_searches_and_resumes(tmp_path: Path, **options: Any) -> None:
    ladder = _search(tmp_path, 2, space="ladder", study="ladder", **options)
    gated = _search(tmp_path, 2, space="dnn", study="gated", space_options={"user_blocks": ["gated"],
                    "blocks": ["gated", "fc_64"], "max_depth": 2}, **options)
    assert _complete(ladder) == 2 and _complete(gated) == 2
    # only import paths are stored: a process without the entry points still rebuilds every piece
    assert ladder.config["space"] == "nasforge_example.space:LadderSpace"
    assert ladder.config["strategy"] == "nasforge_example.strategy:HillClimb"
    assert ladder.config["evaluator_config"]["data"]["factory"] == "nasforge_example.provider:Moons"
    assert gated.config["space_config"]["user_blocks"] == ["nasforge_example.blocks:Gated"]
    assert any("nasforge_example.blocks:Gated" in t.arch["description"]["blocks"] for t in gated.trials)
    assert _complete(_search(tmp_path, 3, space="ladder", study="ladder", **options)) == 3
    assert _complete(_search(tmp_path, 3, space="dnn", study="gated", space_options={"user_blocks": ["gated"],
                     "blocks": ["gated", "fc_64"], "max_depth": 2}, **options)) == 3


@pytest.mark.parametrize("workers", [1, 2])
def test_every_kind_by_entry_point_searches_and_resumes(example: Path, tmp_path: Path, workers: int) -> None:
    _every_kind_searches_and_resumes(tmp_path, workers=workers)


def test_every_kind_on_ray_workers(example: Path, tmp_path: Path) -> None:
    """The cluster's workers do not see this process's sys.path: the plugin reaches them as a py_module."""
    address = ray_address_or_skip()
    _every_kind_searches_and_resumes(tmp_path, backend="ray", address=address, workers=2)


def test_only_user_code_is_shipped_to_ray(example: Path, tmp_path: Path) -> None:
    single = tmp_path / "loose"
    single.mkdir()
    (single / "onefile.py").write_text("from nasforge.spaces.dnn import DNNSpace as Mine\n")
    sys.path.insert(0, str(single))
    try:
        shipped = module_sources(["nasforge_example.space:LadderSpace", "nasforge_example.blocks:Gated",
                                  "onefile:Mine", "nasforge.spaces.dnn:DNNSpace", "numpy.random:default_rng",
                                  "json:loads", "__main__:Thing", "not_installed_anywhere:X"])
    finally:
        sys.path.remove(str(single))
    assert shipped == [str(SOURCES / "nasforge_example"), str(single / "onefile.py")]
    from nasforge.launch import build_config

    config = build_config(provider=registry.create("provider", "moons"), space="ladder", strategy="hill_climb",
                          space_options={"max_layers": 2}, storage=f"sqlite:///{tmp_path / 'c.sqlite'}")
    assert sorted(study_import_paths(config)) == ["nasforge_example.provider:Moons",
                                                  "nasforge_example.space:LadderSpace",
                                                  "nasforge_example.strategy:HillClimb"]
