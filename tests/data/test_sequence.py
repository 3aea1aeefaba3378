"""The sequence provider: .ts headers, .npz arrays, long CSV, padding/masks, train-only normalisation, errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from nasforge.cli.main import main
from nasforge.core.errors import DataError
from nasforge.data.loader import data_config, load_dataset
from nasforge.data.sequence import SequencePreprocessor
from nasforge.data.sequence_files import read_ts

UNEQUAL = """# a comment
@problemName tiny
@timeStamps false
@missing true
@univariate false
@dimensions 2
@equalLength false
@classLabel true up down
@data
1,2,3:4,5,6:up
3,2:1,?:down
1,2,3,4:0,0,0,1:up
4,3,2,1:1,1,1,0:down
2,3,4:5,6,7:up
9,8:7,6:down
"""


def _write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_ts_header_unequal_multivariate_with_missing(tmp_path: Path) -> None:
    raw = read_ts(_write(tmp_path, "t.ts", UNEQUAL))
    assert raw.classes == ("up", "down")
    assert [c.shape for c in raw.cases] == [(3, 2), (2, 2), (4, 2), (4, 2), (3, 2), (2, 2)]
    assert np.isnan(raw.cases[1][1, 1])
    assert raw.labels[:2] == ["up", "down"]


def test_shared_sets_load_padded_and_masked(shared_data: Path) -> None:
    folder = shared_data / "sequence"
    dataset = load_dataset(data_config(str(folder / "JapaneseVowels_TRAIN.ts"),
                                       test_file=str(folder / "JapaneseVowels_TEST.ts")))
    assert dataset.spec.num_outputs == 9 and dataset.spec.input_shape[1] == 13  # 12 channels + mask
    assert len(dataset.train) + len(dataset.valid) == 270 and dataset.test is not None and len(dataset.test) == 370
    mask = dataset.train.x[:, :, -1]
    assert set(np.unique(mask)) == {0.0, 1.0} and mask.sum(axis=1).min() >= 7  # unequal lengths are masked
    real = dataset.train.x[:, :, :-1][mask == 1]
    assert np.allclose(real.mean(axis=0), 0.0, atol=1e-5) and np.allclose(real.std(axis=0), 1.0, atol=1e-4)
    assert np.all(dataset.train.x[:, :, :-1][mask == 0] == 0.0)
    # stratified: every speaker's share in the validation split is near its share in the file
    counts = np.bincount(dataset.valid.y, minlength=9)
    assert counts.min() >= 5 and counts.max() <= 7
    gun = load_dataset(data_config(str(folder / "GunPoint_TRAIN.ts")))
    assert gun.spec.input_shape == (150, 2) and gun.test is None


def test_normalisation_is_fitted_on_train_only(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 10, 3))
    y = np.repeat([0, 1], 20)
    test_x = x[:8] * 100 + 50  # a far-off test part must not move the statistics
    path = tmp_path / "s.npz"
    np.savez(path, x_train=x, y_train=y, x_test=test_x, y_test=y[:8])
    dataset = load_dataset(data_config(str(path), format="sequence"))
    pre = dataset.preprocessor
    assert isinstance(pre, SequencePreprocessor)
    assert np.all(np.abs(pre.mean) < 1.0) and dataset.test is not None and len(dataset.test) == 8
    assert np.abs(dataset.test.x[:, :, :3]).mean() > 10
    again = SequencePreprocessor.from_json(pre.to_json())
    assert np.array_equal(again.transform(list(x[:3])), pre.transform(list(x[:3])))


def test_npz_lengths_and_long_csv(tmp_path: Path) -> None:
    x = np.zeros((6, 5, 2))
    x[:, :, 0] = np.arange(5)
    path = tmp_path / "u.npz"
    np.savez(path, x_train=x, y_train=np.array([0, 1] * 3), lengths_train=np.array([5, 3, 4, 5, 2, 5]))
    dataset = load_dataset(data_config(str(path), format="sequence", valid_fraction=0.34))
    lengths = np.concatenate([dataset.train.x[:, :, -1].sum(axis=1), dataset.valid.x[:, :, -1].sum(axis=1)])
    assert sorted(lengths.tolist()) == [2.0, 3.0, 4.0, 5.0, 5.0, 5.0]
    rows = ["id,time,a,b,label"]
    for case in range(8):
        for step in reversed(range(3 + case % 2)):  # rows out of time order: the time column sorts them
            rows.append(f"c{case},{step},{step * (1 + case % 2)},{case},{'yes' if case % 2 else 'no'}")
    csv = _write(tmp_path, "long.csv", "\n".join(rows) + "\n")
    dataset = load_dataset(data_config(csv, format="sequence", valid_fraction=0.25))
    assert dataset.spec.input_shape == (4, 3) and dataset.spec.class_names == ("no", "yes")
    first = dataset.train.x[0]
    assert first[0, 0] < first[1, 0] < first[2, 0]  # sorted by time


@pytest.mark.parametrize(("text", "message"), [
    ("@data\n1,2:a\n", "@classLabel"),
    ("@classLabel true a b\n1,2:a\n", "data before the @data"),
    ("@classLabel true a b\n@data\n1,2,x:a\n", "'x' is not a number"),
    ("@classLabel true a b\n@data\n1,2:c\n", "class label 'c'"),
    ("@dimensions 2\n@classLabel true a b\n@data\n1,2:a\n", r"1 dimension\(s\) but the header says 2"),
    ("@equalLength true\n@seriesLength 3\n@classLabel true a b\n@data\n1,2:a\n", "@seriesLength is 3"),
    ("@classLabel true a b\n@data\n1,?:a\n", "@missing false"),
    ("@timeStamps true\n@classLabel true a b\n@data\n", "@timeStamps true"),
    ("@classLabel true a b\n@data\n", "no cases"),
    ("@classLabel true a b\n@data\n1,2:3:a\n1,2,3:4,5:b\n", "different lengths"),
    ("@classLabel false\n@data\n1,2\n", "no class labels"),
    ("@bogus 1\n@classLabel true a b\n@data\n1:a\n", "unknown header line"),
])
def test_malformed_ts_is_one_line(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(DataError, match=message) as caught:
        load_dataset(data_config(_write(tmp_path, "bad.ts", text)))
    assert "\n" not in str(caught.value)


def test_malformed_arrays_and_csv(tmp_path: Path) -> None:
    np.savez(tmp_path / "a.npz", x_train=np.zeros((4, 3, 2)), y_train=np.zeros(5))
    with pytest.raises(DataError, match="4 cases but labels"):
        load_dataset(data_config(str(tmp_path / "a.npz"), format="sequence"))
    np.save(tmp_path / "b.npy", np.zeros((4, 3, 2)))
    with pytest.raises(DataError, match="no labels"):
        load_dataset(data_config(str(tmp_path / "b.npy"), format="sequence"))
    csv = _write(tmp_path, "c.csv", "id,a,label\n1,0.5,x\n1,0.7,y\n2,1,x\n")
    with pytest.raises(DataError, match="more than one 'label'"):
        load_dataset(data_config(csv, format="sequence"))
    with pytest.raises(DataError, match="no id_column column 'case'"):
        load_dataset(data_config(csv, format="sequence", id_column="case"))


def test_cli_exit_2_on_a_bad_ts(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = _write(tmp_path, "bad.ts", "@classLabel true a b\n@data\n1,2:c\n")
    code = main(["search", "--data", bad, "--trials", "1", "--storage", str(tmp_path / "s.db")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "class label 'c'" in err
