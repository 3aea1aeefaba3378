"""`search --help` names every registered space, strategy and evaluator; `nasforge options NAME` lists its options."""

from __future__ import annotations

import inspect
import subprocess
import sys
from typing import ClassVar

import pytest

from nasforge.cli.main import main
from nasforge.core import options, registry
from nasforge.core.option_help import DESCRIPTIONS, SUMMARIES


class ToySpace:
    """A plugin space: a stand-in for one a user registers."""

    option_help: ClassVar[dict[str, str]] = {"width": "units per layer", "deep": "two layers instead of one"}

    def __init__(self, width: int = 8, deep: bool = False) -> None:
        self.width, self.deep = width, deep


@pytest.fixture
def toy_plugin(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setitem(registry.SPACES, "toy_plugin", f"{__name__}:ToySpace")
    return "toy_plugin"


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    try:
        code = main(argv)
    except SystemExit as exc:  # --help exits through argparse
        code = int(exc.code or 0)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _flag_help(text: str, flag: str) -> str:
    """The help paragraph of one flag, its lines joined (argparse wraps them)."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if (line.strip() + " ").startswith(flag + " "))
    block = [lines[start]]
    for line in lines[start + 1:]:
        if line.strip().startswith("--"):
            break
        block.append(line)
    return " ".join(part.strip() for part in block)


def test_search_help_lists_every_registered_name(toy_plugin: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(["search", "--help"], capsys)
    assert code == 0
    space_help = _flag_help(out, "--space SPACE")
    for name in registry.available("space"):
        assert name in space_help
    assert toy_plugin in space_help  # from the registry at run time, not a written list
    strategy_help = _flag_help(out, "--strategy STRATEGY")
    for name in [*registry.available("strategy"), *registry.available("oneshot")]:
        assert name in strategy_help
    evaluator_help = _flag_help(out, "--evaluator EVALUATOR")
    for name in registry.available("evaluator"):
        assert name in evaluator_help
    assert "synthetic" in evaluator_help
    for flag, what in (("--space-option", "SPACE"), ("--strategy-option", "STRATEGY"),
                       ("--evaluator-option", "EVALUATOR")):
        assert f"nasforge options {what}" in _flag_help(out, f"{flag} KEY=VALUE")


def test_options_prints_each_option_with_its_constructor_default(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(["options", "evolution"], capsys)
    assert code == 0
    assert out.startswith("strategy evolution ")
    assert "--strategy-option KEY=VALUE" in out
    rows = {line.split()[0]: line.split() for line in out.splitlines()[3:]}
    signature = inspect.signature(registry.resolve("strategy", "evolution")).parameters
    assert set(rows) == set(signature) - {"space", "seed", "max_trials"}
    for name, row in rows.items():
        assert row[1] == str(signature[name].default)  # 30 and 10: the code's, whatever a docstring says
        assert " ".join(row[3:]) == DESCRIPTIONS[("strategy", "evolution")][name]


def test_options_of_a_plugin_come_from_its_own_constructor(toy_plugin: str,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(["options", toy_plugin], capsys)
    assert code == 0
    assert "space toy_plugin (tests.test_options_command:ToySpace)" in out
    assert "--space-option KEY=VALUE" in out
    lines = [line.split() for line in out.splitlines()[3:]]
    assert lines == [["width", "8", "int", "units", "per", "layer"],
                     ["deep", "false", "bool", "two", "layers", "instead", "of", "one"]]


def test_options_of_an_import_path_need_its_kind(capsys: pytest.CaptureFixture[str]) -> None:
    path = f"{__name__}:ToySpace"
    code, out, _ = _run(["options", path, "--kind", "space"], capsys)
    assert code == 0
    assert f"space {path} ({path})" in out and "units per layer" in out
    code, out, err = _run(["options", path], capsys)
    assert code == 2 and out == "" and err.count("\n") == 1 and "--kind" in err


def test_a_name_of_two_kinds_shows_both_unless_kind_is_given(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(["options", "darts"], capsys)
    assert code == 0
    assert "space darts (nasforge.spaces.darts:DARTSSpace)" in out
    assert "strategy darts (nasforge.oneshot.darts:DARTS)" in out
    assert "--order" in out and "num_nodes" in out
    code, out, _ = _run(["options", "darts", "--kind", "space"], capsys)
    assert code == 0
    assert "num_nodes" in out and "strategy darts" not in out
    code, out, _ = _run(["options", "train"], capsys)
    first_column = [line.split()[0] for line in out.splitlines()[3:]]
    assert "batch_size" in first_column and "data" not in first_column  # data is --data's, not an option
    assert "flag --batch-size" in out


def test_options_without_a_name_lists_every_name(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(["options"], capsys)
    assert code == 0
    listed = {line.split()[0] for line in out.splitlines() if line.startswith("  ")}
    assert listed == {name for kind in options.KINDS for name in options.names(kind)}


def test_unknown_name_is_one_line_and_exit_2() -> None:
    for argv in (["options", "no_such_space"], ["options", "train", "--kind", "space"]):
        proc = subprocess.run([sys.executable, "-m", "nasforge", *argv], capture_output=True, text=True, timeout=60)
        assert proc.returncode == 2
        assert proc.stdout == ""
        assert len(proc.stderr.strip().splitlines()) == 1
        assert proc.stderr.startswith("nasforge: error: unknown ")
        assert "chain_cnn" in proc.stderr


@pytest.mark.parametrize("kind", options.KINDS)
def test_every_builtin_option_is_described(kind: str) -> None:
    """A new constructor option needs a line in nasforge/core/option_help.py; a removed one loses its line."""
    for name in options.names(kind):
        factory = registry.resolve("oneshot" if kind == "strategy" and name in registry.ONESHOT else kind, name)
        params = {p.name for p in options.option_names(kind, name, factory)}
        described = DESCRIPTIONS.get((kind, name), {})
        assert params == set(described), (kind, name, sorted(params ^ set(described)))
        assert all(text.strip() for text in described.values())
        assert SUMMARIES.get((kind, name)), (kind, name)


def test_inherited_options_and_overridden_defaults_are_the_code_s(capsys: pytest.CaptureFixture[str]) -> None:
    """npenas takes bananas' options through **options and turns `exhaustive` off in its body."""
    from nasforge.core.option_help import DEFAULT_OVERRIDES
    from nasforge.spaces.nb201 import NB201Space

    code, out, _ = _run(["options", "npenas"], capsys)
    rows = {line.split()[0]: line.split()[1] for line in out.splitlines()[3:]}
    assert code == 0 and {"population", "proxies", "acquisition", "exhaustive"} <= set(rows)
    assert rows["mutations"] == "100" and rows["exhaustive"] == "0"
    for (kind, name), overrides in DEFAULT_OVERRIDES.items():
        built = registry.create(kind, name, space=NB201Space())
        for option, value in overrides.items():
            assert getattr(built, option) == value, (name, option)
