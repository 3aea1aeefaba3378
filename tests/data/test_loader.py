"""`--data` values to configs, configs to (cached) datasets."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nasforge.core.errors import ConfigError, DataError
from nasforge.data.loader import clear_cache, data_config, load_dataset, provider


def test_csv_config_is_json_with_absolute_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "d.csv").write_text("x,y\n" + "".join(f"{i},{i % 2}\n" for i in range(20)))
    monkeypatch.chdir(tmp_path)
    config = data_config("d.csv", label="y", header=None, sep=None, valid_fraction=0.25, seed=3)
    assert config["kind"] == "csv" and config["path"] == str(tmp_path / "d.csv")
    assert config["valid_fraction"] == 0.25 and config["seed"] == 3 and config["label"] == "y"
    assert json.loads(json.dumps(config)) == config
    assert provider(config).config() == config


def test_builtin_config_and_cache() -> None:
    clear_cache()
    config = data_config("builtin:wine", seed=1, label=None, header="auto")
    assert config == {"kind": "builtin", "name": "wine", "valid_fraction": 0.2, "test_fraction": 0.0, "seed": 1}
    first = load_dataset(config)
    assert load_dataset(dict(reversed(list(config.items())))) is first  # keyed by canonical JSON
    assert load_dataset(data_config("builtin:wine", seed=2)) is not first


@pytest.mark.parametrize(("data", "options", "error", "message"), [
    ("builtin:iris", {"label": "y"}, ConfigError, "label do not apply to builtin dataset"),
    ("builtin:nope", {}, DataError, "unknown builtin dataset"),
    ("builtin:iris", {"valid_fraction": 1.0}, ConfigError, "valid_fraction must be a number in"),
    ("builtin:iris", {"valid_fraction": 0.5, "test_fraction": 0.5}, ConfigError, "must be below 1"),
    ("missing.csv", {}, DataError, r"missing\.csv: file not found"),
    ("", {}, ConfigError, "--data must be a file path or builtin:NAME"),
])
def test_bad_values(data: str, options: dict, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        data_config(data, **options)


def test_unknown_option_and_missing_valid_file(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    path.write_text("x,y\n1,0\n2,1\n")
    with pytest.raises(ConfigError, match="colour do not apply to a CSV/TSV file"):
        data_config(str(path), colour="red")
    with pytest.raises(DataError, match=r"v\.csv: file not found \(valid_file\)"):
        data_config(str(path), valid_file=str(tmp_path / "v.csv"))
    with pytest.raises(ConfigError, match="kind must be 'csv' or 'builtin'"):
        load_dataset({"kind": "parquet"})
