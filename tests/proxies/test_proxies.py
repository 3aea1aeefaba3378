"""Zero-cost proxies on small real data: every proxy computed, reproducible, cached, and sensible."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from nasforge.cli.main import main
from nasforge.data.loader import data_config, load_dataset
from nasforge.proxies.compute import COLUMNS, ProxyComputer
from nasforge.proxies.report import correlations, sample_archs
from nasforge.proxies.table import ProxyTable, append_rows, arch_text
from nasforge.spaces.dnn import DNNSpace
from nasforge.spaces.nb201 import NB201Space

CONVS = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_1x1~0|nor_conv_3x3~1|nor_conv_3x3~2|"
DEAD = "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"


@pytest.fixture(scope="module")
def cifar(shared_data: Path):
    return load_dataset(data_config(str(shared_data / "cifar10_small" / "cifar10_jpeg_q75_small_5k_1k.npz")))


def small_nb201() -> NB201Space:
    return NB201Space(cells_per_stage=1, channels=4)


def test_every_proxy_is_computed_and_reproducible(cifar) -> None:
    space = small_nb201()
    arch = space.from_string(CONVS)
    a = ProxyComputer(space, cifar, batch_size=16, seed=3).values(arch)
    b = ProxyComputer(space, cifar, batch_size=16, seed=3).values(arch)
    assert set(a) == set(COLUMNS)
    assert all(math.isfinite(v) for v in a.values())
    assert a == b  # same seed: same minibatch, same initial weights
    c = ProxyComputer(space, cifar, batch_size=16, seed=4).values(arch)
    assert c["naswot"] != a["naswot"]  # the seed draws the minibatch and the weights
    assert a["params"] == c["params"] and a["flops"] == c["flops"]


def test_values_are_cached_by_key(cifar) -> None:
    space = small_nb201()
    computer = ProxyComputer(space, cifar, batch_size=8)
    first = computer.values(space.from_string(CONVS))
    spent = computer.seconds
    again = computer.values(space.from_string(CONVS))
    assert again == first and computer.seconds == spent and len(computer.cache) == 1


def test_a_dead_cell_scores_below_a_convolutional_one(cifar) -> None:
    space = small_nb201()
    computer = ProxyComputer(space, cifar, batch_size=16)
    convs, dead = computer.values(space.from_string(CONVS)), computer.values(space.from_string(DEAD))
    assert dead["synflow"] == 0.0 < convs["synflow"]  # no path from input to output carries signal
    assert dead["jacov"] == -math.inf  # the output does not depend on the input at all
    for name in ("naswot", "jacov", "grad_norm", "snip", "zico", "params", "flops"):
        assert convs[name] > dead[name], name


def test_any_space_dense_networks_on_a_table(shared_data: Path) -> None:
    data = load_dataset(data_config(str(shared_data / "tabular" / "phoneme.tsv.gz")))
    space = DNNSpace()
    archs = sample_archs(space, 3, seed=0)
    values = ProxyComputer(space, data, batch_size=32).many(archs)
    for v in values:
        assert v["params"] > 0 and math.isfinite(v["snip"]) and math.isfinite(v["grad_norm"])
        assert math.isfinite(v["naswot"]) and math.isfinite(v["zico"])


def test_correlations_and_the_csv_round_trip(tmp_path: Path) -> None:
    values = [{n: float(i) for n in COLUMNS} for i in range(6)]
    values[0]["jacov"] = math.nan
    rows = {r["proxy"]: r for r in correlations(values, [10.0, 11, 12, 13, 14, 15])}
    assert rows["naswot"]["spearman"] == pytest.approx(1.0) and rows["naswot"]["kendall"] == pytest.approx(1.0)
    assert rows["jacov"]["n"] == 5
    space = NB201Space()
    archs = sample_archs(space, 4, seed=1)
    path = tmp_path / "p.csv"
    append_rows(path, [{"arch": arch_text(space, a), "key": space.key(a), **v, "seconds": 0.5}
                       for a, v in zip(archs, values)])
    table = ProxyTable(path)
    assert len(table) == 4 and table.seconds == pytest.approx(2.0)
    assert table.by_key[space.key(archs[2])]["synflow"] == 2.0


def test_cli_ranks_a_sample_against_the_table(shared_data: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "proxies.csv"
    argv = ["proxies", "--space", "nb201", "--space-option", "cells_per_stage=1", "--space-option", "channels=4",
            "--data", str(shared_data / "cifar10_small" / "cifar10_jpeg_q75_small_5k_1k.npz"), "--sample", "5",
            "--batch-size", "8", "--table", str(shared_data / "nasbench201" / "nb201_12epoch.csv"), "--out", str(out)]
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "spearman" in text and "5 architectures against table nb201_12epoch.csv" in text
    assert len(ProxyTable(out)) == 5


@pytest.mark.parametrize("extra, message", [
    ([], "give either --table"),
    (["--table", "t.csv", "--sample", "0"], "--sample must be positive"),
    (["--study", "x", "--table", "t.csv"], "give either --table"),
])
def test_cli_bad_input_is_one_line(extra: list[str], message: str, capsys) -> None:
    assert main(["proxies", "--data", "whatever.csv", *extra]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_sample_has_distinct_keys() -> None:
    space = NB201Space()
    archs = sample_archs(space, 50, seed=0)
    assert len({space.key(a) for a in archs}) == 50
    assert [a.tokens for a in archs] == [a.tokens for a in sample_archs(space, 50, seed=0)]
    assert np.all([len(a.tokens) == 6 for a in archs])


def test_table_correlations_rank_the_covered_cells_against_the_table(shared_data: Path, tmp_path: Path) -> None:
    from nasforge.evaluators.table import load_table
    from nasforge.proxies.report import table_correlations

    table = str(shared_data / "nasbench201" / "nb201_12epoch.csv")
    rows = load_table(table, "cifar100")
    space = NB201Space()
    archs = sample_archs(space, 6, seed=2)
    tests = [rows[space.to_string(a)][1] for a in archs]
    path = tmp_path / "p.csv"  # naswot follows cifar100's test accuracy, synflow its reverse
    append_rows(path, [{"arch": arch_text(space, a), "key": space.key(a), **{n: 0.0 for n in COLUMNS},
                        "naswot": t, "synflow": -t, "seconds": 0.1} for a, t in zip(archs, tests)])
    out = {r["proxy"]: r for r in table_correlations(ProxyTable(path), table, "cifar100")}
    assert out["naswot"]["spearman"] == pytest.approx(1.0) and out["synflow"]["kendall"] == pytest.approx(-1.0)
    assert out["naswot"]["n"] == 6 and math.isnan(out["zico"]["spearman"])  # a constant proxy ranks nothing
