"""Every ```python block of README.md, saved as a script and run with `python file.py` as a user would.

Run verbatim: a block too slow for this test is made smaller in the README, not here. The blocks once hung
when saved as a script (spawned workers re-imported the unguarded script), so each runs under a timeout.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
TIMEOUT_S = 240  # a few seconds each normally; a hang ends here instead of never


def python_blocks() -> list[str]:
    return re.findall(r"^```python\n(.*?)^```$", README.read_text(), flags=re.DOTALL | re.MULTILINE)


def write_data_files(folder: Path) -> None:
    """The files the examples name: `train.csv` with a two-class `target` label first and three numeric
    columns (what the Model Search example's `record_defaults` describes), `new.csv` with the features only."""
    from nasforge.data.builtin import builtin_frame

    frame, _ = builtin_frame("breast_cancer")
    table = frame[["target", *frame.columns[:3]]]
    table = table.assign(target=(table["target"] == "benign").astype(int))
    table.to_csv(folder / "train.csv", index=False)
    table.drop(columns=["target"]).head(25).to_csv(folder / "new.csv", index=False)


def test_the_readme_has_python_examples() -> None:
    blocks = python_blocks()
    assert len(blocks) >= 2 and any("nasforge.search(" in b for b in blocks)


@pytest.mark.parametrize("number", range(len(python_blocks())))
def test_readme_python_block_runs_as_a_script(tmp_path: Path, number: int) -> None:
    code = python_blocks()[number]
    write_data_files(tmp_path)
    script = tmp_path / f"readme_example_{number}.py"
    script.write_text(code)
    env = {**os.environ, "XDG_DATA_HOME": str(tmp_path / "data-home")}  # the default store, kept out of ~
    env.pop("PYTHONPATH", None)  # the installed nasforge, as a user has it
    try:
        done = subprocess.run([sys.executable, script.name], cwd=tmp_path, env=env, capture_output=True, text=True,
                              timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"README python block {number} still running after {TIMEOUT_S} s:\n{code}\n{exc.stderr!r}")
    assert done.returncode == 0, f"README python block {number} failed:\n{code}\n{done.stderr}"
    assert "Traceback" not in done.stderr, done.stderr
    assert done.stdout.strip(), "every example prints its result"
